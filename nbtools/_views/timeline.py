"""A batch's timeline as inline SVG: one bar per request (queued, then running), or for a large batch the
number of requests in flight over time against the limit."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nbtools._views.escaping import escape
from nbtools._views.style import COLORS

if TYPE_CHECKING:
    from nbtools._engine.rows import RequestResult
    from nbtools._result import BatchResult

PER_REQUEST_MAX = 200  # above this, one bar per request is unreadable: draw concurrency over time


def timeline_svg(result: BatchResult, width: int = 640, title: str = "timeline", span: float | None = None) -> str:
    """Inline SVG (no scripts, no external assets), so it renders in every frontend and static viewer.

    ``span`` (seconds) fixes the time scale, so two timelines can be compared by eye.
    """
    now = result.elapsed()
    span = max(span or now, 1e-3)
    started = [r for r in result.rows if r.started is not None]
    if len(result) <= PER_REQUEST_MAX:
        body, height = _bars(result.rows, span, now, width)
    else:
        body, height = _concurrency_area(started, span, now, width, result.concurrency)
    scale = axis(span, width, height)
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height + 34}' "
        f"viewBox='0 0 {width} {height + 34}' role='img' aria-label='{escape(title)}'>"
        f"<text x='0' y='11' font-size='11' fill='#444'>{escape(title)}: "
        f"{'one bar per request, queued → running' if len(result) <= PER_REQUEST_MAX else 'requests in flight over time'}"
        f"</text><g transform='translate(0,16)'>{body}{scale}</g></svg>"
    )


def _bars(rows: list[RequestResult], span: float, now: float, width: int) -> tuple[str, int]:
    lane = max(2.0, min(14.0, 280 / max(len(rows), 1)))
    scale = width / span
    parts = []
    for i, r in enumerate(rows):
        y = i * lane
        h = max(1.0, lane - 1)
        start = r.started if r.started is not None else now if not r.done else r.queued
        parts.append(
            f"<rect x='{r.queued * scale:.1f}' y='{y:.1f}' width='{max(0.0, start - r.queued) * scale:.1f}' "
            f"height='{h:.1f}' fill='#eeeeee'/>"
        )
        if r.started is not None:
            end = r.finished if r.finished is not None else now
            tip = f"#{r.index} {r.status}: waited {r.started - r.queued:.2f} s, ran {end - r.started:.2f} s"
            if r.attempts > 1:
                tip += f", {r.attempts} attempts"
            parts.append(
                f"<rect x='{r.started * scale:.1f}' y='{y:.1f}' width='{max(1.0, (end - r.started) * scale):.1f}' "
                f"height='{h:.1f}' fill='{COLORS.get(r.status, '#999')}'><title>{escape(tip)}</title></rect>"
            )
            if r.first_token is not None:
                parts.append(f"<rect x='{r.first_token * scale:.1f}' y='{y:.1f}' width='1.5' height='{h:.1f}' fill='#222'/>")
    return "".join(parts), int(len(rows) * lane) + 2


def _concurrency_area(rows: list[RequestResult], span: float, now: float, width: int, limit: int) -> tuple[str, int]:
    height = 120
    buckets = width // 2
    counts = _peaks_in_flight(rows, now, buckets, span)
    top = max(max(counts), limit, 1)
    dx = width / buckets
    points = " ".join(f"{k * dx:.1f},{height - c / top * height:.1f}" for k, c in enumerate(counts))
    ylimit = height - limit / top * height
    return (
        f"<polygon points='0,{height} {points} {width},{height}' fill='#4c78a8' opacity='0.8'/>"
        f"<line x1='0' x2='{width}' y1='{ylimit:.1f}' y2='{ylimit:.1f}' stroke='#e45756' stroke-dasharray='4 3'/>"
        f"<text x='{width - 4}' y='{max(10.0, ylimit - 3):.1f}' font-size='10' text-anchor='end' fill='#e45756'>"
        f"limit {limit}</text><text x='2' y='10' font-size='10' fill='#444'>peak {max(counts)} in flight</text>"
    ), height


def _peaks_in_flight(rows: list[RequestResult], now: float, buckets: int, span: float) -> list[int]:
    """The most requests in flight at any instant of each of ``buckets`` equal slices of ``span``.

    An exact sweep over start and end times (ends first when equal): a request that ends and one that
    starts within the same slice are never counted as both in flight.
    """
    starts = sorted(r.started for r in rows if r.started is not None)
    ends = sorted(r.finished if r.finished is not None else now for r in rows if r.started is not None)
    counts = [0] * buckets
    level = i = j = 0
    n = len(starts)
    for b in range(buckets):
        peak = level
        edge = span * (b + 1) / buckets if b < buckets - 1 else float("inf")
        while i < n and starts[i] < edge:
            while j < n and ends[j] <= starts[i]:  # what ended by then is no longer in flight
                level -= 1
                j += 1
            level += 1
            i += 1
            peak = max(peak, level)
        while j < n and ends[j] < edge:
            level -= 1
            j += 1
        counts[b] = peak
    return counts


def axis(span: float, width: int, height: int) -> str:
    ticks = []
    step = _nice_step(span / 6)
    t = 0.0
    while t <= span + 1e-9:
        x = t / span * width
        anchor = "start" if t == 0 else "end" if x > width - 20 else "middle"
        ticks.append(
            f"<line x1='{x:.1f}' x2='{x:.1f}' y1='{height}' y2='{height + 4}' stroke='#888'/>"
            f"<text x='{x:.1f}' y='{height + 14}' font-size='10' text-anchor='{anchor}' fill='#666'>{t:g} s</text>"
        )
        t = round(t + step, 6)
    return f"<line x1='0' x2='{width}' y1='{height}' y2='{height}' stroke='#888'/>" + "".join(ticks)


def _nice_step(raw: float) -> float:
    for step in (0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600):
        if step >= raw:
            return step
    return 1200.0

