"""The HTTP layer: one aiohttp session speaking the OpenAI chat-completions protocol.

A bare aiohttp client costs a fraction of the CPU of the openai SDK per request (see
benchmarks/README.md), and its connection pool is unbounded here: requests wait on our Limiter,
never inside the pool, so a pool timeout can never start counting while a request is queued.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from .endpoints import Endpoint
from .retry import RETRYABLE_STATUS, parse_retry_after

__all__ = ["ChatClient", "Completion", "RequestFailed"]


@dataclass(slots=True)
class Completion:
    text: str
    model: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    finish_reason: str | None
    headers: Any = None  # the response headers (rate-limit hints); not kept in results


def _text(content: Any) -> str:
    """Message content as text: some servers send a list of parts ({"type": "text", "text": ...})."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return "" if content is None else str(content)


_HINTS = {
    401: "check the API key in the environment variable the provider uses",
    403: "the key is not allowed to use this model or endpoint",
    404: "check base_url (it usually ends in /v1) and the model name",
}


class RequestFailed(Exception):
    """One attempt failed. ``retryable`` says whether trying again may help."""

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False,
                 retry_after: float | None = None, headers: Any = None, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable  # nothing answered at all: no server, wrong host or port
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after
        self.headers = headers


class ChatClient:
    """Sends chat-completion requests to one endpoint. Use as ``async with ChatClient(...)``."""

    def __init__(self, endpoint: Endpoint, *, timeout: float) -> None:
        self.endpoint = endpoint
        self._url = endpoint.base_url + "/chat/completions"
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ChatClient:
        headers = {"Content-Type": "application/json", **self.endpoint.headers()}
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
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
        except aiohttp.ClientError as exc:
            raise self._connection_error(exc) from None
        except (ValueError, KeyError) as exc:
            raise RequestFailed(f"{self.endpoint.host}/models did not answer with a model list ({exc})") from None
        return [m["id"] for m in data.get("data", [])]

    async def complete(self, body: dict[str, Any], on_delta: Callable[[str], None] | None = None) -> Completion:
        """One attempt. Raises RequestFailed on any failure, with the cause in one line."""
        assert self._session is not None
        payload = json.dumps(body).encode()
        try:
            async with self._session.post(self._url, data=payload) as resp:
                if resp.status != 200:
                    raise await self._http_error(resp)
                if body.get("stream"):
                    completion = await self._read_stream(resp, on_delta)
                else:
                    completion = self._parse(await resp.read())
                completion.headers = resp.headers
                return completion
        except asyncio.TimeoutError:
            raise RequestFailed(f"timed out after {self._timeout.total:g} s", retryable=True) from None
        except aiohttp.ClientError as exc:
            raise self._connection_error(exc) from None

    def _connection_error(self, exc: aiohttp.ClientError) -> RequestFailed:
        if isinstance(exc, aiohttp.ClientConnectorError):
            message = f"cannot connect to {self.endpoint.host}: is the server running? ({exc.strerror or 'refused'})"
            return RequestFailed(self.endpoint.redact(message), retryable=True, unreachable=True)
        elif isinstance(exc, aiohttp.ServerDisconnectedError):
            message = f"{self.endpoint.host} closed the connection before answering"
        elif isinstance(exc, aiohttp.ClientPayloadError):
            message = f"{self.endpoint.host} dropped the connection mid-response"
        elif isinstance(exc, aiohttp.ClientOSError):
            message = f"connection to {self.endpoint.host} failed: {exc.strerror or exc}"
        else:
            message = f"connection error: {type(exc).__name__}: {exc}"
        return RequestFailed(self.endpoint.redact(message), retryable=True)

    async def _http_error(self, resp: aiohttp.ClientResponse) -> RequestFailed:
        raw = await resp.read()
        detail = raw[:300].decode("utf-8", "replace")
        try:
            error = json.loads(raw).get("error") or {}
            detail = error.get("message") or detail
            if error.get("code"):
                detail = f"{error['code']}: {detail}"
        except (ValueError, AttributeError):
            pass
        detail = " ".join(detail.split())[:200]
        status = resp.status
        hint = _HINTS.get(status)
        if hint:
            detail = f"{detail} ({hint})" if detail else hint
        return RequestFailed(
            self.endpoint.redact(f"HTTP {status} {resp.reason or ''}".rstrip() + (f": {detail}" if detail else "")),
            status=status,
            retryable=status in RETRYABLE_STATUS,
            retry_after=parse_retry_after(resp.headers),
            headers=resp.headers,
        )

    def _parse(self, raw: bytes) -> Completion:
        try:
            data = json.loads(raw)
        except ValueError:
            raise RequestFailed("the server answered 200 with a body that is not JSON", retryable=True) from None
        choices = data.get("choices") if isinstance(data, dict) else None
        if not choices:
            raise RequestFailed("the server answered 200 with no choices", retryable=True)
        choice = choices[0]
        usage = data.get("usage") or {}
        return Completion(
            _text((choice.get("message") or {}).get("content")),
            data.get("model"),
            usage.get("prompt_tokens"),
            usage.get("completion_tokens"),
            choice.get("finish_reason"),
        )

    async def _read_stream(self, resp: aiohttp.ClientResponse, on_delta: Callable[[str], None] | None) -> Completion:
        parts: list[str] = []
        model = finish = None
        usage: dict[str, Any] = {}
        async for line in resp.content:
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                break
            try:
                chunk = json.loads(data)
            except ValueError:
                raise RequestFailed("the stream carried a chunk that is not JSON", retryable=True) from None
            model = chunk.get("model") or model
            usage = chunk.get("usage") or usage
            for choice in chunk.get("choices") or ():
                delta = _text((choice.get("delta") or {}).get("content"))
                if delta:
                    parts.append(delta)
                    if on_delta is not None:
                        on_delta(delta)
                finish = choice.get("finish_reason") or finish
        else:
            if finish is None:  # no [DONE] and no finish_reason: the stream was cut short
                raise RequestFailed(f"{self.endpoint.host} ended the stream before it was finished", retryable=True)
        return Completion("".join(parts), model, usage.get("prompt_tokens"), usage.get("completion_tokens"), finish)
