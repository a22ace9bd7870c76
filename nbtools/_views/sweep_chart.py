"""A concurrency sweep shown: wall time and throughput against concurrency, as two line charts and a table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from nbtools._views.escaping import escape
from nbtools._views.style import framed


@dataclass(frozen=True)
class SweepPoint:
    """One concurrency level of a sweep, as drawn."""

    concurrency: int
    wall: float
    throughput: float  # finished requests per second
    errors: int
    retries: int

_HEAD = ("concurrency", "wall (s)", "requests/s", "errors", "retries")


class SweepView:
    def __init__(self, points: Sequence[SweepPoint]) -> None:
        self.points = points

    def text(self) -> str:
        lines = [" | ".join(_HEAD)]
        lines += [f"{p.concurrency:>11} | {p.wall:>8.2f} | {p.throughput:>10.1f} | {p.errors:>6} | {p.retries:>7}"
                  for p in self.points]
        return "\n".join(lines)

    def html(self) -> str:
        rows = "".join(
            f"<tr><td class='num'>{p.concurrency}</td><td class='num'>{p.wall:.2f}</td>"
            f"<td class='num'>{p.throughput:.1f}</td><td class='num'>{p.errors}</td><td class='num'>{p.retries}</td></tr>"
            for p in self.points
        )
        head = "".join(f"<th>{h}</th>" for h in _HEAD)
        return framed(f"{sweep_charts(self.points)}<table><tr>{head}</tr>{rows}</table>")


def sweep_charts(points: Sequence[SweepPoint], width: int = 300, height: int = 170) -> str:
    """Two inline SVG line charts: wall time and throughput against concurrency (log2 axis)."""
    walls = [(p.concurrency, p.wall) for p in points]
    rates = [(p.concurrency, p.throughput) for p in points]
    return (
        f"<div style='display:flex;gap:16px'>{_line_chart(walls, 'wall time (s)', '#e45756', width, height)}"
        f"{_line_chart(rates, 'throughput (requests/s)', '#4c78a8', width, height)}</div>"
    )


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
