"""The default transport on CPython: one aiohttp session, its connection pool unbounded.

Requests wait on our Limiter, never inside the pool, so a pool timeout can never start counting while a request
is queued. aiohttp's ClientResponse is handed up as it is: this seam costs one call per request.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

import aiohttp

from nbtools._engine.transport.base import CONNECT, DISCONNECTED, OS, PAYLOAD

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


class AiohttpTransport:
    errors: tuple[type[BaseException], ...] = (aiohttp.ClientError,)
    cut: tuple[type[BaseException], ...] = (aiohttp.ClientPayloadError,)

    def __init__(self, headers: Mapping[str, str], timeout: float) -> None:
        _keep_read_buffers_on_heap()
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        # A stream may take long in all, so its timeout is the longest silence, not the total.
        self._stream_timeout = aiohttp.ClientTimeout(total=None, connect=timeout, sock_read=timeout)
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=KEEPALIVE)
        self._session = aiohttp.ClientSession(connector=connector, headers=dict(headers), timeout=self._timeout)

    def post(self, url: str, data: bytes, stream: bool) -> AbstractAsyncContextManager[Any]:
        return self._session.post(url, data=data, timeout=self._stream_timeout if stream else self._timeout)

    def get(self, url: str) -> AbstractAsyncContextManager[Any]:
        return self._session.get(url)

    def request(self, method: str, url: str, data: bytes | None, content_type: str) -> AbstractAsyncContextManager[Any]:
        return self._session.request(method, url, data=data,
                                     headers=None if data is None else {"Content-Type": content_type})

    @staticmethod
    def describe(exc: BaseException) -> tuple[str, str]:
        if isinstance(exc, aiohttp.ClientConnectorError):
            return CONNECT, exc.strerror or "refused"
        if isinstance(exc, aiohttp.ServerDisconnectedError):
            return DISCONNECTED, ""
        if isinstance(exc, aiohttp.ClientPayloadError):
            return PAYLOAD, ""
        if isinstance(exc, aiohttp.ClientOSError):
            return OS, str(exc.strerror or exc)
        return "", f"{type(exc).__name__}: {exc}"

    async def close(self) -> None:
        await self._session.close()
