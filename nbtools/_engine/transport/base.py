"""The transport seam's vocabulary: what a transport is, what it hands back, how its failures are told apart."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Protocol

IN_BROWSER = sys.platform == "emscripten"  # Pyodide: no sockets, no threads; fetch is the only way out

# Kinds of a connection failure, whatever the transport: the client words each one.
CONNECT, DISCONNECTED, PAYLOAD, OS = "connect", "disconnected", "payload", "os"
BLOCKED = "blocked"  # the browser's fetch failed: the server is down, or refuses calls from a page (CORS)


class TransportError(Exception):
    """A failure below HTTP: ``kind`` is one of CONNECT, DISCONNECTED, PAYLOAD, OS; the text says what happened."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(detail)
        self.kind = kind


class BodyCut(TransportError):
    """The connection dropped part-way through a reply's body."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(PAYLOAD, detail)


class Chunks(Protocol):
    def iter_any(self) -> AsyncIterator[bytes]: ...


class Reply(Protocol):
    """What a transport gives back (aiohttp's ClientResponse is one as it is: no wrapper on the default path)."""

    @property
    def status(self) -> int: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def headers(self) -> Mapping[str, str]: ...  # names in any case
    @property
    def content_type(self) -> str: ...
    @property
    def content(self) -> Chunks: ...  # the body as it arrives
    async def read(self) -> bytes: ...


class Transport(Protocol):
    """Sends requests to one server (``async with transport.post(...) as reply``): ``post`` and ``get`` are the
    online path's (its JSON typed by the headers the transport was opened with), ``request`` sends any method and
    body type. ``errors``: what its calls raise when the connection fails (``describe`` turns one into a kind and a
    detail); ``cut``: what reading a body raises when it is cut off part-way.
    Timeouts raise asyncio.TimeoutError: for a stream, the longest silence; otherwise the whole exchange."""

    errors: tuple[type[BaseException], ...]
    cut: tuple[type[BaseException], ...]

    def post(self, url: str, data: bytes, stream: bool) -> AbstractAsyncContextManager[Reply]:
        ...
    def get(self, url: str) -> AbstractAsyncContextManager[Reply]: ...
    def request(self, method: str, url: str, data: bytes | None,
                content_type: str) -> AbstractAsyncContextManager[Reply]:
        """Any method, with a body (if any) of its own ``content_type``: the Batch API's calls."""
        ...
    def describe(self, exc: BaseException) -> tuple[str, str]: ...
    async def close(self) -> None: ...


class Headers(Mapping[str, str]):
    """Reply headers looked up in any case (HTTP names are case-insensitive)."""

    def __init__(self, pairs: Mapping[str, str] | None = None) -> None:
        self._items = {name.lower(): value for name, value in (pairs or {}).items()}

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


def media_type(headers: Mapping[str, str]) -> str:
    """The Content-Type without its parameters, as aiohttp's ``content_type`` gives it."""
    return headers.get("content-type", "application/octet-stream").partition(";")[0].strip().lower()
