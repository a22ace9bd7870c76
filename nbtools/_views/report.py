"""Text and HTML views of one endpoint's batch and its figures: header, summary, table, and the whole.

Pure functions of the batch's state and figures, shared by the result's rich output (``BatchView``) and the
live display (``BatchLive``). Every piece of model or user text goes through ``escape``: replies are untrusted.
"""

from __future__ import annotations

from collections.abc import Callable

from nbtools._base.judging import PASS_FAIL
from nbtools._engine.figures import CheckFigure, Figures, JudgeFigure
from nbtools._engine.prices import Price, usd
from nbtools._engine.rows import ERROR, OK, RequestResult
from nbtools._engine.state import BatchState
from nbtools._views import fields, labels
from nbtools._views.escaping import clip, escape
from nbtools._views.live_view import Live
from nbtools._views.style import COLORS, framed
from nbtools._views.thumbs import Thumbs, names_text
from nbtools._views.timeline import Lane, timeline_svg

DISPLAY_LIMIT = 20


def _secs(value: float | None) -> str:
    return "" if value is None else f"{value:.2f} s"


# -- header ----------------------------------------------------------------------------------------
def header_text(batch: BatchState) -> str:
    ep = batch.endpoint
    job = batch.batch_run
    line = f"{_model(batch)} @ {ep.host} · {_how(batch)} · {len(batch.rows)} requests"
    if (schema := fields.schema_line(batch)) is not None:
        line += f" · {schema}"
    if job is not None:
        line += "\n" + job.describe()
    if batch.failure is not None:
        line += f"\n{failure_text(batch)}"
    return line + (f"\n{ep.note}" if ep.note else "")


def _model(batch: BatchState) -> str:
    """The model asked for, else the one the server named in a reply, else that it is not known yet."""
    if batch.model:
        return batch.model
    named = next((r.model for r in batch.recent if r.model), None)
    return named or "(model not known yet)"


def header_html(batch: BatchState, title: str | None = None) -> str:
    ep = batch.endpoint
    title_html = f"<b>{escape(title)}</b> · " if title else ""
    live = "" if batch.done else f" · <span class='inflight'>{batch.in_flight} in flight</span>"
    html = (
        f"<div>{title_html}<b>{escape(_model(batch))}</b> @ {escape(ep.host)} · {_how(batch)}"
        f"{live} · {len(batch.rows)} requests"
        + (f" · {escape(schema)}" if (schema := fields.schema_line(batch)) is not None else "") + "</div>"
    )
    if batch.batch_run is not None:
        html += f"<div class='batchjob'>{escape(batch.batch_run.describe())}</div>"
    if batch.failure is not None:  # once, at the top: not as a column of red rows
        html += f"<div class='err'><b>{escape(failure_text(batch))}</b></div>"
    if ep.note:
        html += f"<div class='note'>{escape(ep.note)}</div>"
    return html


def _how(batch: BatchState) -> str:
    return "via the Batch API" if batch.batch_run is not None else f"concurrency {_limit(batch)}"


def _limit(batch: BatchState) -> str:
    chosen, now = batch.options.concurrency, batch.current_limit()
    if chosen == "auto":
        return f"auto ({now} now)"
    if not batch.done and isinstance(chosen, int) and now < chosen:
        return f"{chosen} ({now} now: the server is pushing back)"
    return str(now)


# -- summary ---------------------------------------------------------------------------------------
def _state(batch: BatchState) -> str:
    if batch.failure is not None:
        return "failed"
    return "cancelled" if batch.cancelled else ("done" if batch.done else "running")


def failure_text(batch: BatchState) -> str:
    failure = batch.failure
    return "" if failure is None else f"{type(failure).__name__}: {failure}"


def summary_text(batch: BatchState, s: Figures) -> str:
    state = _state(batch)
    body = _batch_api_text(s) if batch.batch_run is not None else summary_line(s)
    return ("" if state == "done" else f"{state}: ") + body


def _batch_api_text(s: Figures) -> str:
    """A Batch API run's figures (its rows share one job: no latency or speedup of their own)."""
    tokens = "tokens unknown" if s.completion_tokens is None else f"{(s.prompt_tokens or 0) + s.completion_tokens} tokens"
    return (f"{s.completed}/{s.total} done in {s.wall:.2f} s wall via the Batch API; {tokens}; {s.errors} errors"
            + (f", {s.not_sent} not sent" if s.not_sent else "") + (f", {s.cached} from the job store" if s.cached else "")
            + (f"; {schema_text(s)}" if s.schema_form is not None else "") + f"; {cost_text(s)}"
            + (f"; {cache}" if (cache := prompt_cache_text(s)) else ""))


def summary_line(s: Figures) -> str:
    """A Summary as text (``str(summary)``): the figures on one line, then the server's limit if it set the pace."""
    pct = f"p50 {s.p50:.2f} s, p95 {s.p95:.2f} s" if s.p50 is not None else "no latencies yet"
    if s.speedup is not None and s.serial is not None:
        serial = f"serially ~{s.serial:.2f} s (estimated; speedup {s.speedup:.1f}x)"
    elif s.client_late is not None:
        serial = withheld_text(s)
    else:
        serial = "speedup when done"
    tokens = "tokens/s unknown (no usage reported)" if s.tokens_per_s is None else f"{s.tokens_per_s:.0f} tokens/s"
    if s.reasoning_tokens:
        tokens += f"; {s.reasoning_tokens} reasoning tokens" + (
            f" ({usd(s.reasoning_cost)} of the cost)" if s.reasoning_cost is not None else "")
    text = (
        f"{s.completed}/{s.total} done in {s.wall:.2f} s wall; {serial}; {pct}; {tokens}; "
        f"{s.errors} errors, {s.retries} retries"
        + (f", {s.waits} waits for rate limits" if s.waits else "")
        + (f", {s.cancelled} cancelled" if s.cancelled else "")
        + (f", {s.not_sent} not sent" if s.not_sent else "")
        + (f", {s.cached} from the cache" if s.cached else "")
    )
    notable = "; ".join(f"{n} {labels.FINISH[r].long if r in labels.FINISH else r}" for r, n in s.finish_reasons.items())
    if notable:
        text += f"; {notable}"
    text += "".join(f"; {line}" for line in [cost_text(s), *_details(s)])
    if s.layout_note:
        text += f"\nLayout: {s.layout_note}"
    if s.judge is not None:
        text += f"\n{judge_text(s.judge)}"
    limit = server_limit(s)
    return text + (f"\n{limit}" if limit else "")


def _details(s: Figures) -> list[str]:
    """What the summary says after its figures and cost, in one order for the text and the HTML."""
    lines = []
    if s.error_kinds:
        lines.append("errors by kind: " + ", ".join(f"{kind} {n}" for kind, n in s.error_kinds.items()))
    if s.schema_form is not None:
        lines.append(schema_text(s))
    if s.checks:
        lines.append(checks_text(s))
    cache = prompt_cache_text(s)
    if cache:
        lines.append(cache)
    return lines


def prompt_cache_text(s: Figures) -> str:
    """What the provider's prompt cache did: the shared prefix, the requests that read it, what that saved."""
    parts = []
    if s.shared_prefix:
        parts.append(f"shared prefix about {s.shared_prefix:,} tokens"
                     + (", sent once first (warm-up)" if s.warmed_up else ""))
    if s.cache_requests and (s.cached_tokens or s.cache_write_tokens):
        rate = s.cache_hits / s.cache_requests
        parts.append(f"prompt cache read by {s.cache_hits}/{s.cache_requests} requests ({rate:.0%}), "
                     f"{s.cached_tokens:,} cached input tokens"
                     + (f", {s.cache_write_tokens:,} written" if s.cache_write_tokens else ""))
        if s.cache_saved is not None:
            parts.append(f"caching saved {usd(s.cache_saved)} against no caching")
    return ", ".join(parts)


def withheld_text(s: Figures) -> str:
    """Why a finished batch shows no serial time or speedup: this process ran too late to estimate them."""
    return (f"speedup not estimated: this process ran up to {s.client_late or 0.0:.2f} s late (a busy machine or a "
            "slow callback), enough to pass for the server's queue; --compare measures it")


def judge_value(j: JudgeFigure) -> str:
    """"mean 4.20 of 10" (pass/fail: "80% pass of 10"), "–" before any verdict."""
    if j.mean is None:
        return "–"
    return f"{j.mean:.0%} pass of {j.verdicts}" if j.scale == PASS_FAIL else f"mean {j.mean:.2f} of {j.verdicts}"


def judge_text(j: JudgeFigure) -> str:
    """The judge's own line: its verdicts, what did not parse, and its own tokens and cost (never the batch's)."""
    missing = j.requests - j.verdicts
    cost = "cost unknown" if j.cost is None else f"cost {usd(j.cost)}"
    text = (f"judge {j.label} (scale {j.scale}): {j.verdicts}/{j.requests} verdicts, {judge_value(j)}"
            + (f"; {missing} without a verdict" if missing else "")
            + (f" ({j.invalid} invalid: result.retry_invalid() asks those again)" if j.invalid else ""))
    return text + f"; the judge's own {j.tokens:,} tokens, {cost} (not in the figures above)"


def check_value(figure: CheckFigure) -> str:
    """"75% of 8" for a True/False check, "mean 0.80 of 8" for a numeric one, "–" before any row is graded."""
    if figure.value is None:
        return "–"
    return f"mean {figure.value:.2f} of {figure.graded}" if figure.numeric else f"{figure.value:.0%} of {figure.graded}"


def checks_text(s: Figures) -> str:
    """Each check's pass rate (or mean) so far, and the rows on which a check raised."""
    text = "checks: " + ", ".join(f"{figure.name} {check_value(figure)}" for figure in s.checks)
    if s.check_errors:
        text += f" ({s.check_errors} row{'s' if s.check_errors != 1 else ''} where a check raised: row.check_error)"
    return text


def check_cell(r: RequestResult) -> str:
    """A row's checks in the table: ✓/✗ per True/False check, the value of a numeric one, – where none."""
    if r.checks is None:
        return ""
    shown = []
    for name, value in r.checks.items():
        mark = "–" if value is None else ("✓" if value else "✗") if isinstance(value, bool) else f"{value:.2f}"
        shown.append(f"{name} {mark}")
    return ", ".join(shown) + (" (check error)" if r.check_error else "")


def schema_text(s: Figures) -> str:
    """How the schema was asked for, and how many replies did not match it."""
    text = f"schema asked as {s.schema_form}"
    if s.invalid:
        text += f", {s.invalid} invalid (result.retry_invalid() asks those again)"
    return text


def cost_text(s: Figures) -> str:
    """The money line: "cost $0.0123 (price source)", or why it is unknown; and the cap."""
    if s.cost is None:
        text = f"cost unknown ({s.price})" if s.price else "cost not known yet"
    else:
        more = f" + {s.cost_unknown} replies without usage" if s.cost_unknown else ""
        text = f"cost {usd(s.cost)}{more} ({s.price})"
    if s.tier is not None:
        text += f"; service tier {s.tier}"
    if s.max_cost is not None:
        text += f", max_cost {usd(s.max_cost)}"
    if s.capped and s.not_sent:
        text += f"; {s.not_sent} not sent: max_cost reached (raise it and run again to send them)"
    return text


def server_limit(s: Figures) -> str | None:
    """One line when the server, not the client, set the pace (a teaching moment)."""
    if s.server_capacity is not None:
        n = s.server_capacity
        return (f"The server is the limit: it processed about {n} request{'s' if n != 1 else ''} at a time and "
                f"queued the rest (latency grew with the number in flight); concurrency above {n} buys nothing here.")
    if s.refused_at is not None:
        return (f"The server is the limit: it turned requests away (429/503) at about {s.refused_at} in flight; "
                "they waited and were sent again.")
    return None


def summary_html(batch: BatchState, s: Figures) -> str:
    state = _state(batch)
    pending = "when done" if s.client_late is None else "not estimated"
    cells = [
        ("state", state),
        ("done", f"{s.completed}/{s.total}"),
        ("wall time", f"{s.wall:.2f} s"),
        ("serial-equivalent (estimated)", f"{s.serial:.2f} s" if s.serial is not None else pending),
        ("speedup", f"{s.speedup:.1f}x" if s.speedup is not None else pending),
        ("p50 / p95 latency", f"{_secs(s.p50) or '–'} / {_secs(s.p95) or '–'}"),
        ("tokens/s", "unknown" if s.tokens_per_s is None else f"{s.tokens_per_s:.0f}"),
        *((("reasoning tokens", f"{s.reasoning_tokens}" + (f" ({usd(s.reasoning_cost)})" if s.reasoning_cost is not None
                                                            else "")),) if s.reasoning_tokens else ()),
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
    if batch.batch_run is not None:  # one job: no per-request latencies
        dropped = ("serial-equivalent (estimated)", "speedup", "p50 / p95 latency", "retries")
        cells = [(k, v) for k, v in cells if k not in dropped]
    head = "".join(f"<th>{escape(k)}</th>" for k, _ in cells)
    body = "".join(f"<td class='num'>{escape(v)}</td>" for _, v in cells)
    html = f"<table><tr>{head}</tr><tr>{body}</tr></table>"
    html += f"<div class='{'note' if s.capped and s.not_sent else 'muted'}'>{escape(cost_text(s))}</div>"
    html += "".join(f"<div class='muted'>{escape(line)}</div>" for line in _details(s))
    if s.layout_note:
        html += f"<div class='note'>Layout: {escape(s.layout_note)}</div>"
    if s.judge is not None:
        html += f"<div class='muted'>{escape(judge_text(s.judge))}</div>"
    if s.client_late is not None and batch.batch_run is None:
        html += f"<div class='muted'>{escape(withheld_text(s))}</div>"
    limit = server_limit(s)
    if limit:
        html += f"<div class='note'>{escape(limit)}</div>"
    return html


# -- table -----------------------------------------------------------------------------------------
# With reasoning models: their thinking tokens, and a first token that comes only after the thinking.


def _thinks(rows: list[RequestResult]) -> bool:
    return any(r.reasoning_tokens for r in rows)


def _cost_cell(s: Figures) -> str:
    """The money spent so far; "unknown" (never a guess) when there is no price."""
    if s.cost is None:
        return "unknown" if s.price else "–"  # "–": the price is being looked up (the model is not known yet)
    return usd(s.cost) + ("+?" if s.cost_unknown else "")


def _status(r: RequestResult) -> str:
    if r.error_kind is not None and r.status == ERROR:
        return f"error: {r.error_kind}"
    if r.status == OK and r.finish_reason in labels.FINISH:
        return f"ok, {labels.FINISH[r.finish_reason].short}"
    return r.status


def _reasoning_cell(r: RequestResult, price: Price | None) -> str:
    """A row's thinking tokens, and what they cost at the output rate (they are billed as output)."""
    if r.reasoning_tokens is None:
        return ""
    priced = price is not None and not price.free and r.cost is not None
    return f"{r.reasoning_tokens}" + (f" ({usd(price.cost(0, r.reasoning_tokens))})" if priced and price else "")


def _columns(batch: BatchState, thinking: bool) -> tuple[str, ...]:
    """The table's columns: with a schema, its fields where the response would be; with thinking, its tokens."""
    schema = batch.options.schema
    replies = ("response",) if schema is None else tuple(fields.headers(schema))
    return ("#", "prompt", *replies, "latency", "ttft (incl. thinking)" if thinking else "ttft",
            *(("reasoning",) if thinking else ()), *(("checks",) if batch.options.checks else ()), "attempts", "status")


def _row_cells(r: RequestResult, batch: BatchState, thinking: bool) -> tuple[str, ...]:
    # Streamed text is redacted only once complete (a key may span pieces): redact what is shown meanwhile.
    partial = batch.endpoint.redact(r.partial_text) if r.streaming else r.text or ""
    reply = r.error if r.error else partial
    schema = batch.options.schema
    if schema is None:
        replies = [clip(reply or "", 120)]
    else:  # an error (in the first cell) keeps the width a reply has
        replies = [clip(c, 60 if r.data is not None else 120) for c in fields.cells(r, schema, partial)]
    reasoning = (_reasoning_cell(r, batch.price),) if thinking else ()
    checks = (check_cell(r),) if batch.options.checks else ()
    return (
        str(r.index), clip(names_text(r.attachments) + r.prompt_text, 60), *replies, _secs(r.latency), _secs(r.ttft),
        *reasoning, *checks, str(r.attempts), _status(r),
    )


def table_rows(batch: BatchState, limit: int) -> list[RequestResult]:
    """The rows worth showing: while running, those in flight then the latest finished; at the end, the first."""
    if batch.done:
        return list(batch.rows[:limit])
    shown = sorted(batch.active)[:limit]  # in flight first: they are what changes
    for row in reversed(batch.recent):
        if len(shown) >= limit:
            break
        shown.append(row.index)
    return [batch.rows[i] for i in sorted(set(shown))]


def table_text(batch: BatchState, limit: int = DISPLAY_LIMIT) -> str:
    rows = table_rows(batch, limit)
    thinking = _thinks(rows)
    lines = [" | ".join(_columns(batch, thinking))] + [" | ".join(_row_cells(r, batch, thinking)) for r in rows]
    more = len(batch.rows) - len(rows)
    if more > 0:
        lines.append(f"… {more} more row{'s' if more != 1 else ''} in the result")
    return "\n".join(lines)


def table_html(batch: BatchState, limit: int = DISPLAY_LIMIT) -> str:
    rows = table_rows(batch, limit)
    thinking = _thinks(rows)
    columns = _columns(batch, thinking)
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    n = len(columns) - 6 - thinking - bool(batch.options.checks)  # the reply's cells: the response, or the schema's fields
    body = []
    thumbs = Thumbs()  # one budget for the view's pictures
    for r in rows:
        cells = [escape(c) for c in _row_cells(r, batch, thinking)]
        found = r.attachments
        if found:  # the pictures (or names) instead of the names as text
            cells[1] = thumbs.html(found) + escape(clip(r.prompt_text, 60))
        idx, prompt, replies, (lat, ttft), status = cells[0], cells[1], cells[2:2 + n], cells[2 + n:4 + n], cells[-1]
        middle = "".join(f"<td class='num'>{c}</td>" for c in cells[4 + n:-1])  # reasoning (if any), attempts
        cls = " class='err'" if r.error else (" class='note'" if r.finish_reason in labels.FINISH else "")
        reply = "".join(f"<td{cls}>{c}</td>" for c in replies)
        body.append(
            f"<tr><td class='num'>{idx}</td><td>{prompt}</td>{reply}<td class='num'>{lat}</td>"
            f"<td class='num'>{ttft}</td>{middle}"
            f"<td style='color:{COLORS.get(r.status, '#000')}'>{status}</td></tr>"
        )
    html = f"<table><tr>{head}</tr>{''.join(body)}</table>"
    more = len(batch.rows) - len(rows)
    if more > 0:
        html += (f"<div class='muted'>… {more} more row{'s' if more != 1 else ''} in the result "
                 "(e.g. <code>.to_pandas()</code>)</div>")
    return html


# -- whole -----------------------------------------------------------------------------------------
def lanes(batch: BatchState) -> list[Lane]:
    """The batch in the timeline: one lane, its bars coloured by status, under its concurrency limit."""
    return [Lane(batch.rows, limit=batch.current_limit())]


class BatchView:
    """A finished or running batch as its result shows it: header, figures, the first rows and the timeline."""

    def __init__(self, batch: BatchState, figures: Figures, limit: int = DISPLAY_LIMIT) -> None:
        self.batch, self.figures, self.limit = batch, figures, limit

    def text(self) -> str:
        batch = self.batch
        return "\n".join(["BatchResult: " + header_text(batch), summary_text(batch, self.figures),
                          table_text(batch, self.limit)])

    def html(self) -> str:
        batch = self.batch
        return framed(f"{header_html(batch)}{summary_html(batch, self.figures)}{table_html(batch, self.limit)}"
                      f"{timeline_svg(lanes(batch), batch.elapsed())}")


def live(batch: BatchState, figures: Callable[[], Figures]) -> Live[BatchState, Figures]:
    """A running batch in the live display: the header above the progress bar, and the body below it."""
    return Live(batch, figures, header_text, header_html, _live_body, _live_end)


def _live_body(batch: BatchState, figures: Figures, limit: int) -> dict[str, str]:
    html = framed(f"{table_html(batch, limit)}{summary_html(batch, figures)}{timeline_svg(lanes(batch), batch.elapsed())}")
    return {"text/plain": summary_text(batch, figures) + "\n" + table_text(batch, limit), "text/html": html}


def _live_end(batch: BatchState, figures: Figures, limit: int, shown_header: str) -> str:
    """The rows too, so errors are seen and not only counted."""
    lines = []
    header = header_text(batch)
    if header != shown_header:  # e.g. the model the server named once asked
        lines.append(header.splitlines()[0])
    lines += [table_text(batch, limit), summary_text(batch, figures)]
    if batch.failure is not None:
        lines.append(failure_text(batch))
    return "\n".join(lines)
