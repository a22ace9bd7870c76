"""The in-process transport: a server in this process (the simulator) answers by direct calls, no socket.

The server sees each request as an Exchange (read the body; send a whole reply, or open one and write it part by
part; or hang up), the same interface its HTTP front end gives it, so the same code answers both ways. Its handler
runs as a task of its own, as under an HTTP server, and is cancelled when the client goes away.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Protocol
from urllib.parse import urlsplit

from nbtools._engine.transport.base import DISCONNECTED, OS, BodyCut, Headers, TransportError, media_type

JSON = "application/json"
_END = b""  # queued after the last chunk


class Exchange(Protocol):
    """One request as a server answers it, whatever carries it."""

    @property
    def headers(self) -> Mapping[str, str]: ...  # the request's (names in any case): Host, Content-Type
    async def read(self) -> bytes: ...
    async def send(self, status: int, body: bytes, headers: Mapping[str, str], content_type: str = JSON) -> bool: ...
    async def open(self, headers: Mapping[str, str]) -> None: ...  # a 200 whose body follows in writes
    async def write(self, data: bytes) -> None: ...  # ConnectionError once the client has gone
    async def end(self) -> None: ...
    def drop(self, reset: bool) -> None: ...  # hang up: reset at once, or after what was written


class LocalServer(Protocol):
    async def answer(self, method: str, path: str, exchange: Exchange) -> None: ...


class _Pipe:
    """Both ends of one in-process exchange: the server writes into it, the client reads from it."""

    def __init__(self, body: bytes, host: str, content_type: str) -> None:
        self.body, self.host, self.content_type = body, host, content_type
        self.started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.chunks: asyncio.Queue[bytes | BaseException] = asyncio.Queue()
        self.status, self.reason, self.headers = 0, None, Headers()
        self.gone = False

    def start(self, status: int, headers: Mapping[str, str]) -> None:
        self.status, self.headers = status, Headers(headers)
        if not self.started.done():
            self.started.set_result(None)

    def fail(self, error: BaseException) -> None:
        """The connection ends with ``error``: before the reply began, or part-way through its body."""
        if not self.started.done():
            self.started.set_exception(error)
        else:
            self.chunks.put_nowait(error)


class _ServerEnd:
    """The Exchange the server is handed."""

    def __init__(self, pipe: _Pipe) -> None:
        self._pipe = pipe

    @property
    def headers(self) -> Headers:
        """What an HTTP request would carry: the Host its URL names, and its body's Content-Type (if any)."""
        pipe = self._pipe
        return Headers({"Host": pipe.host, **({"Content-Type": pipe.content_type} if pipe.content_type else {})})

    async def read(self) -> bytes:
        return self._pipe.body

    async def send(self, status: int, body: bytes, headers: Mapping[str, str], content_type: str = JSON) -> bool:
        if self._pipe.gone:
            return False
        self._pipe.start(status, {"Content-Type": content_type, **headers})
        self._pipe.chunks.put_nowait(body)
        self._pipe.chunks.put_nowait(_END)
        return True

    async def open(self, headers: Mapping[str, str]) -> None:
        self._pipe.start(200, headers)

    async def write(self, data: bytes) -> None:
        if self._pipe.gone:
            raise ConnectionResetError("the client went away")
        if data:
            self._pipe.chunks.put_nowait(data)

    async def end(self) -> None:
        self._pipe.chunks.put_nowait(_END)

    def drop(self, reset: bool) -> None:
        pipe = self._pipe
        if reset:
            pipe.fail(TransportError(OS, "connection reset by peer"))
        else:  # what was written arrives, then the end of the connection
            pipe.fail(BodyCut() if pipe.started.done() else TransportError(DISCONNECTED))


class LocalReply:
    """The client's view of an in-process reply: the Reply protocol, read with the transport's timeouts."""

    def __init__(self, pipe: _Pipe, silence: float | None, deadline: float | None) -> None:
        self._pipe, self._silence, self._deadline = pipe, silence, deadline
        self.status, self.reason, self.headers = pipe.status, pipe.reason, pipe.headers
        self.content_type = media_type(pipe.headers)
        self.content = self

    async def _next(self) -> bytes:
        chunks = self._pipe.chunks
        if chunks.empty():
            wait = self._silence
            if self._deadline is not None:
                wait = self._deadline - asyncio.get_running_loop().time()
            chunk = await asyncio.wait_for(chunks.get(), wait)
        else:
            chunk = chunks.get_nowait()
        if isinstance(chunk, BaseException):
            chunks.put_nowait(chunk)  # read again, it fails again
            raise chunk
        if chunk is _END:
            chunks.put_nowait(_END)
        return chunk

    async def iter_any(self) -> AsyncIterator[bytes]:
        while chunk := await self._next():
            yield chunk

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.iter_any()])


class LocalTransport:
    errors: tuple[type[BaseException], ...] = (TransportError,)
    cut: tuple[type[BaseException], ...] = (BodyCut,)

    def __init__(self, server: LocalServer, timeout: float) -> None:
        self._server, self._timeout = server, timeout

    def post(self, url: str, data: bytes, stream: bool) -> Any:
        return self.send("POST", url, data, stream)

    def get(self, url: str) -> Any:
        return self.send("GET", url, b"", False, "")

    def request(self, method: str, url: str, data: bytes | None, content_type: str) -> Any:
        return self.send(method, url, data or b"", False, content_type if data is not None else "")

    @asynccontextmanager
    async def send(self, method: str, url: str, data: bytes, stream: bool,
                   content_type: str = JSON) -> AsyncIterator[LocalReply]:
        """One request: its reply, read within the timeout (a stream's: the longest silence)."""
        parts = urlsplit(url)
        pipe = _Pipe(data, parts.netloc, content_type)
        loop = asyncio.get_running_loop()
        handler = loop.create_task(self._server.answer(method, parts.path, _ServerEnd(pipe)))
        handler.add_done_callback(lambda task: _ended(task, pipe))
        deadline = None if stream else loop.time() + self._timeout
        try:
            await asyncio.wait_for(asyncio.shield(pipe.started), self._timeout)
            yield LocalReply(pipe, self._timeout, deadline)
        finally:
            pipe.gone = True
            if not handler.done():
                handler.cancel()  # as an HTTP server cancels the handler of a client that hung up

    @staticmethod
    def describe(exc: BaseException) -> tuple[str, str]:
        return (exc.kind, str(exc)) if isinstance(exc, TransportError) else ("", repr(exc))

    async def close(self) -> None:
        pass


def _ended(task: asyncio.Task[None], pipe: _Pipe) -> None:
    """The handler is done: one that ended without answering hung up; one that failed did so part-way."""
    error = None if task.cancelled() else task.exception()
    if error is not None:
        pipe.fail(TransportError(DISCONNECTED, f"the server failed: {type(error).__name__}"))
    elif not pipe.started.done():
        pipe.fail(TransportError(DISCONNECTED))


