"""Running a batch in front of someone: start it, keep a view current, compare, report failure.

The one path used by the magic, the panel and ``python -m nbtools``; each brings its own views
(widgets, a display handle, terminal lines). No IPython here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from nbtools._api import start
from nbtools._base.prompts import Prompt
from nbtools._compare import Comparison
from nbtools._result import BatchResult

TICK = 0.1  # seconds between refreshes: at most 10 updates a second


class View(Protocol):
    """Something that shows a running batch: ``refresh()`` on a clock, ``finish()`` once at the end."""

    def refresh(self) -> None: ...
    def finish(self) -> None: ...


ViewFor = Callable[[BatchResult, "str | None"], "View | None"]  # (result, title) -> a view, or None for none


async def follow(result: BatchResult, view: View | None) -> BatchResult:
    """Keep ``view`` current until ``result`` is done, show its final state, then return it.

    Raises what stopped the batch, as ``await result`` does. Waking every tick also lets a
    cancellation (the kernel's stop button) land at once, even while every request is in the middle
    of a long reply; the batch is then stopped before the view shows its end.
    """
    try:
        while not result.done:
            if view is not None:
                view.refresh()
            await asyncio.sleep(TICK)
    except BaseException:  # the stop button, or a view that failed: never leave the batch running unseen
        await result.aclose()
        raise
    finally:
        if view is not None:
            view.finish()
    if result.failure is not None:
        raise result.failure
    return result


async def follow_judged(result: BatchResult, view_for: ViewFor, title: str | None) -> BatchResult:
    """``follow`` the batch in its view, then its judge's pass (``start(judge=...)``) in a view of its own; returns
    once both are done, raising what stopped either."""
    await follow(result, view_for(result, title))
    judged = await result._judge_pass_batch()
    if judged is not None:
        label = result._judging.label if result._judging is not None else ""
        await follow(judged, view_for(judged, f"judge {label}"))
    return await result


async def run_live(prompts: Prompt | Iterable[Prompt], options: dict[str, Any], *, view_for: ViewFor,
                   compare: bool = False, on_start: Callable[[BatchResult], Any] | None = None) -> BatchResult | Comparison:
    """Run ``prompts`` with ``options`` in view; with ``compare``, serially first, then concurrently.

    ``on_start(result)`` is called with each batch as it starts (to bind it, to list it for cancel).
    A cancelled half ends the comparison: Cancel means stop, not "go on to the next half".
    """
    async def one(title: str | None, **overrides: Any) -> BatchResult:
        result = start(prompts, **{**options, **overrides})
        if on_start is not None:
            on_start(result)
        return await follow_judged(result, view_for, title)

    if not compare:
        return await one(None)
    # A timing lesson: replies from the cache would make both runs instant.
    serial = await one("serial", concurrency=1, cache=False)
    if serial.cancelled:
        return serial
    concurrent = await one("concurrent", cache=False)
    if concurrent.cancelled:
        return concurrent
    return Comparison(serial, concurrent)
