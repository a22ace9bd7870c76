"""Shared fixtures: a real simulator over real HTTP on 127.0.0.1, one per test that asks for it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from aiohttp import web

import pytest

from nbtools.sim import SimServer, serve


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch) -> None:
    """Each test gets its own reply cache, so no test is answered from another's replies."""
    monkeypatch.setenv("NBTOOLS_CACHE", str(tmp_path / "replies.sqlite"))


@pytest.fixture
def make_sim() -> Iterator[Callable[..., SimServer]]:
    """``make_sim(**knobs)`` starts a simulator with those knobs; all are stopped after the test."""
    with ExitStack() as stack:

        def start(**knobs: Any) -> SimServer:
            knobs.setdefault("latency_spread", 0.0)
            return stack.enter_context(serve(**knobs))

        yield start


@pytest.fixture
def sim(make_sim: Callable[..., SimServer]) -> SimServer:
    """A fast, fixed-latency simulator that echoes each prompt back."""
    return make_sim(latency=0.05, reply="echo")


@contextmanager
def serve_app(app: web.Application) -> Iterator[str]:
    """Serve an aiohttp app on 127.0.0.1 from a background thread; yields its base URL."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
