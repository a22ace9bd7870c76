"""Views of a several-model batch: the grid (prompts by models), one figures line per model, and the
timeline with one colour per model.

Pure functions of the result, for its ``_repr_html_``/``__repr__`` and the live display. Replies are
untrusted: every piece of model or user text goes through ``escape``, and each model's text through its
own endpoint's ``redact``.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import TYPE_CHECKING

from nbtools._engine.prices import usd
from nbtools._engine.rows import ERROR, OK, RUNNING, RequestResult
from nbtools._views.escaping import clip, escape
from nbtools._views.style import framed
from nbtools._views.timeline import axis

if TYPE_CHECKING:
    from nbtools._several import ModelResult, MultiModelResult

# Tableau 10: distinct at a glance, and readable as text on white.
PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#b279a2", "#e45756", "#72b7b2", "#eeca3b", "#9d755d", "#ff9da6", "#bab0ac")
GRID_LIMIT = 20  # prompts shown in the grid
CELL = 80  # characters of a reply shown in a cell


def colour(slot: int) -> str:
    return PALETTE[slot % len(PALETTE)]


# -- header ----------------------------------------------------------------------------------------
def _state(result: MultiModelResult) -> str:
    if result.failure is not None:
        return "failed"
    return "cancelled" if result.cancelled else ("done" if result.done else "running")


def header_text(result: MultiModelResult) -> str:
    prompts = len(result) // max(len(result.by_model), 1)
    lines = [f"{len(result.by_model)} models · {prompts} prompts each · {len(result)} requests"]
    lines += [f"{label} @ {part.endpoint.host}" for label, part in result.by_model.items()]
    lines += result.failure_lines()
    notes = {part.endpoint.note for part in result.by_model.values() if part.endpoint.note}
    return "\n".join(lines + sorted(notes))


def header_html(result: MultiModelResult, title: str | None = None) -> str:
    prompts = len(result) // max(len(result.by_model), 1)
    title_html = f"<b>{escape(title)}</b> · " if title else ""
    live = "" if result.done else f" · <span class='inflight'>{result.in_flight} in flight</span>"
    names = ", ".join(f"<b style='color:{colour(part.slot)}'>{escape(label)}</b>" for label, part in result.by_model.items())
    html = f"<div>{title_html}{names} · {prompts} prompts each{live} · {len(result)} requests</div>"
    for line in result.failure_lines():  # once per stopped endpoint, at the top
        html += f"<div class='err'><b>{escape(line)}</b></div>"
    if result.failure is not None and not result.failures:
        html += f"<div class='err'><b>{escape(f'{type(result.failure).__name__}: {result.failure}')}</b></div>"
    for note in sorted({part.endpoint.note for part in result.by_model.values() if part.endpoint.note}):
        html += f"<div class='note'>{escape(note)}</div>"
    return html


# -- one line per model ----------------------------------------------------------------------------
_FIGURES = ("model", "done", "p50", "p95", "ttft", "tokens/s", "cost", "errors")


def _secs(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f} s"


def model_figures(part: ModelResult) -> tuple[str, ...]:
    """A model's figures, measured: done/total, p50 and p95 latency, median time to first token, tokens/s, cost, errors."""
    s = part.summary()
    ttfts = [t for r in part.rows if (t := r.ttft) is not None and not r.cached]
    cost = "unknown" if s.cost is None else usd(s.cost) + ("+?" if s.cost_unknown else "")
    return (part.label, f"{s.completed}/{s.total}", _secs(s.p50), _secs(s.p95),
            _secs(statistics.median(ttfts) if ttfts else None),
            "–" if s.tokens_per_s is None else f"{s.tokens_per_s:.0f}", cost,
            str(s.errors) + (f" ({s.not_sent} not sent)" if s.not_sent else ""))


def models_text(result: MultiModelResult) -> str:
    lines = []
    for part in result.by_model.values():
        label, done, p50, p95, ttft, tps, cost, errors = model_figures(part)
        lines.append(f"{label}: {done} done; p50 {p50}, p95 {p95}; ttft {ttft}; {tps} tokens/s; cost {cost}; "
                     f"{errors} errors")
    return "\n".join(lines)


def models_html(result: MultiModelResult) -> str:
    head = "".join(f"<th>{escape(name)}</th>" for name in _FIGURES)
    body = []
    for part in result.by_model.values():
        label, *figures = model_figures(part)
        cells = "".join(f"<td class='num'>{escape(value)}</td>" for value in figures)
        body.append(f"<tr><td><b style='color:{colour(part.slot)}'>{escape(label)}</b></td>{cells}</tr>")
    return f"<table class='nbt-models'><tr>{head}</tr>{''.join(body)}</table>"


# -- the grid --------------------------------------------------------------------------------------
def _shown_prompts(result: MultiModelResult, limit: int) -> list[int]:
    """The prompts worth showing: while running, those in flight then the latest finished; at the end, the first."""
    count = len(result.by_model)
    prompts = len(result) // max(count, 1)
    if result.done or prompts <= limit:  # all of them fit: every row fills in place
        return list(range(min(limit, prompts)))
    shown = sorted({position // count for position in result.active})[:limit]
    for row in reversed(result.recent):
        if len(shown) >= limit:
            break
        if row.index not in shown:
            shown.append(row.index)
    return sorted(shown) if shown else list(range(min(limit, prompts)))


def _cell(row: RequestResult, part: ModelResult) -> tuple[str, str]:
    """(text, css class) of one model's reply to one prompt, or its state."""
    if row.status == OK:
        return clip(row.text or "", CELL), ""
    if row.status == ERROR:
        return clip(f"error: {row.error_kind or row.error or ''}", CELL), "err"
    if row.status == RUNNING:
        # Streamed text is redacted only once complete (a key may span pieces): redact what is shown meanwhile.
        return (clip(part.endpoint.redact(row.partial_text), CELL) if row.streaming else "…"), "muted"
    return row.status, "muted"


def grid_rows(result: MultiModelResult, limit: int) -> list[tuple[RequestResult, list[tuple[str, str]]]]:
    """(the prompt's first row, each model's cell) for each prompt shown."""
    parts = list(result.by_model.values())
    return [(parts[0].rows[i], [_cell(part.rows[i], part) for part in parts]) for i in _shown_prompts(result, limit)]


def grid_text(result: MultiModelResult, limit: int = GRID_LIMIT) -> str:
    lines = [" | ".join(["#", "prompt", *result.by_model])]
    for first, cells in grid_rows(result, limit):
        lines.append(" | ".join([str(first.index), clip(first.prompt_text, 40), *(text for text, _ in cells)]))
    return "\n".join(lines)


def grid_html(result: MultiModelResult, limit: int = GRID_LIMIT) -> str:
    head = "".join(f"<th style='color:{colour(part.slot)}'>{escape(label)}</th>" for label, part in result.by_model.items())
    body = []
    for first, cells in grid_rows(result, limit):
        tds = "".join(f"<td class='{css}'>{escape(text)}</td>" for text, css in cells)
        body.append(f"<tr><td class='num'>{first.index}</td><td>{escape(clip(first.prompt_text, 60))}</td>{tds}</tr>")
    html = f"<table class='nbt-grid'><tr><th>#</th><th>prompt</th>{head}</tr>{''.join(body)}</table>"
    prompts = len(result) // max(len(result.by_model), 1)
    more = prompts - len(body)
    if more > 0:
        html += (f"<div class='muted'>… {more} more prompt{'s' if more != 1 else ''} in the result "
                 "(e.g. <code>.wide()</code>)</div>")
    return html


# -- the timeline ----------------------------------------------------------------------------------
BARS_MAX = 300  # above this, one lane per model shows requests in flight instead of one bar per request


def timeline_svg(result: MultiModelResult, width: int = 640) -> str:
    """One bar per request (or one lane of requests in flight per model), coloured by model; inline SVG."""
    span = max(result.elapsed(), 1e-3)
    now = result.elapsed()
    parts = list(result.by_model.values())
    if len(result) <= BARS_MAX:
        body, height = _bars(parts, span, now, width)
    else:
        body, height = _lanes(parts, span, now, width)
    legend = "".join(
        f"<tspan fill='{colour(part.slot)}'>■ {escape(part.label)}</tspan> " for part in parts)
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height + 34}' "
        f"viewBox='0 0 {width} {height + 34}' role='img' aria-label='timeline by model'>"
        f"<text x='0' y='11' font-size='11' fill='#444'>timeline, one colour per model: {legend}</text>"
        f"<g transform='translate(0,16)'>{body}{axis(span, width, height)}</g></svg>"
    )


def _bars(parts: Sequence[ModelResult], span: float, now: float, width: int) -> tuple[str, int]:
    rows = [(part, row) for part in parts for row in part.rows]
    lane = max(2.0, min(10.0, 240 / max(len(rows), 1)))
    scale = width / span
    out = []
    for i, (part, r) in enumerate(rows):
        if r.started is None:
            continue
        end = r.finished if r.finished is not None else now
        fill = colour(part.slot) if r.status != ERROR else "#e45756"
        tip = f"{part.label} #{r.index} {r.status}: ran {end - r.started:.2f} s"
        out.append(f"<rect x='{r.started * scale:.1f}' y='{i * lane:.1f}' width='{max(1.0, (end - r.started) * scale):.1f}' "
                   f"height='{max(1.0, lane - 1):.1f}' fill='{fill}'><title>{escape(tip)}</title></rect>")
    return "".join(out), int(len(rows) * lane) + 2


def _lanes(parts: Sequence[ModelResult], span: float, now: float, width: int) -> tuple[str, int]:
    lane, buckets = 40, width // 2
    out = []
    for k, part in enumerate(parts):
        steps = [0] * (buckets + 1)  # +1 where a request starts, -1 after the slice it ends in
        for r in part.rows:
            if r.started is None:
                continue
            end = r.finished if r.finished is not None else now
            steps[min(buckets - 1, int(r.started / span * buckets))] += 1
            steps[min(buckets, int(end / span * buckets) + 1)] -= 1
        counts, level = [], 0
        for step in steps[:buckets]:
            level += step
            counts.append(level)
        top, base, dx = max(max(counts), 1), (k + 1) * lane, width / buckets
        points = " ".join(f"{b * dx:.1f},{base - c / top * (lane - 4):.1f}" for b, c in enumerate(counts))
        out.append(f"<polygon points='0,{base} {points} {width},{base}' fill='{colour(part.slot)}' opacity='0.85'>"
                   f"<title>{escape(part.label)}: at most {max(counts)} in flight</title></polygon>")
    return "".join(out), lane * len(parts) + 2


# -- whole -----------------------------------------------------------------------------------------
def multi_text(result: MultiModelResult, limit: int = GRID_LIMIT) -> str:
    state = _state(result)
    return "\n".join(["MultiModelResult: " + header_text(result), ("" if state == "done" else f"{state}: ")
                      + models_text(result), grid_text(result, limit)])


def multi_html(result: MultiModelResult, limit: int = GRID_LIMIT) -> str:
    return framed(f"{header_html(result)}{live_html(result, limit)}")


def live_html(result: MultiModelResult, limit: int = GRID_LIMIT) -> str:
    """What the live display redraws: the figures per model, the grid and the timeline."""
    return f"{models_html(result)}{grid_html(result, limit)}{timeline_svg(result)}"


def dry_runs_html(lines: Sequence[tuple[str, str]]) -> str:
    """A several-model dry run: one cost line per model."""
    rows = "".join(f"<tr><th style='color:{colour(slot)}'>{escape(label)}</th><td>{escape(line)}</td></tr>"
                   for slot, (label, line) in enumerate(lines))
    return framed(f"<div><b>dry run (nothing sent), per model</b></div><table>{rows}</table>")


def live_header_html(result: MultiModelResult, title: str | None) -> str:
    """The header above the progress bar (without the style sheet: the body below carries it)."""
    return framed(header_html(result, title), styled=False)


def live_body(result: MultiModelResult, limit: int) -> dict[str, str]:
    """The body below the progress bar: each model's figures and the grid, as text and HTML."""
    return {"text/plain": models_text(result) + "\n" + grid_text(result, limit), "text/html": framed(live_html(result, limit))}
