"""Fixtures the engine's end-to-end tests share."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from nbtools.sim import LocalSim, SimServer, serve_in_process
from nbtools.sim import serve as serve_http
from tests.support.error_server import ProviderServer, Script
from tests.support.helpers import serve_app


@pytest.fixture
def serve() -> Iterator[Callable[..., tuple[ProviderServer, str]]]:
    """``serve(script)``: a provider's server answering by ``script``; returns it and its base URL (…/v1)."""
    with ExitStack() as stack:

        def start(script: Script | None = None) -> tuple[ProviderServer, str]:
            server = ProviderServer(script)
            return server, stack.enter_context(serve_app(server.app())) + "/v1"

        yield start


@pytest.fixture(params=["aiohttp", "in-process"])
def make_any_sim(request: pytest.FixtureRequest) -> Iterator[Callable[..., SimServer | LocalSim]]:
    """``make_any_sim(**knobs)``: the simulator behind each transport in turn, over real HTTP (aiohttp) and
    answered in-process; the same engine code above the seam must pass the same test on both."""
    start_one = serve_http if request.param == "aiohttp" else serve_in_process
    with ExitStack() as stack:

        def start(**knobs: Any) -> SimServer | LocalSim:
            knobs.setdefault("latency_spread", 0.0)
            return stack.enter_context(start_one(**knobs))

        yield start
