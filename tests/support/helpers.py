"""Helpers shared by tests: a real aiohttp app served on 127.0.0.1 from a background thread, waiting for a
condition, and a magic's one-line UsageError."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from aiohttp import web
from aiohttp.typedefs import Handler
from IPython.core.error import UsageError


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


@contextmanager
def serve_post(path: str, handler: Handler) -> Iterator[str]:
    """Serve one ``handler`` for POSTs to ``path`` (as :func:`serve_app` does); yields the base URL."""
    app = web.Application()
    app.router.add_post(path, handler)
    with serve_app(app) as url:
        yield url


async def until(condition: Callable[[], bool], timeout: float = 10.0, what: str = "the condition") -> None:
    """Wait for ``condition()`` to hold (checked every 10 ms), instead of sleeping a fixed time and hoping."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout:g} s")
        await asyncio.sleep(0.01)


def one_line_usage_error(ip: Any, magic: str, line: str, cell: str | None = None) -> str:
    """The message of the UsageError that ``%magic line`` (with ``cell``: ``%%magic line`` over it) raises in the
    shell ``ip``, checked to be one line."""
    with pytest.raises(UsageError) as info:
        if cell is None:
            ip.run_line_magic(magic, line)
        else:
            ip.run_cell_magic(magic, line, cell)
    message = str(info.value)
    assert "\n" not in message, message
    return message


def shown_html(shown: object) -> str:
    """What a notebook shows for ``shown``: the HTML of the bundle IPython's display formatter makes of it."""
    from IPython.core.formatters import DisplayFormatter

    data, _ = DisplayFormatter().format(shown)
    return str(data["text/html"])
