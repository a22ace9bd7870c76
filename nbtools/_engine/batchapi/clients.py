"""HTTP clients for the providers' Batch APIs, on aiohttp (no SDK), one per request format.

Both turn the provider's job object into one ``JobState`` and its result lines into ``Outcome``s, so
the runner never looks at provider shapes. Sources of the shapes:

- OpenAI / xAI: https://platform.openai.com/docs/api-reference/batch (Batch object: ``status`` in
  validating, failed, in_progress, finalizing, completed, expired, cancelling, cancelled;
  ``request_counts`` total/completed/failed; ``output_file_id`` / ``error_file_id``) and
  https://platform.openai.com/docs/api-reference/files (multipart upload with ``purpose=batch``,
  ``GET /files/{id}/content``; ``GET /batches`` lists recent jobs with their ``metadata``); openai-python
  ``src/openai/types/batch.py``, ``batch_request_counts.py``.
  Output and error lines: ``{"id", "custom_id", "response": {"status_code", "request_id", "body"},
  "error": {"code", "message"} | null}`` (openapi ``BatchRequestOutput``). xAI serves the same routes
  (https://docs.x.ai/developers/advanced-api-usage/batch-api, as used by LiteLLM's xai_batches).
- Anthropic: https://docs.claude.com/en/api/creating-message-batches, retrieving-message-batches,
  retrieving-message-batch-results; anthropic-sdk-python ``types/messages/message_batch.py``
  (``processing_status`` in_progress, canceling, ended; ``request_counts`` processing, succeeded,
  errored, canceled, expired; ``results_url``) and ``message_batch_individual_response.py`` (``result.type``
  succeeded (``message``), errored (``error``: an ErrorResponse), canceled, expired). Headers ``x-api-key``
  and ``anthropic-version: 2023-06-01``.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

import aiohttp

from nbtools._base.errors import EndpointError, NbtoolsError
from nbtools._engine import failures, replies
from nbtools._engine.batchapi.outcome import Outcome
from nbtools._engine.batchapi.requests import ANTHROPIC, OPENAI, BatchFormat, Part, row_index
from nbtools._engine.endpoints import PROFILES, Endpoint
from nbtools._engine.replies import Completion
from nbtools._engine.retry import backoff_delay, parse_retry_after
from nbtools._engine.sse import error_message

ANTHROPIC_VERSION = "2023-06-01"
ENDED = ("completed", "failed", "expired", "cancelled")
CONTROL_RETRIES = 4  # a create / poll / download that meets a 429, 5xx or a dropped connection


def _key_hint(endpoint: Endpoint) -> str:
    profile = PROFILES.get(endpoint.provider)
    if profile is not None and profile.key_env:
        return f"check the key in {profile.key_env}"
    return "pass api_key_env='NAME' (magic: --api-key-env NAME), the variable that holds the key"


def _json_or_none(content: bytes) -> object | None:
    try:
        return cast(object, json.loads(content))
    except ValueError:
        return None


class BatchAPIError(NbtoolsError):
    """The provider refused or lost a job (not one row: the whole job)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class JobState:
    """A job as the provider last described it, in one vocabulary for both protocols."""

    id: str
    status: str  # validating, in_progress, finalizing, completed, failed, expired, cancelling, cancelled
    total: int
    done: int  # rows answered (succeeded)
    failed: int  # rows the provider failed
    refs: dict[str, Any]  # where the results are: output/error file ids, or results_url
    errors: str | None = None  # why the job itself failed (validation)

    @property
    def ended(self) -> bool:
        return self.status in ENDED


def client_for(endpoint: Endpoint, timeout: float) -> BatchClient:
    return AnthropicBatches(endpoint, timeout) if endpoint.provider == "anthropic" else OpenAIBatches(endpoint, timeout)


class BatchClient:
    """One aiohttp session to one endpoint. ``async with client:`` then the job calls."""

    batch_format: BatchFormat = OPENAI
    jobs_path = "/batches"  # where a job is read (GET {path}/{id}) and cancelled (POST {path}/{id}/cancel)

    def __init__(self, endpoint: Endpoint, timeout: float) -> None:
        self.endpoint = endpoint
        self._timeout = aiohttp.ClientTimeout(total=max(timeout, 300.0))  # uploads and downloads are big
        self._session: aiohttp.ClientSession | None = None
        self._answered = False  # has the endpoint answered anything yet?

    def _headers(self) -> dict[str, str]:
        return self.endpoint.headers()

    async def __aenter__(self) -> BatchClient:
        self._session = aiohttp.ClientSession(headers=self._headers(), timeout=self._timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def call(self, method: str, url: str, *, json_body: Any = None, data: Any = None, raw: bool = False,
                   creates_job: bool = False) -> Any:
        """One control call with retries for 429/5xx/dropped connections; JSON (or bytes with ``raw``).

        A call that ``creates_job`` is retried only when the server cannot have acted on it (429, or no
        connection at all): a job created whose answer was lost would be paid for twice.
        """
        assert self._session is not None
        if not url.startswith("http"):
            url = self.endpoint.base_url + url
        for attempt in range(1, CONTROL_RETRIES + 2):
            retry_after = None
            try:
                body = data() if callable(data) else data  # a payload is built afresh for each attempt
                async with self._session.request(method, url, json=json_body, data=body) as resp:
                    content = await resp.read()
                    self._answered = True
                    if resp.status < 300:
                        return content if raw else json.loads(content)
                    error = self._http_error(resp.status, content)
                    kind = failures.classify(resp.status, _json_or_none(content), "", resp.headers)
                    retryable = (kind == failures.RATE_LIMIT if creates_job
                                 else kind in failures.WAIT or kind in failures.RETRYABLE)
                    if not retryable or attempt > CONTROL_RETRIES:
                        raise error
                    retry_after = parse_retry_after(resp.headers)
            except aiohttp.ClientConnectorError as exc:
                if attempt > CONTROL_RETRIES or not self._answered:  # nothing there at all: say so now
                    raise EndpointError(self.endpoint.redact(
                        f"cannot connect to {self.endpoint.host} ({exc.strerror or 'refused'}): check base_url / "
                        "the provider, then run again (a job already submitted is kept)")) from None
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                if attempt > CONTROL_RETRIES or creates_job:
                    raise BatchAPIError(self.endpoint.redact(f"{self.endpoint.host}: {type(exc).__name__} {exc}")) from None
            except ValueError:
                raise BatchAPIError(f"{self.endpoint.host} answered {method} {url.rsplit('/v1', 1)[-1]} "
                                    "with a body that is not JSON: does this endpoint have a Batch API?") from None
            await asyncio.sleep(backoff_delay(attempt, retry_after))
        raise AssertionError("unreachable")

    def _http_error(self, status: int, content: bytes) -> BatchAPIError:
        detail = content[:2000].decode("utf-8", "replace")
        try:
            message, code = error_message(json.loads(content))
            detail = f"{code}: {message}" if code and message else (message or detail)
        except ValueError:
            pass
        hint = {401: f" ({_key_hint(self.endpoint)})", 404: " (does this endpoint have a Batch API?)"}.get(status, "")
        one_line = " ".join(detail.split())[:300]
        return BatchAPIError(self.endpoint.redact(f"HTTP {status} from {self.endpoint.host}: {one_line}{hint}"), status)

    # -- the job calls -------------------------------------------------------------------------------
    async def submit(self, part: Part, metadata: dict[str, str]) -> tuple[str, str | None]:
        """Send one part; returns (job id, input file id or None)."""
        raise NotImplementedError

    async def retrieve(self, job_id: str) -> JobState:
        return self._state(await self.call("GET", f"{self.jobs_path}/{job_id}"))

    async def cancel(self, job_id: str) -> JobState:
        return self._state(await self.call("POST", f"{self.jobs_path}/{job_id}/cancel"))

    def _state(self, job: dict[str, Any]) -> JobState:
        """The provider's job object in the one vocabulary of JobState."""
        raise NotImplementedError

    def _outcomes(self, contents: list[bytes]) -> Iterator[Outcome]:
        """The result lines of ``contents``, read one at a time; a line for a row we did not send is left out."""
        for content in contents:
            for line in _lines(content):
                record = json.loads(line)
                index = row_index(str(record.get("custom_id")))
                if index is not None:
                    yield self._outcome(index, record)

    def _outcome(self, index: int, record: dict[str, Any]) -> Outcome:
        """One result line (row ``index``'s) as an Outcome."""
        raise NotImplementedError

    async def results(self, state: JobState) -> Iterator[Outcome]:
        """The job's result lines, parsed one at a time as they are read (no list of 100,000 lines)."""
        raise NotImplementedError


class OpenAIBatches(BatchClient):
    """OpenAI and xAI: upload the JSONL (``POST /files``), then ``POST /batches`` over it."""

    batch_format = OPENAI

    async def submit(self, part: Part, metadata: dict[str, str]) -> tuple[str, str | None]:
        def form() -> aiohttp.FormData:
            data = aiohttp.FormData()
            data.add_field("purpose", "batch")
            data.add_field("file", b"".join(part.lines), filename="nbtools-batch.jsonl",
                           content_type="application/jsonl")
            return data

        uploaded = await self.call("POST", "/files", data=form)
        try:
            job = await self.call("POST", "/batches", creates_job=True, json_body={
                "input_file_id": uploaded["id"], "endpoint": part.url, "completion_window": "24h", "metadata": metadata})
        except BatchAPIError as exc:
            if exc.status is not None and exc.status < 500:
                raise  # refused: no job was made
            found = await self._find(metadata)  # made, perhaps, and only its answer lost: look before anyone retries
            if found is None:
                raise
            return found, str(uploaded["id"])
        return str(job["id"]), str(uploaded["id"])

    async def _find(self, metadata: dict[str, str]) -> str | None:
        """The id of a recent batch carrying exactly this ``metadata`` (``GET /batches``, newest first)."""
        try:
            page = await self.call("GET", "/batches?limit=100")
        except BatchAPIError:
            return None
        for job in page.get("data") or ():
            if job.get("metadata") == metadata:
                return str(job["id"])
        return None

    def _state(self, job: dict[str, Any]) -> JobState:
        counts = job.get("request_counts") or {}
        errors = None
        if job.get("errors"):  # {"object": "list", "data": [{"code", "message", "line", "param"}]}
            data = job["errors"].get("data") or []
            errors = "; ".join(f"{e.get('code')}: {e.get('message')}" + (f" (line {e['line']})" if e.get("line") else "")
                               for e in data[:3]) or None
        return JobState(str(job["id"]), str(job.get("status")), int(counts.get("total") or 0),
                        int(counts.get("completed") or 0), int(counts.get("failed") or 0),
                        {"output": job.get("output_file_id"), "error": job.get("error_file_id")},
                        errors and self.endpoint.redact(errors))

    async def results(self, state: JobState) -> Iterator[Outcome]:
        files = [await self.call("GET", f"/files/{file_id}/content", raw=True)
                 for kind in ("output", "error") if (file_id := state.refs.get(kind))]
        return self._outcomes(files)

    def _outcome(self, index: int, record: dict[str, Any]) -> Outcome:
        response = record.get("response") or {}
        error = record.get("error")
        code = response.get("status_code")
        if code == 200 and isinstance(response.get("body"), dict):
            if response["body"].get("object") == "response":  # a /v1/responses line
                failed = replies.failure_of(response["body"])
                if failed is None:
                    return self._identified(index, replies.parse_response(response["body"]), response)
                response = {**response, "body": failed}
            else:
                return self._identified(index, replies.chat_completion(response["body"]), response)
        if isinstance(error, dict) and error.get("code") in ("batch_expired", "batch_cancelled"):
            return Outcome(index, error=f"{error.get('code')}: {error.get('message')}", not_sent=True)
        raw_body = response.get("body")
        body: dict[str, Any] = raw_body if isinstance(raw_body, dict) else {}
        message, kind = error_message(body) if body else (None, None)
        if isinstance(body.get("error"), dict):
            kind = body["error"].get("type") or kind  # the class, e.g. invalid_request_error
        if message is None and isinstance(error, dict):
            message, kind = error.get("message"), error.get("code")
        prefix = f"HTTP {code}" if code else "failed"
        return Outcome(index, error=self.endpoint.redact(f"{prefix} {kind or 'error'} (batch): {message or 'no message'}"))


    @staticmethod
    def _identified(index: int, completion: Completion, response: dict[str, Any]) -> Outcome:
        """The line's ``response.request_id`` (the request-id a direct request would have had in its header)."""
        request_id = response.get("request_id")
        if isinstance(request_id, str) and request_id:
            completion.request_id = request_id
        return Outcome(index, completion)


class AnthropicBatches(BatchClient):
    """Anthropic Message Batches: the requests go in the create call itself (no file)."""

    batch_format = ANTHROPIC
    jobs_path = "/messages/batches"

    def _headers(self) -> dict[str, str]:
        headers = {"anthropic-version": ANTHROPIC_VERSION}
        if self.endpoint.api_key:
            headers["x-api-key"] = self.endpoint.api_key.reveal()
        return headers

    async def submit(self, part: Part, metadata: dict[str, str]) -> tuple[str, str | None]:
        # The lines already are request objects: join them into the JSON array without re-encoding.
        payload = b'{"requests":[' + b",".join(line.rstrip(b"\n") for line in part.lines) + b"]}"
        job = await self.call("POST", "/messages/batches", creates_job=True,
                              data=lambda: aiohttp.BytesPayload(payload, content_type="application/json"))
        return str(job["id"]), None

    def _state(self, job: dict[str, Any]) -> JobState:
        counts = job.get("request_counts") or {}
        n = {k: int(counts.get(k) or 0) for k in ("processing", "succeeded", "errored", "canceled", "expired")}
        status = {"in_progress": "in_progress", "canceling": "cancelling"}.get(str(job.get("processing_status")))
        if status is None:  # ended: say how, from what it ended with
            status = "cancelled" if job.get("cancel_initiated_at") else ("expired" if n["expired"] else "completed")
        return JobState(str(job["id"]), status, sum(n.values()), n["succeeded"], n["errored"],
                        {"results_url": job.get("results_url")})

    async def results(self, state: JobState) -> Iterator[Outcome]:
        url = state.refs.get("results_url") or ""
        if urlsplit(url).netloc != urlsplit(self.endpoint.base_url).netloc:  # the key goes only to the endpoint's host
            url = f"/messages/batches/{state.id}/results"
        return self._outcomes([await self.call("GET", url, raw=True)])

    def _outcome(self, index: int, record: dict[str, Any]) -> Outcome:
        result = record.get("result") or {}
        kind = result.get("type")
        if kind == "succeeded":
            message = result.get("message") or {}
            usage = message.get("usage") or {}
            blocks = [b for b in message.get("content") or () if isinstance(b, dict)]
            text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
            tool = next((b for b in blocks if b.get("type") == "tool_use"), None)  # schema= asked by tool use
            if tool is not None:
                text = json.dumps(tool.get("input"), ensure_ascii=False)
            prompt_tokens, cached, written = _anthropic_prompt_tokens(usage)
            message_id = message.get("id")
            return Outcome(index, Completion(text, message.get("model"), prompt_tokens, usage.get("output_tokens"),
                                             message.get("stop_reason"), cached, cache_write_tokens=written,
                                             request_id=message_id if isinstance(message_id, str) else None))
        if kind in ("canceled", "expired"):
            return Outcome(index, error=f"batch_{kind}", not_sent=True)
        inner = (result.get("error") or {}).get("error") or result.get("error") or {}
        return Outcome(index, error=self.endpoint.redact(
            f"{inner.get('type') or 'error'} (batch): {inner.get('message') or 'no message'}"))


def _lines(content: bytes) -> Iterator[bytes]:
    return (line for line in io.BytesIO(content) if line.strip())


def _anthropic_prompt_tokens(usage: dict[str, Any]) -> tuple[int | None, int | None, int | None]:
    """(all prompt tokens, those read from the prompt cache, those written to it), counted as OpenAI counts them.

    Anthropic's ``input_tokens`` leaves out the tokens read from and written to its cache: the whole prompt
    is ``input_tokens + cache_creation_input_tokens + cache_read_input_tokens``
    (https://docs.claude.com/en/docs/build-with-claude/prompt-caching, "Tracking cache performance";
    anthropic-sdk-python ``types/usage.py``). Writes are billed at the cache-write rate (Price.cache_write).
    """
    uncached = usage.get("input_tokens")
    if not isinstance(uncached, int):
        return None, None, None
    read, written = (usage.get(k) for k in ("cache_read_input_tokens", "cache_creation_input_tokens"))
    read = read if isinstance(read, int) and not isinstance(read, bool) else None
    written = written if isinstance(written, int) and not isinstance(written, bool) else None
    return uncached + (read or 0) + (written or 0), read, written
