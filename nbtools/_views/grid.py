"""Views of a several-model batch: the grid (prompts by models), one figures line per model, and the
timeline with one colour per model.

Pure functions of the batch's state and each model's figures, for its rich output (``SeveralView``) and the live
display (``SeveralLive``). Replies are untrusted: every piece of model or user text goes through ``escape``, and
each model's text through its own endpoint's ``redact``.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping
from typing import Any

from nbtools._engine.figures import Figures, JudgeFigure
from nbtools._engine.prices import usd
from nbtools._engine.rows import ERROR, OK, RUNNING, RequestResult
from nbtools._engine.state import PartState, SeveralState
from nbtools._views.escaping import clip, escape
from nbtools._views.live_view import Live
from nbtools._views.report import check_cell, check_value, checks_text, judge_text, judge_value
from nbtools._views.style import framed
from nbtools._views.timeline import Lane, timeline_svg

Several = SeveralState[Any]
ByModel = Mapping[str, Figures]  # each model's figures, by its label

# Tableau 10: distinct at a glance, and readable as text on white.
PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#b279a2", "#e45756", "#72b7b2", "#eeca3b", "#9d755d", "#ff9da6", "#bab0ac")
GRID_LIMIT = 20  # prompts shown in the grid
CELL = 80  # characters of a reply shown in a cell


def colour(slot: int) -> str:
    return PALETTE[slot % len(PALETTE)]


# -- header ----------------------------------------------------------------------------------------
def _state(batch: Several) -> str:
    if batch.failure is not None:
        return "failed"
    return "cancelled" if batch.cancelled else ("done" if batch.done else "running")


def header_text(batch: Several) -> str:
    prompts = len(batch.rows) // max(len(batch.by_model), 1)
    lines = [f"{len(batch.by_model)} models · {prompts} prompts each · {len(batch.rows)} requests"]
    lines += [f"{label} @ {part.endpoint.host}" for label, part in batch.by_model.items()]
    lines += batch.failure_lines()
    notes = {part.endpoint.note for part in batch.by_model.values() if part.endpoint.note}
    return "\n".join(lines + sorted(notes))


def header_html(batch: Several, title: str | None = None) -> str:
    prompts = len(batch.rows) // max(len(batch.by_model), 1)
    title_html = f"<b>{escape(title)}</b> · " if title else ""
    live = "" if batch.done else f" · <span class='inflight'>{batch.in_flight} in flight</span>"
    names = ", ".join(f"<b style='color:{colour(part.slot)}'>{escape(label)}</b>" for label, part in batch.by_model.items())
    html = f"<div>{title_html}{names} · {prompts} prompts each{live} · {len(batch.rows)} requests</div>"
    for line in batch.failure_lines():  # once per stopped endpoint, at the top
        html += f"<div class='err'><b>{escape(line)}</b></div>"
    if batch.failure is not None and not batch.failures:
        html += f"<div class='err'><b>{escape(f'{type(batch.failure).__name__}: {batch.failure}')}</b></div>"
    for note in sorted({part.endpoint.note for part in batch.by_model.values() if part.endpoint.note}):
        html += f"<div class='note'>{escape(note)}</div>"
    return html


# -- one line per model ----------------------------------------------------------------------------
_FIGURES = ("model", "done", "p50", "p95", "ttft", "tokens/s", "cost", "errors")


def _secs(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f} s"


def model_figures(part: PartState, s: Figures) -> tuple[str, ...]:
    """A model's figures, measured: done/total, p50 and p95 latency, median time to first token, tokens/s, cost, errors."""
    ttfts = [t for r in part.rows if (t := r.ttft) is not None and not r.cached]
    cost = "unknown" if s.cost is None else usd(s.cost) + ("+?" if s.cost_unknown else "")
    if s.cache_hits and s.cache_saved is not None:  # what its prompt cache saved: hits, then USD
        cost += f" (prompt cache: {s.cache_hits}/{s.cache_requests} hits, saved {usd(s.cache_saved)})"
    return (part.label, f"{s.completed}/{s.total}", _secs(s.p50), _secs(s.p95),
            _secs(statistics.median(ttfts) if ttfts else None),
            "–" if s.tokens_per_s is None else f"{s.tokens_per_s:.0f}", cost,
            str(s.errors) + (f" ({s.not_sent} not sent)" if s.not_sent else ""))


def models_text(batch: Several, figures: ByModel) -> str:
    lines = []
    for part in batch.by_model.values():
        label, done, p50, p95, ttft, tps, cost, errors = model_figures(part, figures[part.label])
        s = figures[part.label]
        lines.append(f"{label}: {done} done; p50 {p50}, p95 {p95}; ttft {ttft}; {tps} tokens/s; cost {cost}; "
                     f"{errors} errors" + (f"; {checks_text(s)}" if s.checks else "")
                     + (f"; judge {judge_value(s.judge)}" if s.judge is not None else ""))
    return "\n".join(lines)


def models_html(batch: Several, figures: ByModel) -> str:
    checks = list(batch.options.checks or ())
    judged = any(s.judge is not None for s in figures.values())
    head = "".join(f"<th>{escape(name)}</th>" for name in (*_FIGURES, *checks, *(("judge",) if judged else ())))
    body = []
    for part in batch.by_model.values():
        s = figures[part.label]
        label, *shown = model_figures(part, s)
        shown += [check_value(figure) for figure in s.checks]
        shown += [judge_value(s.judge)] if s.judge is not None else []
        cells = "".join(f"<td class='num'>{escape(value)}</td>" for value in shown)
        body.append(f"<tr><td><b style='color:{colour(part.slot)}'>{escape(label)}</b></td>{cells}</tr>")
    return f"<table class='nbt-models'><tr>{head}</tr>{''.join(body)}</table>"


# -- the grid --------------------------------------------------------------------------------------
def _shown_prompts(batch: Several, limit: int) -> list[int]:
    """The prompts worth showing: while running, those in flight then the latest finished; at the end, the first."""
    count = len(batch.by_model)
    prompts = len(batch.rows) // max(count, 1)
    if batch.done or prompts <= limit:  # all of them fit: every row fills in place
        return list(range(min(limit, prompts)))
    shown = sorted({position // count for position in batch.active})[:limit]
    for row in reversed(batch.recent):
        if len(shown) >= limit:
            break
        if row.index not in shown:
            shown.append(row.index)
    return sorted(shown) if shown else list(range(min(limit, prompts)))


def _cell(row: RequestResult, part: PartState) -> tuple[str, str]:
    """(text, css class) of one model's reply to one prompt, or its state."""
    if row.status == OK:
        marks = check_cell(row)
        return clip(row.text or "", CELL) + (f" [{marks}]" if marks else ""), ""
    if row.status == ERROR:
        return clip(f"error: {row.error_kind or row.error or ''}", CELL), "err"
    if row.status == RUNNING:
        # Streamed text is redacted only once complete (a key may span pieces): redact what is shown meanwhile.
        return (clip(part.endpoint.redact(row.partial_text), CELL) if row.streaming else "…"), "muted"
    return row.status, "muted"


def grid_rows(batch: Several, limit: int) -> list[tuple[RequestResult, list[tuple[str, str]]]]:
    """(the prompt's first row, each model's cell) for each prompt shown."""
    parts = list(batch.by_model.values())
    return [(parts[0].rows[i], [_cell(part.rows[i], part) for part in parts]) for i in _shown_prompts(batch, limit)]


def grid_text(batch: Several, limit: int = GRID_LIMIT) -> str:
    lines = [" | ".join(["#", "prompt", *batch.by_model])]
    for first, cells in grid_rows(batch, limit):
        lines.append(" | ".join([str(first.index), clip(first.prompt_text, 40), *(text for text, _ in cells)]))
    return "\n".join(lines)


def grid_html(batch: Several, limit: int = GRID_LIMIT) -> str:
    head = "".join(f"<th style='color:{colour(part.slot)}'>{escape(label)}</th>" for label, part in batch.by_model.items())
    body = []
    for first, cells in grid_rows(batch, limit):
        tds = "".join(f"<td class='{css}'>{escape(text)}</td>" for text, css in cells)
        body.append(f"<tr><td class='num'>{first.index}</td><td>{escape(clip(first.prompt_text, 60))}</td>{tds}</tr>")
    html = f"<table class='nbt-grid'><tr><th>#</th><th>prompt</th>{head}</tr>{''.join(body)}</table>"
    prompts = len(batch.rows) // max(len(batch.by_model), 1)
    more = prompts - len(body)
    if more > 0:
        html += (f"<div class='muted'>… {more} more prompt{'s' if more != 1 else ''} in the result "
                 "(e.g. <code>.wide()</code>)</div>")
    return html


# -- the timeline ----------------------------------------------------------------------------------
def lanes(batch: Several) -> list[Lane]:
    """A lane per model, in its colour."""
    return [Lane(part.rows, part.label, colour(part.slot)) for part in batch.by_model.values()]


# -- whole -----------------------------------------------------------------------------------------
def _body_html(batch: Several, figures: ByModel, limit: int) -> str:
    """The figures per model, the grid and the timeline."""
    return (f"{models_html(batch, figures)}{grid_html(batch, limit)}"
            f"{timeline_svg(lanes(batch), batch.elapsed(), title='timeline by model')}")


def _body_text(batch: Several, figures: ByModel, limit: int) -> str:
    return models_text(batch, figures) + "\n" + grid_text(batch, limit)


class SeveralView:
    """A several-model batch as its result shows it: who ran it, each model's figures, the grid, the timeline."""

    def __init__(self, batch: Several, figures: ByModel, limit: int = GRID_LIMIT, judge: JudgeFigure | None = None) -> None:
        self.batch, self.figures, self.limit, self.judge = batch, figures, limit, judge

    def text(self) -> str:
        batch, state = self.batch, _state(self.batch)
        judge = [judge_text(self.judge)] if self.judge is not None else []
        return "\n".join(["MultiModelResult: " + header_text(batch), ("" if state == "done" else f"{state}: ")
                          + models_text(batch, self.figures), *judge, grid_text(batch, self.limit)])

    def html(self) -> str:
        judge = f"<div class='muted'>{escape(judge_text(self.judge))}</div>" if self.judge is not None else ""
        return framed(f"{header_html(self.batch)}{judge}{_body_html(self.batch, self.figures, self.limit)}")


def live(batch: Several, figures: Callable[[], ByModel]) -> Live[Several, ByModel]:
    """A running several-model batch in the live display: each model's figures, the grid and the timeline."""
    return Live(batch, figures, header_text, header_html, _live_body, _live_end)


def _live_body(batch: Several, figures: ByModel, limit: int) -> dict[str, str]:
    return {"text/plain": _body_text(batch, figures, limit), "text/html": framed(_body_html(batch, figures, limit))}


def _live_end(batch: Several, figures: ByModel, limit: int, shown_header: str) -> str:
    return _body_text(batch, figures, limit)
