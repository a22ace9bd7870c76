"""The simulator in this process, answered by direct calls: no socket, no thread.

The only kind a browser can run (a page can open no listening socket, and Pyodide starts no thread), and on
CPython the one to pick for a simulator that costs no connection (``transport='in-process'``). The engine reaches
it through its in-process transport, which finds it by its base URL.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any, TypeVar

from nbtools._engine.transport.base import TransportError
from nbtools._engine.transport.local import Exchange, LocalReply, LocalTransport
from nbtools.sim.config import SimConfig
from nbtools.sim.simulator import Simulator

_numbers = itertools.count(1)
_by_url: dict[str, LocalSim] = {}  # the in-process simulators running, by base URL


S = TypeVar("S", bound="Running")


class Running:
    """A simulator's life as a context manager: ``with`` stops it at the end; its repr names its URL and state."""

    base_url: str

    @property
    def running(self) -> bool:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self: S) -> S:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.base_url} {'running' if self.running else 'stopped'}>"


class LocalSim(Running):
    """A simulator answering in this process until ``stop()``; its ``base_url`` names it, no socket behind it."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self._sim = Simulator(config or SimConfig())
        number = next(_numbers)
        self.url = f"http://in-process{'' if number == 1 else f'-{number}'}"
        self.base_url = f"{self.url}/v1"
        _by_url[self.base_url] = self

    async def answer(self, method: str, path: str, exchange: Exchange) -> None:
        await self._sim.answer(method, path, exchange)

    @property
    def running(self) -> bool:
        return _by_url.get(self.base_url) is self

    @property
    def config(self) -> SimConfig:
        return self._sim.config

    def stats(self) -> dict[str, Any]:
        """The counters an HTTP simulator serves at GET /sim/stats."""
        return self._sim.stats.snapshot()

    def batch_stats(self) -> dict[str, int]:
        """Batch API counters (as GET /sim/batches): uploads, jobs created, lines run, cancels."""
        return self._sim.batches.snapshot()

    def reset(self) -> None:
        """Zero the counters, restart the random stream, forget flaky counts and rate windows."""
        self._sim.reset()

    def configure(self, /, **knobs: Any) -> SimConfig:
        """Change knobs live (validated; ValueError leaves the config untouched)."""
        return self._sim.configure(**knobs)

    def stop(self) -> None:
        _by_url.pop(self.base_url, None)


def serve_in_process(config: SimConfig | None = None, **knobs: Any) -> LocalSim:
    """A simulator in this process (no socket, no thread); ``knobs`` override fields of ``config``."""
    return LocalSim((config or SimConfig()).replace(**knobs))


_shared: LocalSim | None = None


def shared_local() -> LocalSim:
    """The process-wide in-process simulator with default knobs, started on first use (again if stopped)."""
    global _shared
    if _shared is None or not _shared.running:
        _shared = LocalSim()
    return _shared


def local_server(base_url: str) -> LocalSim | None:
    """The in-process simulator answering ``base_url``, if one is running."""
    return _by_url.get(base_url.rstrip("/"))


def httpx_transport(sim: LocalSim | None = None) -> Any:
    """An httpx transport answered by ``sim`` in-process (default: the shared in-process simulator), for clients
    built on httpx, such as the openai SDK, where no socket can open (a browser)::

        client = AsyncOpenAI(base_url=sim.base_url, api_key="sim",
                             http_client=httpx.AsyncClient(transport=nbtools.sim.httpx_transport(sim)))
    """
    import httpx  # the openai SDK's; not a dependency of nbtools

    local = LocalTransport(sim if sim is not None else shared_local(), timeout=600.0)  # httpx applies the client's own timeouts

    class _Body(httpx.AsyncByteStream):
        def __init__(self, reply: LocalReply, stack: AsyncExitStack) -> None:
            self._reply, self._stack = reply, stack

        async def __aiter__(self) -> AsyncIterator[bytes]:
            try:
                async for chunk in self._reply.iter_any():
                    yield chunk
            except TransportError as exc:
                raise httpx.RemoteProtocolError(f"the simulator hung up mid-reply: {exc}") from None

        async def aclose(self) -> None:
            await self._stack.aclose()

    class _Transport(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            stack = AsyncExitStack()
            try:
                reply = await stack.enter_async_context(
                    local.send(request.method, str(request.url), await request.aread(), True,
                               request.headers.get("Content-Type", "")))
            except TransportError as exc:
                await stack.aclose()
                raise httpx.ConnectError(f"the simulator hung up: {exc}", request=request) from None
            return httpx.Response(reply.status, headers=dict(reply.headers), stream=_Body(reply, stack))

    return _Transport()
