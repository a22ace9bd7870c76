"""The browser's transport (Pyodide): the page's own ``fetch``, streaming through the body's reader.

A page has no sockets: every request goes through ``fetch``, under the browser's rules (CORS). Timeouts and
cancellation abort the request, so nothing keeps running in the page after the batch stopped waiting for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Mapping
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from nbtools._engine.transport.base import BLOCKED, BodyCut, Headers, TransportError, media_type

T = TypeVar("T")


class FetchReply:
    """A fetch Response as the Reply protocol: its body read whole, or chunk by chunk through its reader."""

    def __init__(self, response: Any, silence: float, deadline: float | None) -> None:
        self._response, self._silence, self._deadline = response, silence, deadline
        self.status: int = response.status
        self.reason: str | None = response.status_text or None
        self.headers = Headers(response.headers)
        self.content_type = media_type(self.headers)
        self.content = self

    async def _within(self, step: Awaitable[T]) -> T:
        """``step``, within the silence allowed (stream) or what is left of the whole exchange's time."""
        wait = self._silence
        if self._deadline is not None:
            wait = self._deadline - asyncio.get_running_loop().time()

        async def run() -> T:
            return await step

        try:
            return await asyncio.wait_for(run(), wait)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            raise
        except Exception as exc:  # a JavaScript error: the connection broke part-way
            raise BodyCut(str(exc)) from None

    async def iter_any(self) -> AsyncIterator[bytes]:
        reader = self._response.js_response.body.getReader()
        while True:
            chunk = await self._within(reader.read())
            if chunk.done:
                return
            yield bytes(chunk.value.to_py())

    async def read(self) -> bytes:
        return bytes(await self._within(self._response.bytes()))


class FetchTransport:
    errors: tuple[type[BaseException], ...] = (TransportError,)
    cut: tuple[type[BaseException], ...] = (BodyCut,)

    def __init__(self, headers: Mapping[str, str], timeout: float) -> None:
        self._headers, self._timeout = dict(headers), timeout

    def post(self, url: str, data: bytes, stream: bool) -> Any:
        return self._exchange("POST", url, data, stream)

    def get(self, url: str) -> Any:
        return self._exchange("GET", url, None, False)

    def request(self, method: str, url: str, data: bytes | None, content_type: str) -> Any:
        return self._exchange(method, url, data, False, None if data is None else content_type)

    @asynccontextmanager
    async def _exchange(self, method: str, url: str, data: bytes | None, stream: bool,
                        content_type: str | None = None) -> AsyncIterator[FetchReply]:
        from js import AbortController
        from pyodide.http import pyfetch

        abort = AbortController.new()
        loop = asyncio.get_running_loop()
        deadline = None if stream else loop.time() + self._timeout
        headers = self._headers if content_type is None else {**self._headers, "Content-Type": content_type}
        sent = pyfetch(url, method=method, headers=headers, signal=abort.signal,
                       **({} if data is None else {"body": data.decode()}))
        try:
            try:
                response = await asyncio.wait_for(sent, self._timeout)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                raise
            except Exception as exc:  # fetch tells a page nothing more: "Failed to fetch", whatever the cause
                raise TransportError(BLOCKED, str(exc)) from None
            yield FetchReply(response, self._timeout, deadline)
        finally:
            abort.abort()  # a no-op once the body was read; otherwise the request stops here

    @staticmethod
    def describe(exc: BaseException) -> tuple[str, str]:
        return (exc.kind, str(exc)) if isinstance(exc, TransportError) else ("", repr(exc))

    async def close(self) -> None:
        pass
