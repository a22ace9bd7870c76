"""The HTTP layer: speaking the OpenAI chat-completions protocol (and the Responses API) over a transport.

No SDK: a bare aiohttp client costs a fraction of the CPU of the openai SDK per request (see
benchmarks/README.md). How the bytes travel (aiohttp, the browser's fetch, or in-process) is the transport's
(nbtools._engine.transport); what a request looks like is nbtools._engine.wire's; how a reply is read,
nbtools._engine.replies'.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Collection
from typing import Any

from nbtools._engine import failures, replies
from nbtools._engine.endpoints import Endpoint, local_server
from nbtools._engine.failures import RequestFailed
from nbtools._engine.replies import ChatStream, Completion, ResponsesStream, StreamCut
from nbtools._engine.retry import parse_retry_after, retry_delay_in_body
from nbtools._engine.sse import SSEDecoder, StreamError, error_message
from nbtools._engine.transport import open_transport
from nbtools._engine.transport.base import BLOCKED, CONNECT, DISCONNECTED, OS, PAYLOAD, Reply, Transport
from nbtools._engine.wire import CHAT_PATH, RESPONSES_PATH, Dialect

_NOT_OPENAI = "is base_url an OpenAI-compatible endpoint? (it usually ends in /v1)"
Stream = ChatStream | ResponsesStream


class ChatClient:
    """Sends chat-completion requests to one endpoint. Use as ``async with ChatClient(...)``."""

    def __init__(self, endpoint: Endpoint, *, timeout: float, api: str = "chat") -> None:
        self.endpoint = endpoint
        self.dialect = Dialect(endpoint, api)  # how this server takes a request, learnt from its refusals
        self._url = endpoint.base_url + CHAT_PATH
        self._responses_url = endpoint.base_url + RESPONSES_PATH
        self._seconds = timeout  # a stream's: the longest silence, not the total
        self._transport: Transport | None = None
        self._secret = bool(endpoint.api_key) or "@" in endpoint.base_url

    async def __aenter__(self) -> ChatClient:
        headers = {"Content-Type": "application/json", **self.endpoint.headers()}
        self._transport = open_transport(local_server(self.endpoint.base_url), headers,
                                         self._seconds, self.endpoint.provider)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._transport is not None:
            await self._transport.close()

    async def list_models(self) -> list[str]:
        transport = self._transport
        assert transport is not None
        try:
            async with transport.get(self.endpoint.base_url + "/models") as resp:
                if resp.status != 200:
                    raise await self._http_error(resp)
                data = json.loads(await resp.read())
            return [self.endpoint.redact(str(m["id"])) for m in data["data"]]
        except asyncio.TimeoutError:
            raise RequestFailed(f"{self.endpoint.host}/models did not answer within {self._seconds:g} s",
                                failures.TIMEOUT) from None
        except transport.errors as exc:
            raise self._connection_error(*transport.describe(exc)) from None
        except (ValueError, LookupError, TypeError):
            raise RequestFailed(
                f"{self.endpoint.host}/models did not answer with an OpenAI model list: is this an "
                "OpenAI-compatible endpoint? (base_url usually ends in /v1)", failures.NOT_FOUND
            ) from None

    async def complete(self, body: dict[str, Any], on_delta: Callable[[str], None] | None = None) -> Completion:
        """One attempt. Raises RequestFailed on any failure, with the cause in one line.

        The request is sent here, not in a helper coroutine: every reply resumes each frame it awaits through,
        and at thousands of replies a second the frames are a measurable share of the client's CPU."""
        transport = self._transport
        assert transport is not None
        model = str(body.get("model"))
        dialect = self.dialect
        while True:  # sent again only after a refusal that says how to ask instead (each switch once per batch)
            on_responses = dialect.on_responses(model)
            wire = dialect.encode(body, on_responses)
            stream = bool(wire.get("stream"))
            try:
                async with transport.post(self._responses_url if on_responses else self._url,
                                          json.dumps(wire).encode(), stream) as resp:
                    if resp.status != 200:
                        raise await self._http_error(resp, failures.shared_fields(wire))
                    headers_at = time.monotonic()
                    if resp.content_type == "text/html":
                        raise RequestFailed(f"{self.endpoint.host} answered with a web page, not JSON: {_NOT_OPENAI}",
                                            failures.NOT_FOUND)
                    if stream and resp.content_type != "application/json":  # some servers ignore stream: true
                        reader = ResponsesStream() if on_responses else ChatStream()
                        completion = await self._read_stream(resp, reader, on_delta)
                    else:
                        completion = self._parse(await resp.read(), on_responses)
                        if stream and on_delta is not None and completion.text:
                            on_delta(self.endpoint.redact(completion.text) if self._secret else completion.text)
                    completion.headers, completion.headers_at = resp.headers, headers_at
                    completion.request_id = replies.request_id_of(resp.headers) or completion.request_id
            except RequestFailed as exc:
                failed = exc
            except asyncio.TimeoutError:
                failed = RequestFailed(f"timed out: nothing arrived for {self._seconds:g} s" if stream
                                       else f"timed out after {self._seconds:g} s", failures.TIMEOUT)
            except transport.errors as exc:
                failed = self._connection_error(*transport.describe(exc))
            else:
                if self._secret:  # a server that echoes the key back must not get it into results or the cache
                    completion.text = self.endpoint.redact(completion.text)
                    completion.model = completion.model and self.endpoint.redact(completion.model)
                return completion
            if not dialect.learn(body, wire, failed, on_responses):
                raise failed

    @property
    def older_schema(self) -> bool:
        """Did the server take the schema only in the older form (json_object + schema)?"""
        return self.dialect.older_schema

    def _kept(self, parts: list[str]) -> str:
        """What arrived of a reply that was cut off, as kept on its row: without the key, if echoed."""
        text = "".join(parts)
        return self.endpoint.redact(text) if self._secret else text

    def _one_line(self, text: str) -> str:
        """Server text for an error message: one line, the key redacted, then cut (a cut key would not match)."""
        return self.endpoint.redact(" ".join(text.split()))[:200]

    def _connection_error(self, kind: str, detail: str) -> RequestFailed:
        """The one line for a connection failure of ``kind`` (a transport's CONNECT, DISCONNECTED, ...)."""
        message = self.endpoint.redact(connection_message(self.endpoint.host, kind, detail))
        return RequestFailed(message, failures.CONNECTION, unreachable=kind in (CONNECT, BLOCKED))

    async def _http_error(self, resp: Reply, fields: Collection[str] = ()) -> RequestFailed:
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

    def _parse(self, raw: bytes, on_responses: bool) -> Completion:
        """A reply that is not streamed: a chat completion (or a ``response`` object), or an error in a 200 body."""
        try:
            data = json.loads(raw)
        except ValueError:
            raise RequestFailed("the server answered 200 with a body that is not JSON", failures.SERVER) from None
        found = isinstance(data, dict) and (data.get("object") == "response" if on_responses else bool(data.get("choices")))
        if not found:
            if isinstance(data, dict) and data.get("error"):
                raise self._error_in_200(data)
            what = "no response object" if on_responses else "no choices"
            raise RequestFailed(f"the server answered 200 with {what}", failures.SERVER)
        if not on_responses:
            return replies.chat_completion(data)
        failed = replies.failure_of(data)
        if failed is not None:
            raise self._error_in_200(failed)
        return replies.parse_response(data)

    def _error_in_200(self, data: dict[str, Any]) -> RequestFailed:
        message = self._one_line(error_message(data)[0] or str(data["error"]))
        kind = failures.classify(None, data, message, {})
        return RequestFailed(f"the server answered 200 with an error: {message}", kind)

    async def _read_stream(self, resp: Reply, reader: Stream,
                           on_delta: Callable[[str], None] | None) -> Completion:
        """A streamed reply, read as it arrives (not line by line: a line can be longer than any buffer)."""
        decoder = SSEDecoder()
        assert self._transport is not None
        try:
            async for data in resp.content.iter_any():
                if self._take(reader, decoder.feed(data), on_delta):
                    break
            else:
                self._take(reader, decoder.close(), on_delta)
            completion = reader.completion()
        except StreamError as exc:  # an error chunk or event
            message = self._one_line(str(exc))
            kind = failures.classify(exc.status, None, message)
            kind = failures.SERVER if kind == failures.CONNECTION else kind  # it did answer: an error chunk
            raise RequestFailed(f"the server reported an error mid-stream: {message}", kind, status=exc.status,
                                partial=self._kept(reader.parts)) from None
        except self._transport.cut:  # the connection dropped part-way through the reply
            raise RequestFailed(f"{self.endpoint.host} dropped the connection mid-reply (cut off)", failures.CUT,
                                partial=self._kept(reader.parts)) from None
        except StreamCut as exc:
            raise RequestFailed(f"{self.endpoint.host} {exc} (cut off)", failures.CUT,
                                partial=self._kept(reader.parts)) from None
        except ValueError as exc:
            raise RequestFailed(str(exc), failures.SERVER) from None
        failed = replies.failure_of(reader.final) if isinstance(reader, ResponsesStream) and reader.final else None
        if failed is not None:  # a response.failed event: an error mid-stream, what arrived kept
            message = self._one_line(error_message(failed)[0] or "the response failed")
            raise RequestFailed(f"the server reported an error mid-stream: {message}",
                                failures.classify(None, failed, message), partial=self._kept(reader.parts))
        return completion

    @staticmethod
    def _take(reader: Stream, events: list[Any], on_delta: Callable[[str], None] | None) -> bool:
        """Feed ``events`` to the reader; True once the stream has ended."""
        for event in events:
            text = reader.take(event)
            if text and on_delta is not None:
                on_delta(text)
            if reader.ended:
                return True
        return False


def connection_message(host: str, kind: str, detail: str) -> str:
    """The one line for a connection failure of ``kind`` (a transport's CONNECT, DISCONNECTED, ...), not redacted."""
    if kind == CONNECT:
        return f"cannot connect to {host}: is the server running? ({detail})"
    if kind == BLOCKED:
        return (f"the browser could not reach {host} ({detail or 'Failed to fetch'}): it is down, or it refuses "
                "calls from a web page (CORS); use a server kernel, or the provider's proxy")
    return {DISCONNECTED: f"{host} closed the connection before answering",
            PAYLOAD: f"{host} dropped the connection mid-response",
            OS: f"connection to {host} failed: {detail}"}.get(kind, f"connection error: {detail}")
