"""A concurrency sweep: the same prompts at concurrency 1, 2, 4, ... to see where speedup flattens."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from nbtools._api import start
from nbtools._base.checks import whole_number
from nbtools._base.prompts import Prompt
from nbtools._engine.blocking import run_blocking
from nbtools._result import BatchResult
from nbtools._views.rich import Shown, View
from nbtools._views.sweep_chart import SweepPoint, SweepView, sweep_charts


@dataclass(repr=False)
class SweepResult(Shown):
    """The points of a sweep (one per concurrency level) and each level's batch."""

    points: list[SweepPoint] = field(default_factory=list)
    results: list[BatchResult] = field(default_factory=list)

    def chart(self, width: int = 300, height: int = 170) -> str:
        """Two inline SVG line charts: wall time and throughput against concurrency (log2 axis)."""
        return sweep_charts(self.points, width, height)

    def _view(self) -> View:
        return SweepView(self.points)


def levels(max_concurrency: int) -> list[int]:
    """1, 2, 4, ... up to ``max_concurrency`` (included even when it is not a power of two)."""
    out, c = [], 1
    while c < max_concurrency:
        out.append(c)
        c *= 2
    return out + [max_concurrency]


async def asweep(prompts: Prompt | Iterable[Prompt], *, max_concurrency: int = 64,
                 on_start: Callable[[BatchResult], Any] | None = None, **options: Any) -> SweepResult:
    """Run ``prompts`` once per concurrency level. A cancelled level ends the sweep (its point is kept out)."""
    whole_number("max_concurrency", max_concurrency, 1, "e.g. max_concurrency=64")
    sweep_result = SweepResult()
    for c in levels(max_concurrency):
        # Timing is the point: no reply cache, and no judge's pass after each level.
        result = start(prompts, **{**options, "concurrency": c, "cache": False, "judge": None})
        if on_start is not None:
            on_start(result)
        await result  # raises what stopped the batch
        if result.cancelled:
            break
        s = result.summary()
        sweep_result.results.append(result)
        sweep_result.points.append(SweepPoint(c, s.wall, s.completed / s.wall if s.wall else 0.0, s.errors, s.retries))
    return sweep_result


def sweep(prompts: Prompt | Iterable[Prompt], *, max_concurrency: int = 64, **options: Any) -> SweepResult:
    """Blocking ``asweep``."""
    return run_blocking(asweep(prompts, max_concurrency=max_concurrency, **options))
