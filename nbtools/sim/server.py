"""The simulator's HTTP front end (aiohttp): each request handed to the Simulator as an Exchange.

The behaviour is simulator.py's (the Batch APIs' batches.py's); this module only carries it over sockets.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from nbtools._engine.transport.local import JSON
from nbtools.sim.batches import Route
from nbtools.sim.config import SimConfig
from nbtools.sim.simulator import Simulator

_SHUTDOWN_TIMEOUT = 0.25  # seconds; sleeping replies are simulated, no need to let them finish


class _WebExchange:
    """One aiohttp request as the Simulator answers it; ``response`` is what the route hands back."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.response: web.StreamResponse = web.Response()  # never sent if the simulator hangs up first

    @property
    def headers(self) -> Mapping[str, str]:
        return self.request.headers

    async def read(self) -> bytes:
        return await self.request.read()

    async def send(self, status: int, body: bytes, headers: Mapping[str, str], content_type: str = JSON) -> bool:
        """Send a whole response now; False if the client went away first."""
        response = self.response = web.Response(status=status, body=body, content_type=content_type,
                                                headers=dict(headers))
        try:
            await response.prepare(self.request)
            await response.write_eof()
        except ConnectionError:
            return False
        return True

    async def open(self, headers: Mapping[str, str]) -> None:
        response = self.response = web.StreamResponse(headers=dict(headers))
        await response.prepare(self.request)

    async def write(self, data: bytes) -> None:
        await self.response.write(data)

    async def end(self) -> None:
        await self.response.write_eof()

    def drop(self, reset: bool) -> None:
        """Hang up: ``reset`` sends a TCP RST at once, otherwise flush what was written and close."""
        transport = self.request.transport
        if transport is None:
            return
        if reset:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        else:
            transport.close()


def _route(answer: Callable[[_WebExchange], Awaitable[None]]) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        exchange = _WebExchange(request)
        await answer(exchange)
        return exchange.response

    return handle


def _named(answer: Route) -> Callable[[_WebExchange], Awaitable[None]]:
    """A Batch API route, handed the {id} its path names ("" if none)."""
    return lambda exchange: answer(exchange, exchange.request.match_info.get("id", ""))


SIMULATOR = web.AppKey("simulator", Simulator)


def make_app(config: SimConfig) -> web.Application:
    sim = Simulator(config)
    app = web.Application(client_max_size=16 * 2**20)
    app[SIMULATOR] = sim
    for (method, path), answer in sim.routes.items():
        app.router.add_route(method, path, _route(answer))
    for (method, path), batch_answer in sim.batches.routes.items():
        app.router.add_route(method, path, _route(_named(batch_answer)))
    return app


async def start(config: SimConfig, host: str, port: int) -> tuple[web.AppRunner, Simulator, int]:
    """Start listening; returns the runner (for cleanup), the simulator and the bound port."""
    app = make_app(config)
    # No access log: no per-request logging. Handler cancellation: a request whose client hung
    # up stops at once (freeing its capacity slot), as real servers abort such requests.
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=_SHUTDOWN_TIMEOUT)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=4096)
    await site.start()
    bound = runner.addresses[0][1]
    return runner, app[SIMULATOR], bound
