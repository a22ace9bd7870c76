"""Text and HTML views of a BatchResult: header, summary, table and timeline.

Pure functions of the result, shared by ``_repr_html_``/``__repr__`` and the live display.
Every piece of model or user text goes through ``html.escape``: replies are untrusted.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from typing import TYPE_CHECKING

from nbtools.engine.prices import usd
from nbtools.views import fields, labels

if TYPE_CHECKING:
    from nbtools.results import BatchResult, RequestResult
    from nbtools.summary import Summary

__all__ = ["escape", "STYLE", "batch_html", "batch_text", "header_html", "summary_html", "table_html", "timeline_svg"]

DISPLAY_LIMIT = 20
_COLORS = {"ok": "#4c78a8", "error": "#e45756", "cancelled": "#bab0ac", "running": "#f2b447", "pending": "#dddddd",
           "not sent": "#bab0ac"}
STYLE = (
    "<style>.nbt{font-family:var(--jp-ui-font-family,system-ui,sans-serif);font-size:13px}"
    ".nbt table{border-collapse:collapse;margin:4px 0}.nbt th,.nbt td{padding:2px 8px;"
    "vertical-align:top;border-bottom:1px solid #ddd}"
    # As specific as JupyterLab's own `.jp-RenderedHTMLCommon td` rule (which right-aligns), and later.
    ".nbt th:not(.num),.nbt td:not(.num){text-align:left}.nbt td.num{text-align:right;font-variant-numeric:tabular-nums}"
    ".nbt .note{background:#fff7e0;border-left:3px solid #f2b447;padding:2px 8px;margin:2px 0}"
    ".nbt .err{color:#c0392b}.nbt .muted{color:#888}</style>"
)


def clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _secs(value: float | None) -> str:
    return "" if value is None else f"{value:.2f} s"


# -- header ----------------------------------------------------------------------------------------
def header_text(result: BatchResult) -> str:
    ep = result.endpoint
    job = result.batch_job
    line = f"{_model(result)} @ {ep.host} · {_how(result)} · {len(result)} requests"
    if (schema := fields.schema_line(result)) is not None:
        line += f" · {schema}"
    if job is not None:
        line += "\n" + job.describe()
    if result.failure is not None:
        line += f"\n{failure_text(result)}"
    return line + (f"\n{ep.note}" if ep.note else "")


def _model(result: BatchResult) -> str:
    """The model asked for, else the one the server named in a reply, else that it is not known yet."""
    if result.model:
        return result.model
    named = next((r.model for r in result.recent if r.model), None)
    return named or "(model not known yet)"


def header_html(result: BatchResult, title: str | None = None) -> str:
    ep = result.endpoint
    title_html = f"<b>{escape(title)}</b> · " if title else ""
    live = "" if result.done else f" · <span class='inflight'>{result.in_flight} in flight</span>"
    html = (
        f"<div>{title_html}<b>{escape(_model(result))}</b> @ {escape(ep.host)} · {_how(result)}"
        f"{live} · {len(result)} requests"
        + (f" · {escape(schema)}" if (schema := fields.schema_line(result)) is not None else "") + "</div>"
    )
    if result.batch_job is not None:
        html += f"<div class='batchjob'>{escape(result.batch_job.describe())}</div>"
    if result.failure is not None:  # once, at the top: not as a column of red rows
        html += f"<div class='err'><b>{escape(failure_text(result))}</b></div>"
    if ep.note:
        html += f"<div class='note'>{escape(ep.note)}</div>"
    return html


def _how(result: BatchResult) -> str:
    return "via the Batch API" if result.batch_job is not None else f"concurrency {_limit(result)}"


def _limit(result: BatchResult) -> str:
    chosen, now = result.options.concurrency, result.concurrency
    if chosen == "auto":
        return f"auto ({now} now)"
    if not result.done and isinstance(chosen, int) and now < chosen:
        return f"{chosen} ({now} now: the server is pushing back)"
    return str(now)


# -- summary ---------------------------------------------------------------------------------------
def _state(result: BatchResult) -> str:
    if result.failure is not None:
        return "failed"
    return "cancelled" if result.cancelled else ("done" if result.done else "running")


def failure_text(result: BatchResult) -> str:
    failure = result.failure
    return "" if failure is None else f"{type(failure).__name__}: {failure}"


def summary_text(result: BatchResult, s: Summary | None = None) -> str:
    state = _state(result)
    s = s or result.summary()
    body = _batch_api_text(s) if result.batch_job is not None else str(s)
    return ("" if state == "done" else f"{state}: ") + body


def _batch_api_text(s: Summary) -> str:
    """A Batch API run's figures (its rows share one job: no latency or speedup of their own)."""
    tokens = "tokens unknown" if s.completion_tokens is None else f"{(s.prompt_tokens or 0) + s.completion_tokens} tokens"
    return (f"{s.completed}/{s.total} done in {s.wall:.2f} s wall via the Batch API; {tokens}; {s.errors} errors"
            + (f", {s.not_sent} not sent" if s.not_sent else "") + (f", {s.cached} from the job store" if s.cached else "")
            + (f"; {s.schema_text}" if s.schema_form is not None else "") + f"; {s.cost_text}")


def summary_html(result: BatchResult, s: Summary | None = None) -> str:
    s = s or result.summary()
    state = _state(result)
    cells = [
        ("state", state),
        ("done", f"{s.completed}/{s.total}"),
        ("wall time", f"{s.wall:.2f} s"),
        ("serial-equivalent (estimated)", "when done" if s.serial is None else f"{s.serial:.2f} s"),
        ("speedup", "when done" if s.speedup is None else f"{s.speedup:.1f}x"),
        ("p50 / p95 latency", f"{_secs(s.p50) or '–'} / {_secs(s.p95) or '–'}"),
        ("tokens/s", "unknown" if s.tokens_per_s is None else f"{s.tokens_per_s:.0f}"),
        ("errors", str(s.errors)),
        ("retries", str(s.retries)),
    ]
    for label, count in (("invalid", s.invalid), ("rate-limit waits", s.waits), ("cancelled", s.cancelled),
                         ("not sent", s.not_sent),
                         ("from cache", s.cached),
                         *((labels.FINISH[r].short if r in labels.FINISH else r, n) for r, n in s.finish_reasons.items())):
        if count:
            cells.append((label, str(count)))
    cells.append(("cost", _cost_cell(s)))  # live, from the usage each reply returned
    if result.batch_job is not None:  # one job: no per-request latencies
        dropped = ("serial-equivalent (estimated)", "speedup", "p50 / p95 latency", "retries")
        cells = [(k, v) for k, v in cells if k not in dropped]
    head = "".join(f"<th>{escape(k)}</th>" for k, _ in cells)
    body = "".join(f"<td class='num'>{escape(v)}</td>" for _, v in cells)
    html = f"<table><tr>{head}</tr><tr>{body}</tr></table>"
    html += f"<div class='{'note' if s.capped and s.not_sent else 'muted'}'>{escape(s.cost_text)}</div>"
    if s.error_kinds:
        kinds = ", ".join(f"{kind} {n}" for kind, n in s.error_kinds.items())
        html += f"<div class='muted'>errors by kind: {escape(kinds)}</div>"
    if s.schema_form is not None:
        html += f"<div class='muted'>{escape(s.schema_text)}</div>"
    limit = s.server_limit()
    if limit:
        html += f"<div class='note'>{escape(limit)}</div>"
    return html


# -- table -----------------------------------------------------------------------------------------
_COLUMNS = ("#", "prompt", "response", "latency", "ttft", "attempts", "status")


def _cost_cell(s: Summary) -> str:
    """The money spent so far; "unknown" (never a guess) when there is no price."""
    if s.cost is None:
        return "unknown" if s.price else "–"  # "–": the price is being looked up (the model is not known yet)
    return usd(s.cost) + ("+?" if s.cost_unknown else "")




def _status(r: RequestResult) -> str:
    if r.error_kind is not None and r.status == "error":
        return f"error: {r.error_kind}"
    if r.status == "ok" and r.finish_reason in labels.FINISH:
        return f"ok, {labels.FINISH[r.finish_reason].short}"  # type: ignore[index]
    return r.status


def _columns(result: BatchResult) -> tuple[str, ...]:
    """The table's columns: with a schema, its fields where the response would be."""
    schema = result.options.schema
    return _COLUMNS if schema is None else ("#", "prompt", *fields.headers(schema), *_COLUMNS[3:])


def _row_cells(r: RequestResult, redact: Callable[[str], str] = str, result: BatchResult | None = None) -> tuple[str, ...]:
    # Streamed text is redacted only once complete (a key may span pieces): redact what is shown meanwhile.
    partial = redact(r.partial_text) if r.streaming else r.text or ""
    reply = r.error if r.error else partial
    schema = result.options.schema if result is not None else None
    if schema is None:
        replies = [clip(reply or "", 120)]
    else:  # an error (in the first cell) keeps the width a reply has
        replies = [clip(c, 60 if r.data is not None else 120) for c in fields.cells(r, schema, partial)]
    return (
        str(r.index), clip(r.prompt_text, 60), *replies, _secs(r.latency), _secs(r.ttft),
        str(r.attempts), _status(r),
    )


def table_rows(result: BatchResult, limit: int) -> list[RequestResult]:
    """The rows worth showing: while running, those in flight then the latest finished; at the end, the first."""
    if result.done:
        return list(result.rows[:limit])
    shown = sorted(result.active)[:limit]  # in flight first: they are what changes
    for row in reversed(result.recent):
        if len(shown) >= limit:
            break
        shown.append(row.index)
    return [result.rows[i] for i in sorted(set(shown))]


def table_text(result: BatchResult, limit: int = DISPLAY_LIMIT) -> str:
    rows = table_rows(result, limit)
    lines = [" | ".join(_columns(result))] + [" | ".join(_row_cells(r, result.endpoint.redact, result)) for r in rows]
    more = len(result) - len(rows)
    if more > 0:
        lines.append(f"… {more} more row{'s' if more != 1 else ''} in the result")
    return "\n".join(lines)


def table_html(result: BatchResult, limit: int = DISPLAY_LIMIT) -> str:
    rows = table_rows(result, limit)
    head = "".join(f"<th>{escape(c)}</th>" for c in _columns(result))
    body = []
    for r in rows:
        idx, prompt, *replies, lat, ttft, attempts, status = (escape(c) for c in _row_cells(r, result.endpoint.redact, result))
        cls = " class='err'" if r.error else (" class='note'" if r.finish_reason in labels.FINISH else "")
        reply = "".join(f"<td{cls}>{c}</td>" for c in replies)
        body.append(
            f"<tr><td class='num'>{idx}</td><td>{prompt}</td>{reply}<td class='num'>{lat}</td>"
            f"<td class='num'>{ttft}</td><td class='num'>{attempts}</td>"
            f"<td style='color:{_COLORS.get(r.status, '#000')}'>{status}</td></tr>"
        )
    html = f"<table><tr>{head}</tr>{''.join(body)}</table>"
    more = len(result) - len(rows)
    if more > 0:
        html += (f"<div class='muted'>… {more} more row{'s' if more != 1 else ''} in the result "
                 "(e.g. <code>.to_pandas()</code>)</div>")
    return html


# -- timeline --------------------------------------------------------------------------------------
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
    axis = _axis(span, width, height)
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height + 34}' "
        f"viewBox='0 0 {width} {height + 34}' role='img' aria-label='{escape(title)}'>"
        f"<text x='0' y='11' font-size='11' fill='#444'>{escape(title)}: "
        f"{'one bar per request, queued → running' if len(result) <= PER_REQUEST_MAX else 'requests in flight over time'}"
        f"</text><g transform='translate(0,16)'>{body}{axis}</g></svg>"
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
                f"height='{h:.1f}' fill='{_COLORS.get(r.status, '#999')}'><title>{escape(tip)}</title></rect>"
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


def _axis(span: float, width: int, height: int) -> str:
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


# -- whole -----------------------------------------------------------------------------------------
def batch_text(result: BatchResult, limit: int = DISPLAY_LIMIT) -> str:
    return "\n".join(["BatchResult: " + header_text(result), summary_text(result), table_text(result, limit)])


def batch_html(result: BatchResult, limit: int = DISPLAY_LIMIT) -> str:
    return (
        f"<div class='nbt'>{STYLE}{header_html(result)}{summary_html(result)}"
        f"{table_html(result, limit)}{timeline_svg(result)}</div>"
    )
