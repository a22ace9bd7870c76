"""A batch's timeline as inline SVG, one drawing for one model or several: a lane of rows per model.

Up to ``PER_REQUEST_MAX`` requests, one bar per request (queued in grey, then running in its status's colour, or
its model's), with a tick at its first token; above that, the number of requests in flight over time, a band per
model, against the limit where there is one. No scripts and no external assets, so it renders in every frontend
and static viewer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from nbtools._engine.rows import ERROR, RequestResult
from nbtools._views.escaping import escape
from nbtools._views.style import COLORS

PER_REQUEST_MAX = 200  # above this, one bar per request is unreadable: draw requests in flight over time
QUEUED = "#eeeeee"
ERROR_COLOUR = COLORS[ERROR]


@dataclass(frozen=True)
class Lane:
    """One model's rows in the drawing: its label and colour (None: one model, bars coloured by status)."""

    rows: Sequence[RequestResult]
    label: str | None = None
    colour: str | None = None
    limit: int | None = None  # the concurrency limit, drawn under the requests in flight


def timeline_svg(lanes: Sequence[Lane], now: float, *, width: int = 640, title: str = "timeline",
                 span: float | None = None) -> str:
    """The lanes drawn on one time axis of ``span`` seconds (default: up to ``now``), so two timelines drawn with
    the same span can be compared by eye."""
    span = max(span or now, 1e-3)
    bars = sum(len(lane.rows) for lane in lanes) <= PER_REQUEST_MAX
    body, height = (_bars if bars else _in_flight)(lanes, span, now, width)
    what = "one bar per request, queued → running" if bars else "requests in flight over time"
    legend = "".join(f"<tspan fill='{lane.colour}'>■ {escape(lane.label)}</tspan> " for lane in lanes
                     if lane.label is not None and lane.colour is not None)
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height + 34}' "
        f"viewBox='0 0 {width} {height + 34}' role='img' aria-label='{escape(title)}'>"
        f"<text x='0' y='11' font-size='11' fill='#444'>{escape(title)}: {what}{': ' + legend if legend else ''}</text>"
        f"<g transform='translate(0,16)'>{body}{axis(span, width, height)}</g></svg>"
    )


def _bars(lanes: Sequence[Lane], span: float, now: float, width: int) -> tuple[str, int]:
    count = sum(len(lane.rows) for lane in lanes)
    lane_height = max(2.0, min(14.0, 280 / max(count, 1)))
    scale = width / span
    parts = []
    y = 0.0
    for lane in lanes:
        for r in lane.rows:
            parts.append(_bar(r, lane, y, lane_height, scale, now))
            y += lane_height
    return "".join(parts), int(count * lane_height) + 2


def _bar(r: RequestResult, lane: Lane, y: float, lane_height: float, scale: float, now: float) -> str:
    """One request: grey while it waited, then coloured while it ran, with a tick at its first token."""
    h = max(1.0, lane_height - 1)
    start = r.started if r.started is not None else now if not r.done else r.queued
    out = (f"<rect x='{r.queued * scale:.1f}' y='{y:.1f}' width='{max(0.0, start - r.queued) * scale:.1f}' "
           f"height='{h:.1f}' fill='{QUEUED}'/>")
    if r.started is None:
        return out
    end = r.finished if r.finished is not None else now
    tip = f"{lane.label + ' ' if lane.label else ''}#{r.index} {r.status}: waited {r.started - r.queued:.2f} s, " \
          f"ran {end - r.started:.2f} s" + (f", {r.attempts} attempts" if r.attempts > 1 else "")
    fill = (lane.colour if r.status != ERROR else ERROR_COLOUR) if lane.colour else COLORS.get(r.status, "#999")
    out += (f"<rect x='{r.started * scale:.1f}' y='{y:.1f}' width='{max(1.0, (end - r.started) * scale):.1f}' "
            f"height='{h:.1f}' fill='{fill}'><title>{escape(tip)}</title></rect>")
    if r.first_token is not None:
        out += f"<rect x='{r.first_token * scale:.1f}' y='{y:.1f}' width='1.5' height='{h:.1f}' fill='#222'/>"
    return out


def _in_flight(lanes: Sequence[Lane], span: float, now: float, width: int) -> tuple[str, int]:
    """A band per lane: the most requests in flight in each slice of time, against the lane's limit."""
    band = 120 if len(lanes) == 1 else 40
    buckets = width // 2
    dx = width / buckets
    out = []
    for k, lane in enumerate(lanes):
        counts = _peaks_in_flight(lane.rows, now, buckets, span)
        top = max(max(counts), lane.limit or 0, 1)
        base = (k + 1) * band
        points = " ".join(f"{b * dx:.1f},{base - c / top * (band - 4):.1f}" for b, c in enumerate(counts))
        colour = lane.colour or COLORS["ok"]
        tip = f"{lane.label + ': ' if lane.label else ''}peak {max(counts)} in flight"
        out.append(f"<polygon points='0,{base} {points} {width},{base}' fill='{colour}' opacity='0.8'>"
                   f"<title>{escape(tip)}</title></polygon>")
        if lane.limit is not None:
            y = base - lane.limit / top * (band - 4)
            out.append(f"<line x1='0' x2='{width}' y1='{y:.1f}' y2='{y:.1f}' stroke='{ERROR_COLOUR}' stroke-dasharray='4 3'/>"
                       f"<text x='{width - 4}' y='{max(base - band + 10, y - 3):.1f}' font-size='10' text-anchor='end' "
                       f"fill='{ERROR_COLOUR}'>limit {lane.limit}</text>")
        out.append(f"<text x='2' y='{base - band + 10}' font-size='10' fill='#444'>{escape(tip)}</text>")
    return "".join(out), band * len(lanes)


def _peaks_in_flight(rows: Sequence[RequestResult], now: float, buckets: int, span: float) -> list[int]:
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
