"""The quality-latency-cost trade-off shown: one row per model, and a chart of quality against p50 latency whose
dot's area is the cost per 1,000 prompts. Model labels are the user's: every piece of text goes through ``escape``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from nbtools._engine.prices import usd
from nbtools._views.escaping import escape
from nbtools._views.grid import colour
from nbtools._views.style import framed


@dataclass(frozen=True)
class TradeoffPoint:
    """One model, as drawn: its quality (0-1 share, or a mean score), latencies, cost per 1,000 prompts, errors."""

    model: str
    quality: float | None
    p50: float | None
    p95: float | None
    cost_per_1k: float | None
    errors: int
    slot: int


_HEAD = ("model", "quality", "p50", "p95", "cost / 1,000 prompts", "errors")


def _cells(p: TradeoffPoint, share: bool) -> tuple[str, ...]:
    quality = "–" if p.quality is None else (f"{p.quality:.0%}" if share else f"{p.quality:.2f}")
    secs = ["–" if v is None else f"{v:.2f} s" for v in (p.p50, p.p95)]
    cost = "unknown" if p.cost_per_1k is None else usd(p.cost_per_1k)
    return (p.model, quality, *secs, cost, str(p.errors))


class TradeoffView:
    def __init__(self, points: Sequence[TradeoffPoint], quality: str, share: bool) -> None:
        self.points, self.quality, self.share = points, quality, share

    def text(self) -> str:
        lines = [f"Trade-off (quality: {self.quality})", " | ".join(_HEAD)]
        lines += [" | ".join(_cells(p, self.share)) for p in self.points]
        return "\n".join(lines)

    def html(self) -> str:
        head = "".join(f"<th>{escape(h)}</th>" for h in _HEAD)
        rows = "".join(
            f"<tr><td><b style='color:{colour(p.slot)}'>{escape(cells[0])}</b></td>"
            + "".join(f"<td class='num'>{escape(c)}</td>" for c in cells[1:]) + "</tr>"
            for p in self.points for cells in (_cells(p, self.share),))
        return framed(f"{tradeoff_svg(self.points, self.quality, self.share)}<table><tr>{head}</tr>{rows}</table>")


def tradeoff_svg(points: Sequence[TradeoffPoint], quality: str, share: bool, width: int = 460, height: int = 260) -> str:
    """Quality (up) against p50 latency (right); each model a dot whose area is its cost per 1,000 prompts."""
    left, right, bottom, top = 48, 24, 34, 40  # room above for the biggest dot under the title
    plot_w, plot_h = width - left - right, height - bottom - top
    drawn = [p for p in points if p.quality is not None and p.p50 is not None]
    xmax = max((p.p50 or 0.0 for p in drawn), default=1.0) * 1.15 or 1.0
    ymax = 1.0 if share else max((p.quality or 0.0 for p in drawn), default=1.0) * 1.1 or 1.0
    costs = [p.cost_per_1k for p in drawn if p.cost_per_1k]
    biggest = max(costs, default=0.0)
    marks = []
    for p in drawn:
        x = left + (p.p50 or 0.0) / xmax * plot_w
        y = top + plot_h - (p.quality or 0.0) / ymax * plot_h
        r = 5 + 15 * math.sqrt(p.cost_per_1k / biggest) if p.cost_per_1k and biggest else 5
        cost = "cost unknown" if p.cost_per_1k is None else f"{usd(p.cost_per_1k)} per 1,000 prompts"
        tip = escape(f"{p.model}: quality {_cells(p, share)[1]}, p50 {p.p50:.2f} s, {cost}")
        leftward = x > left + 0.6 * plot_w  # a label on the right half goes left of its dot, so it stays inside
        label_x, anchor = (x - r - 3, "end") if leftward else (x + r + 3, "start")
        marks.append(f"<circle cx='{x:.1f}' cy='{y:.1f}' r='{r:.1f}' fill='{colour(p.slot)}' fill-opacity='0.6' "
                     f"stroke='{colour(p.slot)}'><title>{tip}</title></circle>"
                     f"<text x='{label_x:.1f}' y='{y + 4:.1f}' font-size='11' text-anchor='{anchor}' fill='#333'>"
                     f"{escape(p.model)}</text>")
    top_label = "100%" if share else f"{ymax:.2g}"
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' role='img' "
        f"aria-label='quality against latency'>"
        f"<text x='0' y='13' font-size='12' fill='#444'>{escape(quality)} against p50 latency "
        "(dot area: cost per 1,000 prompts)</text>"
        f"<line x1='{left}' x2='{left}' y1='{top}' y2='{top + plot_h}' stroke='#888'/>"
        f"<line x1='{left}' x2='{width - right}' y1='{top + plot_h}' y2='{top + plot_h}' stroke='#888'/>"
        f"<text x='{left - 4}' y='{top + 4}' font-size='10' text-anchor='end' fill='#666'>{top_label}</text>"
        f"<text x='{left - 4}' y='{top + plot_h}' font-size='10' text-anchor='end' fill='#666'>0</text>"
        f"<text x='{width - right}' y='{height - 18}' font-size='10' text-anchor='end' fill='#666'>{xmax:.2f} s</text>"
        f"<text x='{left + plot_w / 2:.0f}' y='{height - 4}' font-size='11' text-anchor='middle' fill='#444'>"
        f"p50 latency</text>{''.join(marks)}</svg>"
    )
