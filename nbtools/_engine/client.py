"""The HTTP layer: one aiohttp session speaking the OpenAI chat-completions protocol.

A bare aiohttp client costs a fraction of the CPU of the openai SDK per request (see
benchmarks/README.md), and its connection pool is unbounded here: requests wait on our Limiter,
never inside the pool, so a pool timeout can never start counting while a request is queued.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Callable, Collection
from typing import Any

import aiohttp

from nbtools._engine import failures, responses
from nbtools._engine.completion import Completion, cached_tokens_of, reasoning_tokens_of, text_of
from nbtools._engine.endpoints import Endpoint
from nbtools._engine.retry import parse_retry_after, retry_delay_in_body
from nbtools._engine.sse import DONE, SSEDecoder, StreamError, error_message
from nbtools._engine.structured import older_dialect, refuses_json_schema

# The two names of the reply bound: OpenAI's own API wants the newer one (its reasoning models refuse
# max_tokens); most other servers know only the older. Whichever a server refuses, it is asked again with the other.
_OTHER_NAME = {"max_tokens": "max_completion_tokens", "max_completion_tokens": "max_tokens"}


def _refusal(message: Any) -> str | None:
    """message.refusal (openai-python: src/openai/types/chat/chat_completion_message.py), where sent."""
    refusal = message.get("refusal") if isinstance(message, dict) else None
    return refusal if isinstance(refusal, str) and refusal else None
_NOT_OPENAI = "is base_url an OpenAI-compatible endpoint? (it usually ends in /v1)"
KEEPALIVE = 4.0  # seconds: below the 5 s idle timeout of common servers (uvicorn), so we never reuse a closing socket
_LARGE_BLOCK = 1 << 20  # bytes: well above asyncio's 256 KiB read buffer


@functools.cache  # once per process
def _keep_read_buffers_on_heap() -> None:
    """Let glibc's malloc serve asyncio's read buffers from its heap.

    asyncio reads each reply into a fresh 256 KiB bytes object and shrinks it to what arrived. glibc maps
    blocks that large with mmap, until the process frees one mapped block larger than its threshold (then it
    raises the threshold: most processes soon have). Before that, each reply costs an mmap, an mremap, a munmap
    and a page fault: 45,000 page faults for 20,000 replies measured here, and a tenth more CPU per reply.
    Freeing one large block makes glibc raise the threshold as it would anyway. Elsewhere it is a no-op.
    """
    bytes(_LARGE_BLOCK)  # freed at once; calloc'd, so no page of it is touched


class RequestFailed(Exception):
    """One attempt failed; ``kind`` (nbtools.failures) says what it means for the batch."""

    def __init__(self, message: str, kind: str, *, status: int | None = None, retry_after: float | None = None,
                 headers: Any = None, unreachable: bool = False, partial: str | None = None,
                 field: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.unreachable = unreachable  # nothing answered at all: no server, wrong host or port
        self.status = status
        self.retry_after = retry_after
        self.headers = headers
        self.partial = partial  # what arrived of a reply that was cut off
        self.field = field  # with kind PARAMETER: the request field the server refused


class ChatClient:
    """Sends chat-completion requests to one endpoint. Use as ``async with ChatClient(...)``."""

    def __init__(self, endpoint: Endpoint, *, timeout: float, api: str = "chat") -> None:
        self.endpoint = endpoint
        self.api = api  # "chat", "responses", or "auto": chat until a model answers that it speaks only responses
        self._url = endpoint.base_url + "/chat/completions"
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        # A stream may take long in all, so its timeout is the longest silence, not the total.
        self._stream_timeout = aiohttp.ClientTimeout(total=None, connect=timeout, sock_read=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._secret = bool(endpoint.api_key) or "@" in endpoint.base_url
        self._stream_options = True  # until the server refuses them (older Azure, strict proxies)
        self._tokens_field = endpoint.tokens_field  # the name max_tokens= is sent under
        self._tokens_renamed = False  # asked again under the other name already (once per batch)
        self.older_dialect = False  # the server refused response_format json_schema: ask {"type": "json_object", ...}

    async def __aenter__(self) -> ChatClient:
        _keep_read_buffers_on_heap()
        headers = {"Content-Type": "application/json", **self.endpoint.headers()}
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=KEEPALIVE)
        self._session = aiohttp.ClientSession(connector=connector, headers=headers, timeout=self._timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def list_models(self) -> list[str]:
        assert self._session is not None
        try:
            async with self._session.get(self.endpoint.base_url + "/models") as resp:
                if resp.status != 200:
                    raise await self._http_error(resp)
                data = json.loads(await resp.read())
            return [self.endpoint.redact(str(m["id"])) for m in data["data"]]
        except asyncio.TimeoutError:
            raise RequestFailed(f"{self.endpoint.host}/models did not answer within {self._timeout.total:g} s",
                                failures.TIMEOUT) from None
        except aiohttp.ClientError as exc:
            raise self._connection_error(exc) from None
        except (ValueError, LookupError, TypeError):
            raise RequestFailed(
                f"{self.endpoint.host}/models did not answer with an OpenAI model list: is this an "
                "OpenAI-compatible endpoint? (base_url usually ends in /v1)", failures.NOT_FOUND
            ) from None

    async def complete(self, body: dict[str, Any], on_delta: Callable[[str], None] | None = None) -> Completion:
        """One attempt. Raises RequestFailed on any failure, with the cause in one line.

        The request is sent here, not in a helper coroutine: every reply resumes each frame it awaits through,
        and at thousands of replies a second the frames are a measurable share of the client's CPU."""
        session = self._session
        assert session is not None
        model = str(body.get("model"))
        while True:  # sent again only after a refusal that says how to ask instead (each switch once per batch)
            on_responses = self.uses_responses(model)
            wire = self._wire(body)
            if on_responses:
                wire = responses.to_responses(wire)
            stream = bool(wire.get("stream"))
            timeout = self._stream_timeout if stream else self._timeout
            url = self.endpoint.base_url + responses.PATH if on_responses else self._url
            try:
                async with session.post(url, data=json.dumps(wire).encode(), timeout=timeout) as resp:
                    if resp.status != 200:
                        raise await self._http_error(resp, failures.shared_fields(wire))
                    headers_at = time.monotonic()
                    if resp.content_type == "text/html":
                        raise RequestFailed(f"{self.endpoint.host} answered with a web page, not JSON: {_NOT_OPENAI}",
                                            failures.NOT_FOUND)
                    if stream and resp.content_type != "application/json":  # some servers ignore stream: true
                        read = self._read_responses_stream if on_responses else self._read_stream
                        completion = await read(resp, on_delta)
                    else:
                        raw = await resp.read()
                        completion = self._parse_response(raw) if on_responses else self._parse(raw)
                        if stream and on_delta is not None and completion.text:
                            on_delta(self.endpoint.redact(completion.text) if self._secret else completion.text)
                    completion.headers, completion.headers_at = resp.headers, headers_at
            except RequestFailed as exc:
                failed = exc
            except asyncio.TimeoutError:
                what = f"nothing arrived for {timeout.sock_read:g} s" if stream else f"after {timeout.total:g} s"
                failed = RequestFailed(f"timed out: {what}" if stream else f"timed out {what}", failures.TIMEOUT)
            except aiohttp.ClientError as exc:
                failed = self._connection_error(exc)
            else:
                if self._secret:  # a server that echoes the key back must not get it into results or the cache
                    completion.text = self.endpoint.redact(completion.text)
                    completion.model = completion.model and self.endpoint.redact(completion.model)
                return completion
            if not self._ask_otherwise(body, wire, failed, model, on_responses):
                raise failed

    def _ask_otherwise(self, body: dict[str, Any], wire: dict[str, Any], exc: RequestFailed, model: str,
                       on_responses: bool) -> bool:
        """Did the server refuse something it has another form for? Then switch to it: the request goes again."""
        if not on_responses and self.api == "auto" and responses.ONLY_RESPONSES in str(exc).lower():
            responses.remember_responses_only(self.endpoint.base_url, model)  # for this batch and the next
            return True
        if exc.status in (400, 422) and "stream_options" in str(exc) and "stream_options" in wire:
            self._stream_options = False  # this server streams without them: no usage, but it works
            return True
        if self._renamed_bound(body, wire, exc):
            return True
        if not self.older_dialect and refuses_json_schema(exc.status, str(exc), body):
            self.older_dialect = True  # once per batch: every later request is asked the old way
            return True
        return False

    def uses_responses(self, model: str) -> bool:
        """Does a request for ``model`` go to /v1/responses (not /v1/chat/completions)?"""
        return responses.wants_responses(self.api, self.endpoint.base_url, model)

    def _wire(self, body: dict[str, Any]) -> dict[str, Any]:
        """``body`` as this server wants it: no stream_options once refused, the schema in the form it takes, max_tokens
        under its name here."""
        if "stream_options" in body and not self._stream_options:
            body = {k: v for k, v in body.items() if k != "stream_options"}
        if self.older_dialect:
            body = older_dialect(body)
        name = self._tokens_field
        if name != "max_tokens" and "max_tokens" in body and name not in body:
            body = {(name if k == "max_tokens" else k): v for k, v in body.items()}
        return body

    def _renamed_bound(self, body: dict[str, Any], wire: dict[str, Any], exc: RequestFailed) -> bool:
        """Did the server refuse the reply bound's name, so that this request goes again under the other?
        Switched once per batch; requests already sent under the refused name follow the switch."""
        sent = exc.field if exc.kind == failures.PARAMETER and exc.field in _OTHER_NAME else None
        if sent is None or "max_tokens" not in body or sent not in wire:
            return False
        other = _OTHER_NAME[sent]
        # max_tokens is renamed only when the server names the other field; the newer name, ours, always.
        if sent == self._tokens_field and not self._tokens_renamed and (sent != "max_tokens" or other in str(exc)):
            self._tokens_field, self._tokens_renamed = other, True
        return self._tokens_field != sent

    def _kept(self, parts: list[str]) -> str:
        """What arrived of a reply that was cut off, as kept on its row: without the key, if echoed."""
        text = "".join(parts)
        return self.endpoint.redact(text) if self._secret else text

    def _one_line(self, text: str) -> str:
        """Server text for an error message: one line, the key redacted, then cut (a cut key would not match)."""
        return self.endpoint.redact(" ".join(text.split()))[:200]

    def _connection_error(self, exc: aiohttp.ClientError) -> RequestFailed:
        if isinstance(exc, aiohttp.ClientConnectorError):
            message = f"cannot connect to {self.endpoint.host}: is the server running? ({exc.strerror or 'refused'})"
            return RequestFailed(self.endpoint.redact(message), failures.CONNECTION, unreachable=True)
        elif isinstance(exc, aiohttp.ServerDisconnectedError):
            message = f"{self.endpoint.host} closed the connection before answering"
        elif isinstance(exc, aiohttp.ClientPayloadError):
            message = f"{self.endpoint.host} dropped the connection mid-response"
        elif isinstance(exc, aiohttp.ClientOSError):
            message = f"connection to {self.endpoint.host} failed: {exc.strerror or exc}"
        else:
            message = f"connection error: {type(exc).__name__}: {exc}"
        return RequestFailed(self.endpoint.redact(message), failures.CONNECTION)

    async def _http_error(self, resp: aiohttp.ClientResponse, fields: Collection[str] = ()) -> RequestFailed:
        raw = await resp.read()
        detail = raw[:65536].decode("utf-8", "replace")
        body: Any = None
        try:
            body = json.loads(raw)
            message, code = error_message(body)
            if message:
                detail = f"{code}: {message}" if code else message
        except ValueError:
            if "html" in resp.headers.get("Content-Type", "") or detail.lstrip()[:1] == "<":
                detail = ("an error page from a proxy or gateway in front of the server" if resp.status >= 500
                          else f"a web page, not an OpenAI error: {_NOT_OPENAI}")
        detail = self._one_line(detail)
        status = resp.status
        kind = failures.classify(status, body, detail, resp.headers, fields)
        field = failures.refused_field(status, body, detail, fields) if kind == failures.PARAMETER else None
        return RequestFailed(
            self.endpoint.redact(f"HTTP {status} {resp.reason or ''}".rstrip() + (f": {detail}" if detail else "")),
            kind,
            status=status,
            retry_after=parse_retry_after(resp.headers) or retry_delay_in_body(body),
            headers=resp.headers,
            field=field,
        )

    def _parse(self, raw: bytes) -> Completion:
        try:
            data = json.loads(raw)
        except ValueError:
            raise RequestFailed("the server answered 200 with a body that is not JSON", failures.SERVER) from None
        choices = data.get("choices") if isinstance(data, dict) else None
        if not choices:
            if isinstance(data, dict) and data.get("error"):
                raise self._error_in_200(data)
            raise RequestFailed("the server answered 200 with no choices", failures.SERVER)
        choice = choices[0]
        usage = data.get("usage") or {}
        reply = choice.get("message") or {}
        return Completion(
            text_of(reply.get("content")),
            data.get("model"),
            usage.get("prompt_tokens"),
            usage.get("completion_tokens"),
            choice.get("finish_reason"),
            cached_tokens_of(usage),
            reasoning_tokens=reasoning_tokens_of(usage),
            refusal=_refusal(reply),
        )

    def _parse_response(self, raw: bytes) -> Completion:
        """A Responses API reply: a ``response`` object, or an error in a 200 body."""
        try:
            data = json.loads(raw)
        except ValueError:
            raise RequestFailed("the server answered 200 with a body that is not JSON", failures.SERVER) from None
        if not isinstance(data, dict) or data.get("object") != "response":
            if isinstance(data, dict) and data.get("error"):
                raise self._error_in_200(data)
            raise RequestFailed("the server answered 200 with no response object", failures.SERVER)
        return self._finished_response(data)

    def _finished_response(self, data: dict[str, Any]) -> Completion:
        failed = responses.failure_of(data)
        if failed is not None:
            raise self._error_in_200(failed)
        return responses.parse_response(data)

    def _error_in_200(self, data: dict[str, Any]) -> RequestFailed:
        message = self._one_line(error_message(data)[0] or str(data["error"]))
        kind = failures.classify(None, data, message, {})
        return RequestFailed(f"the server answered 200 with an error: {message}", kind)

    async def _read_responses_stream(self, resp: aiohttp.ClientResponse,
                                     on_delta: Callable[[str], None] | None) -> Completion:
        """A streamed response: text from ``response.output_text.delta`` events, the rest from the last event."""
        state = responses.StreamState()
        parts: list[str] = []
        decoder = SSEDecoder()

        def take(events: list[Any]) -> None:
            for event in events:
                text = state.take(event) if isinstance(event, dict) else ""
                if text:
                    parts.append(text)
                    if on_delta is not None:
                        on_delta(text)

        try:
            async for data in resp.content.iter_any():
                take(decoder.feed(data))
                if state.final is not None:
                    break
            else:
                take(decoder.close())
        except StreamError as exc:  # an ``error`` event
            message = self._one_line(str(exc))
            kind = failures.classify(exc.status, None, message)
            kind = failures.SERVER if kind == failures.CONNECTION else kind
            raise RequestFailed(f"the server reported an error mid-stream: {message}", kind, status=exc.status,
                                partial=self._kept(parts)) from None
        except aiohttp.ClientPayloadError:
            raise RequestFailed(f"{self.endpoint.host} dropped the connection mid-reply (cut off)", failures.CUT,
                                partial=self._kept(parts)) from None
        except ValueError as exc:
            raise RequestFailed(str(exc), failures.SERVER) from None
        if state.final is None:
            raise RequestFailed(f"{self.endpoint.host} ended the stream before the response was finished (cut off)",
                                failures.CUT, partial=self._kept(parts))
        failed = responses.failure_of(state.final)
        if failed is not None:  # a response.failed event: an error mid-stream, what arrived kept
            message = self._one_line(error_message(failed)[0] or "the response failed")
            raise RequestFailed(f"the server reported an error mid-stream: {message}",
                                failures.classify(None, failed, message), partial=self._kept(parts))
        completion = responses.parse_response(state.final)
        completion.text = completion.text or "".join(parts)  # the final event repeats the text; trust the deltas if not
        return completion

    async def _read_stream(self, resp: aiohttp.ClientResponse, on_delta: Callable[[str], None] | None) -> Completion:
        parts: list[str] = []
        model: str | None = None
        finish: str | None = None
        usage: dict[str, Any] = {}
        refusals: list[str] = []

        def take(chunk: Any) -> bool:
            """Apply one event; True at [DONE]."""
            nonlocal model, finish, usage
            if chunk is DONE:
                return True
            if isinstance(chunk, dict):
                model = chunk.get("model") or model
                if isinstance(chunk.get("usage"), dict):
                    usage = chunk["usage"]
                for choice in chunk.get("choices") or ():
                    if not isinstance(choice, dict):
                        continue
                    delta = choice.get("delta")
                    text = text_of(delta.get("content")) if isinstance(delta, dict) else ""
                    if isinstance(delta, dict) and (refusal := _refusal(delta)):
                        refusals.append(refusal)
                    if text:
                        parts.append(text)
                        if on_delta is not None:
                            on_delta(text)
                    finish = choice.get("finish_reason") or finish
                if finish == "error":  # OpenRouter: the upstream provider failed mid-reply
                    raise StreamError("the reply ended with finish_reason 'error'")
            return False

        decoder = SSEDecoder()
        done = False
        try:
            async for data in resp.content.iter_any():  # not line by line: a line can be longer than any buffer
                if any(take(chunk) for chunk in decoder.feed(data)):
                    done = True
                    break
            else:
                done = any(take(chunk) for chunk in decoder.close())
        except StreamError as exc:
            message = self._one_line(str(exc))
            kind = failures.classify(exc.status, None, message)
            kind = failures.SERVER if kind == failures.CONNECTION else kind  # it did answer: an error chunk
            raise RequestFailed(f"the server reported an error mid-stream: {message}", kind, status=exc.status,
                                partial=self._kept(parts)) from None
        except aiohttp.ClientPayloadError:  # the connection dropped part-way through the reply
            raise RequestFailed(f"{self.endpoint.host} dropped the connection mid-reply (cut off)", failures.CUT,
                                partial=self._kept(parts)) from None
        except ValueError as exc:
            raise RequestFailed(str(exc), failures.SERVER) from None
        # A reply that did not finish is not a reply, [DONE] or not (llama.cpp ends queued ones so).
        if failures.classify_finish(finish, stream=True) == failures.CUT:
            how = "sent [DONE] without a finish_reason" if done else "ended the stream"
            raise RequestFailed(f"{self.endpoint.host} {how} before the reply was finished (cut off)", failures.CUT,
                                partial=self._kept(parts))
        return Completion("".join(parts), model, usage.get("prompt_tokens"), usage.get("completion_tokens"), finish,
                          cached_tokens_of(usage), reasoning_tokens=reasoning_tokens_of(usage),
                          refusal="".join(refusals) or None)
