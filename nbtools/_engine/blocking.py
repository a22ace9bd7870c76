"""Running a coroutine to the end from synchronous code, whether or not a loop is already running.

In a plain script there is no loop: we make one. In a notebook cell the kernel's loop is running:
we re-enter it with nest_asyncio2 (the original nest_asyncio loses kernel messages on ipykernel 7;
on ipykernel 6 a loop it already patched is used as it is). In a browser (Pyodide) the loop blocks through
WebAssembly stack switching (JSPI) with no patch, where the browser has it (``can_block``).
Ctrl-C / the stop button cancels the work and waits for it to wind down before re-raising.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Awaitable, Callable, Coroutine
from functools import lru_cache
from importlib import metadata
from typing import Any, TypeVar

from nbtools._base.errors import NbtoolsError
from nbtools._engine.transport.base import IN_BROWSER

T = TypeVar("T")


def run_blocking(coro: Coroutine[Any, Any, T], cleanup: Callable[[], Awaitable[None]] | None = None) -> T:
    """``coro``'s result. On KeyboardInterrupt: cancel it, await ``cleanup()``, then re-raise."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    own, queued = loop is None, 0
    if not own and not can_block():
        coro.close()
        raise NbtoolsError("this browser cannot make a cell wait (it lacks WebAssembly stack switching, JSPI): "
                           "use `await nbtools.abatch(...)`, or Chrome/Edge")
    if loop is None:
        loop = asyncio.new_event_loop()
    elif not IN_BROWSER:  # Pyodide's loop blocks through JSPI as it is
        make_reentrant(loop)
        queued = len(loop._ready)  # type: ignore[attr-defined]
    task = loop.create_task(coro)
    try:
        return _until_done(loop, task)
    except KeyboardInterrupt:
        task.cancel()
        loop.run_until_complete(asyncio.wait([task]))
        if cleanup is not None:
            loop.run_until_complete(cleanup())
        if not task.cancelled() and isinstance(task.exception(), KeyboardInterrupt):
            raise task.exception() from None  # type: ignore[misc]  # it carries a better message
        raise
    finally:
        if own:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
        elif not IN_BROWSER:
            _refill(loop, queued)


def _until_done(loop: asyncio.AbstractEventLoop, task: asyncio.Task[T]) -> T:
    """``task``'s result, the loop run until it ends.

    In a browser the loop blocks by resolving a JavaScript promise with the result, and JavaScript takes an
    awaitable result (a BatchResult, which awaits to itself) for a promise to follow: it awaits it again, forever.
    So there we wait for the end alone and read the result from the task.
    """
    if not IN_BROWSER:
        return loop.run_until_complete(task)
    loop.run_until_complete(asyncio.wait([task]))
    return task.result()


def can_block() -> bool:
    """Can a cell wait here for a batch to end? Everywhere but a browser without JSPI (Safari; Firefox unless
    flagged), whose loop cannot block (``WebAssembly stack switching not supported``)."""
    if not IN_BROWSER:
        return True
    from pyodide.ffi import can_run_sync

    return bool(can_run_sync())


def _refill(loop: asyncio.AbstractEventLoop, queued: int) -> None:
    """Leave at least ``queued`` callbacks ready, as many as there were when the nested run began.

    The loop iteration that called us may be asyncio's own ``_run_once`` (it is, until the first
    iteration after the loop was made re-entrant): it pops a count of ready callbacks fixed before
    our nested run, which may have run some of them already. No-ops make up the count, so that
    iteration cannot pop from an empty queue and stop the kernel's loop.
    """
    ready = loop._ready  # type: ignore[attr-defined]
    for _ in range(queued - len(ready)):
        loop.call_soon(_nothing)


def _nothing() -> None:
    pass


def make_reentrant(loop: asyncio.AbstractEventLoop) -> None:
    """Patch ``loop`` with nest_asyncio2 (once), so ``run_until_complete`` may nest inside it."""
    import nest_asyncio2

    try:
        nest_asyncio2.apply(loop, error_on_mispatched=True)
    except RuntimeError:
        if getattr(loop, "_nest_patched", False) and old_nest_asyncio_is_safe():
            return  # nest_asyncio 1.6 (Colab pins it) made it re-entrant, and ipykernel 6 loses nothing to it
        raise NbtoolsError(
            "the event loop was already patched by the old nest_asyncio, which loses kernel messages: "
            "restart the kernel without it, or use `await nbtools.abatch(...)` in this cell"
        ) from None


@lru_cache(maxsize=None)
def kernel_version() -> tuple[int, ...] | None:
    """ipykernel's version as numbers, e.g. (6, 17, 1); None where it is not installed."""
    try:
        text = metadata.version("ipykernel")
    except metadata.PackageNotFoundError:
        return None
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def running_kernel() -> Any:
    """The kernel this process runs in, if any (never imports IPython: without it there is no kernel)."""
    ipython = sys.modules.get("IPython")  # never imported here: without IPython there is no kernel
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "kernel", None)


def old_nest_asyncio_is_safe() -> bool:
    """True where a loop patched by nest_asyncio 1.6 loses no kernel message: no kernel, or ipykernel 6."""
    version = kernel_version()
    return running_kernel() is None or (version is not None and version < (7,))
