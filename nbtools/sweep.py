"""A concurrency sweep: the same prompts at concurrency 1, 2, 4, ... to see where speedup flattens."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from nbtools.api import start
from nbtools.checks import whole_number
from nbtools.engine.blocking import run_blocking
from nbtools.prompts import Prompt
from nbtools.results import BatchResult
from nbtools.views.report import STYLE, escape

__all__ = ["SweepPoint", "SweepResult", "asweep", "sweep", "levels"]


@dataclass(frozen=True)
class SweepPoint:
    concurrency: int
    wall: float
    throughput: float  # finished requests per second
    errors: int
    retries: int


@dataclass
class SweepResult:
    points: list[SweepPoint] = field(default_factory=list)
    results: list[BatchResult] = field(default_factory=list, repr=False)

    def __repr__(self) -> str:
        lines = ["concurrency | wall (s) | requests/s | errors | retries"]
        lines += [f"{p.concurrency:>11} | {p.wall:>8.2f} | {p.throughput:>10.1f} | {p.errors:>6} | {p.retries:>7}"
                  for p in self.points]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td class='num'>{p.concurrency}</td><td class='num'>{p.wall:.2f}</td>"
            f"<td class='num'>{p.throughput:.1f}</td><td class='num'>{p.errors}</td><td class='num'>{p.retries}</td></tr>"
            for p in self.points
        )
        table = ("<table><tr><th>concurrency</th><th>wall (s)</th><th>requests/s</th><th>errors</th><th>retries</th></tr>"
                 f"{rows}</table>")
        return f"<div class='nbt'>{STYLE}{self.chart()}{table}</div>"

    def chart(self, width: int = 300, height: int = 170) -> str:
        """Two inline SVG line charts: wall time and throughput against concurrency (log2 axis)."""
        walls = [(p.concurrency, p.wall) for p in self.points]
        rates = [(p.concurrency, p.throughput) for p in self.points]
        return (
            f"<div style='display:flex;gap:16px'>{_line_chart(walls, 'wall time (s)', '#e45756', width, height)}"
            f"{_line_chart(rates, 'throughput (requests/s)', '#4c78a8', width, height)}</div>"
        )


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
        result = start(prompts, **{**options, "concurrency": c, "cache": False})  # timing is the point
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


def _line_chart(points: list[tuple[int, float]], title: str, color: str, width: int, height: int) -> str:
    left, bottom, top = 40, 22, 18
    plot_w, plot_h = width - left - 8, height - bottom - top
    if not points:
        return f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}'></svg>"
    ymax = max(v for _, v in points) * 1.1 or 1.0
    n = len(points)

    def xy(i: int, v: float) -> tuple[float, float]:
        x = left + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)
        return x, top + plot_h - v / ymax * plot_h

    coords = [xy(i, v) for i, (_, v) in enumerate(points)]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    dots = "".join(
        f"<circle cx='{x:.1f}' cy='{y:.1f}' r='3' fill='{color}'><title>concurrency {c}: {v:.2f}</title></circle>"
        f"<text x='{x:.1f}' y='{height - 6}' font-size='10' text-anchor='middle' fill='#666'>{c}</text>"
        for (x, y), (c, v) in zip(coords, points, strict=True)
    )
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' role='img' aria-label='{escape(title)}'>"
        f"<text x='0' y='12' font-size='11' fill='#444'>{escape(title)} by concurrency</text>"
        f"<line x1='{left}' x2='{left}' y1='{top}' y2='{top + plot_h}' stroke='#888'/>"
        f"<line x1='{left}' x2='{width - 8}' y1='{top + plot_h}' y2='{top + plot_h}' stroke='#888'/>"
        f"<text x='{left - 4}' y='{top + 4}' font-size='10' text-anchor='end' fill='#666'>{ymax:.3g}</text>"
        f"<text x='{left - 4}' y='{top + plot_h}' font-size='10' text-anchor='end' fill='#666'>0</text>"
        f"<polyline points='{line}' fill='none' stroke='{color}' stroke-width='2'/>{dots}</svg>"
    )
