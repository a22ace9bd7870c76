"""Helpers shared by tests: a real aiohttp app served on 127.0.0.1 from a background thread, waiting for a
condition, a magic's one-line UsageError, what a notebook shows, and a busy machine."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
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
    """Serve an aiohttp app on 127.0.0.1 from a background thread; yields its base URL. Set up on that thread's
    loop, so it also works where the caller's thread runs a loop of its own (Playwright's sync API does)."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(runner.setup(), loop).result(10)
    site = web.TCPSite(runner, "127.0.0.1", 0)
    asyncio.run_coroutine_threadsafe(site.start(), loop).result(10)
    port = runner.addresses[0][1]
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


# A process doing asyncio work flat out: many ready tasks, the loop polling its selector every iteration.
_SPIN = """
import asyncio
async def spin():
    while True:
        await asyncio.sleep(0)
async def main():
    tasks = [asyncio.ensure_future(spin()) for _ in range(20)]
    print("spinning", flush=True)
    await asyncio.gather(*tasks)
asyncio.run(main())
"""


@contextmanager
def busy_machine(processes: int | None = None) -> Iterator[int]:
    """Load beside a test, started by the test: ``processes`` (default: twice the CPUs this process may run on, at
    most 32) each spinning an asyncio loop; yields how many. Returns once every one has said it is spinning; all
    are stopped at the end."""
    if processes is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        processes = min(2 * cpus, 32)
    spinners = [subprocess.Popen([sys.executable, "-c", _SPIN], stdout=subprocess.PIPE, text=True)
                for _ in range(processes)]
    try:
        for spinner in spinners:
            assert spinner.stdout is not None and spinner.stdout.readline() == "spinning\n", "a load process did not start"
        yield processes
    finally:
        for spinner in spinners:
            spinner.kill()
        for spinner in spinners:
            spinner.wait()
            if spinner.stdout is not None:
                spinner.stdout.close()
