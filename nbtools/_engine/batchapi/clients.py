"""HTTP clients for the providers' Batch APIs, on the transport seam (no SDK), one per request format.

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
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

from nbtools._base.errors import EndpointError, NbtoolsError
from nbtools._engine import failures, replies
from nbtools._engine.batchapi.outcome import Outcome
from nbtools._engine.batchapi.requests import ANTHROPIC, OPENAI, BatchFormat, Part, row_index
from nbtools._engine.client import connection_message
from nbtools._engine.endpoints import PROFILES, Endpoint, local_server
from nbtools._engine.replies import Completion
from nbtools._engine.retry import backoff_delay, parse_retry_after
from nbtools._engine.sse import error_message
from nbtools._engine.transport import open_transport
from nbtools._engine.transport.base import BLOCKED, CONNECT, Transport

ANTHROPIC_VERSION = "2023-06-01"
JSON = "application/json"
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
    """One transport to one endpoint (the online path's choice of it). ``async with client:`` then the job calls."""

    batch_format: BatchFormat = OPENAI
    jobs_path = "/batches"  # where a job is read (GET {path}/{id}) and cancelled (POST {path}/{id}/cancel)

    def __init__(self, endpoint: Endpoint, timeout: float) -> None:
        self.endpoint = endpoint
        self._seconds = max(timeout, 300.0)  # uploads and downloads are big
        self._transport: Transport | None = None
        self._answered = False  # has the endpoint answered anything yet?

    def _headers(self) -> dict[str, str]:
        return self.endpoint.headers()

    async def __aenter__(self) -> BatchClient:
        self._transport = open_transport(local_server(self.endpoint.base_url), self._headers(), self._seconds,
                                         self.endpoint.provider)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._transport is not None:
            await self._transport.close()

    async def call(self, method: str, url: str, *, json_body: Any = None, data: bytes | None = None,
                   content_type: str = JSON, raw: bool = False, creates_job: bool = False) -> Any:
        """One control call with retries for 429/5xx/dropped connections; JSON (or bytes with ``raw``).

        A call that ``creates_job`` is retried only when the server cannot have acted on it (429, or no
        connection at all): a job created whose answer was lost would be paid for twice.
        """
        transport = self._transport
        assert transport is not None
        if not url.startswith("http"):
            url = self.endpoint.base_url + url
        if json_body is not None:
            data = json.dumps(json_body).encode()
        for attempt in range(1, CONTROL_RETRIES + 2):
            retry_after = None
            try:
                async with transport.request(method, url, data, content_type) as resp:
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
            except asyncio.TimeoutError:
                if attempt > CONTROL_RETRIES or creates_job:
                    raise BatchAPIError(self.endpoint.redact(
                        f"{self.endpoint.host} did not answer within {self._seconds:g} s")) from None
            except transport.errors as exc:
                self._raise_unless_retried(*transport.describe(exc), last=attempt > CONTROL_RETRIES,
                                           creates_job=creates_job)
            except ValueError:
                raise BatchAPIError(f"{self.endpoint.host} answered {method} {url.rsplit('/v1', 1)[-1]} "
                                    "with a body that is not JSON: does this endpoint have a Batch API?") from None
            await asyncio.sleep(backoff_delay(attempt, retry_after))
        raise AssertionError("unreachable")

    def _raise_unless_retried(self, kind: str, detail: str, *, last: bool, creates_job: bool) -> None:
        """A connection failure of ``kind`` (the transport's words) as its one-line error, unless it is retried:
        an endpoint not reached at all says so at once, before it ever answered."""
        host = self.endpoint.host
        if kind in (CONNECT, BLOCKED):
            if last or not self._answered:
                cause = (f"cannot connect to {host} ({detail or 'refused'}): check base_url / the provider"
                         if kind == CONNECT else connection_message(host, kind, detail))
                raise EndpointError(self.endpoint.redact(f"{cause}, then run again (a job already submitted is kept)")) from None
        elif last or creates_job:  # a job may have been made: never sent twice
            raise BatchAPIError(self.endpoint.redact(connection_message(host, kind, detail))) from None

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
        form, content_type = upload_form(b"".join(part.lines))
        uploaded = await self.call("POST", "/files", data=form, content_type=content_type)
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
        job = await self.call("POST", "/messages/batches", creates_job=True, data=payload)
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


def upload_form(jsonl: bytes) -> tuple[bytes, str]:
    """The multipart/form-data body of a batch file upload (``purpose=batch`` and the file), and its Content-Type.

    Encoded here, as bytes, so every transport sends it alike. The boundary is random (128 bits, as aiohttp's
    own): no JSONL line will contain it."""
    boundary = uuid.uuid4().hex
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="nbtools-batch.jsonl"\r\n'
            "Content-Type: application/jsonl\r\n\r\n")
    return head.encode() + jsonl + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


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
