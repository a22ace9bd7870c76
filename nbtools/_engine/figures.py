"""A batch's figures, computed once from its rows: ``Figures.of(state)`` for one endpoint, ``Figures.combine``
for several side by side. nbtools.Summary is these figures as users get them (they print themselves)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TypeVar

from nbtools._engine.failures import INVALID_OUTPUT, NOTABLE_FINISH
from nbtools._engine.rows import CANCELLED, ERROR, NOT_SENT, OK, RequestResult
from nbtools._engine.serial import estimate_serial
from nbtools._engine.state import BatchState

F = TypeVar("F", bound="Figures")


@dataclass(frozen=True)
class CheckFigure:
    """One check over a batch: the share of graded rows that passed (a True/False check), or the mean of its values
    (a check that gave numbers); None while no row has been graded."""

    name: str
    value: float | None
    graded: int  # rows the check gave a value for (None: it did not apply, or raised)
    numeric: bool

    @classmethod
    def of(cls, name: str, rows: list[RequestResult]) -> CheckFigure:
        values = [v for row in rows if row.checks is not None and (v := row.checks.get(name)) is not None]
        numeric = any(not isinstance(v, bool) for v in values)
        return cls(name, sum(values) / len(values) if values else None, len(values), numeric)


@dataclass(frozen=True)
class JudgeFigure:
    """A judge's pass over a batch (nbtools._judge): its verdicts and their mean score (pass/fail: the pass rate),
    and the judge's own requests, tokens and cost, kept apart from the judged model's."""

    label: str
    scale: str
    requests: int
    verdicts: int
    mean: float | None
    invalid: int
    failed: int  # judge requests without a verdict: invalid, failed, or not sent
    tokens: int
    cost: float | None


@dataclass(frozen=True)
class Figures:
    """Figures for a whole batch.

    ``serial`` is the serial-equivalent time: the sum of the time each request spent being served,
    estimated once the batch is done with the time it waited in the server's own queue taken out
    (nbtools._engine.serial); ``speedup`` = serial / wall. Both are None while the batch runs, and when
    this process ran too late to tell the server's queue from its own delays: then ``client_late`` says
    how late (seconds), and the text says so.
    ``server_capacity``: how many requests the server appeared to process at once, when fewer than
    were in flight (it queued the rest). Token figures are None when the server reported no usage.
    """

    total: int
    completed: int
    ok: int
    errors: int
    cancelled: int
    retries: int
    wall: float
    sum_latency: float
    serial: float | None
    speedup: float | None
    p50: float | None
    p95: float | None
    prompt_tokens: int | None
    completion_tokens: int | None
    tokens_per_s: float | None
    max_concurrency: int
    cached: int = 0  # rows answered from the cache: not in the latency figures
    waits: int = 0  # attempts sent back by a rate limit or overload, to wait and go again (not retries)
    not_sent: int = 0
    server_capacity: int | None = None
    refused_at: int | None = None  # requests in flight when the server first turned one away (429/503)
    error_kinds: dict[str, int] = field(default_factory=dict)
    finish_reasons: dict[str, int] = field(default_factory=dict)  # the notable ones: length, content_filter
    cost: float | None = None  # USD spent; None: the price is unknown
    cost_unknown: int = 0  # replies whose usage (so cost) is unknown
    max_cost: float | None = None
    price: str | None = None  # where the price came from, or why it is unknown
    capped: bool = False  # max_cost held back the rows not sent
    tier: str | None = None  # the service tier asked for (tier=)
    reasoning_tokens: int | None = None  # of completion_tokens, those spent thinking (None: none reported)
    reasoning_cost: float | None = None  # USD of those, at the output rate (part of ``cost``)
    invalid: int = 0  # with schema=: replies that did not match it (also in error_kinds)
    schema_form: str | None = None  # with schema=: how the endpoint was asked (nbtools._engine.wire.FORMS)
    client_late: float | None = None  # serial and speedup withheld: this process's loop ran up to this late (s)
    checks: tuple[CheckFigure, ...] = ()  # with checks=: each check's pass rate (or mean), live
    check_errors: int = 0  # rows on which a check raised (row.check_error says which, and why)
    judge: JudgeFigure | None = None  # with judge=: the judge's verdicts and its own cost (never in ``cost``)
    # The provider's prompt cache: the prefix the rows share (tokens), requests sent and answered with usage, those
    # that read from the cache, the tokens read and written, and the USD saved against the same usage uncached.
    shared_prefix: int | None = None  # only where it reaches the provider's caching minimum (else it is noise)
    layout_note: str | None = None  # a long static part after the varying one: how to fix it
    warmed_up: bool = False  # one row went first, to fill the prompt cache for the rest
    cache_requests: int = 0
    cache_hits: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    cache_saved: float | None = None

    @classmethod
    def of(cls: type[F], state: BatchState) -> F:
        """The figures of one endpoint's batch, live while it runs (the serial estimate only once it is done)."""
        tally = _Tally(state)
        wall = state.elapsed()
        serial, capacity, late = _serial(state)
        ok, errors, reported, latencies = tally.counts[OK], tally.counts[ERROR], tally.reported, tally.latencies
        return cls(
            total=len(state.rows), completed=ok + errors, ok=ok, errors=errors, cancelled=tally.counts[CANCELLED],
            retries=tally.retries, wall=wall, sum_latency=sum(latencies), serial=serial,
            speedup=serial / wall if serial is not None and wall > 0 else None,
            p50=_quantile(latencies, 0.50), p95=_quantile(latencies, 0.95),
            prompt_tokens=tally.prompt_tokens if reported else None,
            completion_tokens=tally.completion_tokens if reported else None,
            tokens_per_s=tally.completion_tokens / wall if reported and wall > 0 else None,
            max_concurrency=state.peak, cached=tally.cached, waits=tally.waits, not_sent=tally.counts[NOT_SENT],
            server_capacity=capacity, refused_at=state.refused_at, error_kinds=dict(tally.kinds.most_common()),
            finish_reasons=dict(tally.finishes), cost=tally.cost if state.price is not None else None,
            cost_unknown=tally.cost_unknown, max_cost=state.options.max_cost, price=state.price_note,
            capped=state.capped, tier=state.options.tier, reasoning_tokens=tally.thinking or None,
            reasoning_cost=tally.thinking_cost if tally.thinking and state.price is not None else None,
            invalid=tally.kinds[INVALID_OUTPUT], schema_form=state.schema_form, client_late=late,
            checks=tuple(CheckFigure.of(name, state.rows) for name in state.options.checks or ()),
            check_errors=sum(row.check_error is not None for row in state.rows) if state.options.checks else 0,
            shared_prefix=_cacheable(state),
            layout_note=state.shared_prefix.layout_note(state.cache_minimum) if state.shared_prefix is not None else None,
            warmed_up=state.warmed_up, cache_requests=tally.cache_requests, cache_hits=tally.cache_hits,
            cached_tokens=tally.cached_tokens, cache_write_tokens=tally.written,
            cache_saved=tally.saved if state.price is not None else None,
        )

    @classmethod
    def combine(cls: type[F], whole: F, parts: Mapping[str, Figures]) -> F:
        """The figures of several endpoints side by side: ``whole`` (the figures over all their rows) with what
        only adds up per endpoint (serial time, concurrency, cost) from ``parts``, each endpoint's own by label."""
        serial = None if any(s.serial is None for s in parts.values()) else sum(s.serial or 0.0 for s in parts.values())
        costs = [s.cost for s in parts.values()]
        return replace(
            whole, serial=serial, speedup=serial / whole.wall if serial is not None and whole.wall > 0 else None,
            max_concurrency=sum(s.max_concurrency for s in parts.values()), server_capacity=None, refused_at=None,
            cost=None if any(c is None for c in costs) else sum(c or 0.0 for c in costs),
            cost_unknown=sum(s.cost_unknown for s in parts.values()), capped=any(s.capped for s in parts.values()),
            cache_saved=None if any(s.cache_saved is None for s in parts.values())
            else sum(s.cache_saved or 0.0 for s in parts.values()),
            shared_prefix=None, layout_note=None, warmed_up=any(s.warmed_up for s in parts.values()),
            client_late=max((s.client_late for s in parts.values() if s.client_late is not None), default=None),
            price="each model at its own price" if all(c is not None for c in costs)
            else "unknown for " + ", ".join(label for label, s in parts.items() if s.cost is None),
        )


class _Tally:
    """One pass over a batch's rows: what every figure above is counted from."""

    def __init__(self, state: BatchState) -> None:
        self.counts: Counter[str] = Counter()
        self.kinds: Counter[str] = Counter()
        self.finishes: Counter[str] = Counter()
        self.retries = self.waits = self.prompt_tokens = self.completion_tokens = self.cached = 0
        self.reported = self.cost_unknown = self.thinking = 0
        self.cache_requests = self.cache_hits = self.cached_tokens = self.written = 0
        self.cost = self.thinking_cost = self.saved = 0.0
        # Rows answered from the cache took no time and made no request: they would skew the figures.
        self.latencies = sorted(
            lat for r in state.rows if r.status != CANCELLED and not r.cached and (lat := r.latency) is not None
        )
        for row in state.rows:
            self._row(row, state)

    def _row(self, r: RequestResult, state: BatchState) -> None:
        self.counts[r.status] += 1
        if r.cost is not None:  # a reply that did not fit the schema was paid for too
            self.cost += r.cost
        elif r.status == OK:
            self.cost_unknown += 1
        self.cached += r.cached
        self.waits += r.waits
        if r.attempts > 1:
            self.retries += r.attempts - 1 - r.waits
        if r.error_kind is not None and r.status == ERROR:  # a row cancelled while rate limited did not fail
            self.kinds[r.error_kind] += 1
        if r.finish_reason in NOTABLE_FINISH:
            self.finishes[r.finish_reason] += 1
        if r.reasoning_tokens:
            self.thinking += r.reasoning_tokens
            if state.price is not None and r.cost:  # what those tokens cost, at the rate the row was billed
                self.thinking_cost += state.price.cost(0, r.reasoning_tokens)
        if r.completion_tokens is not None:
            self.reported += 1
            self.prompt_tokens += r.prompt_tokens or 0
            self.completion_tokens += r.completion_tokens
            if not r.cached:  # a request was made: it read the provider's prompt cache, or not
                self._prompt_cache(r, state)

    def _prompt_cache(self, r: RequestResult, state: BatchState) -> None:
        self.cache_requests += 1
        read, written = r.cached_tokens or 0, r.cache_write_tokens or 0
        if read:
            self.cache_hits += 1
            self.cached_tokens += read
        self.written += written
        if (read or written) and state.price is not None:  # against the same usage billed with no cache at all
            uncached = state.price.cost(r.prompt_tokens, r.completion_tokens)
            self.saved += uncached - state.price.cost(r.prompt_tokens, r.completion_tokens, read, written)


def _serial(state: BatchState) -> tuple[float | None, int | None, float | None]:
    """(serial-equivalent seconds, the server's apparent capacity, how late this process ran when that withheld the
    serial time): all None while the batch runs."""
    if not state.done:
        return None, None, None
    late = state.lateness.worst
    estimate = estimate_serial(state.rows, state.peak, queue_model=state.refused_at is None, late=late)
    if estimate is None:
        return None, None, None
    serial, capacity = estimate
    if state.failure is not None or state.refused_at is not None:
        capacity = None  # its times are of refusals and waits: it says so itself (server_limit)
    # too late to tell the server's queue from its own delays: said, not guessed
    return serial, capacity, late if serial is None else None


def _quantile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    k = (len(sorted_values) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def _cacheable(state: BatchState) -> int | None:
    """The shared prefix's tokens where the provider would cache it (at least its minimum), else None."""
    prefix, minimum = state.shared_prefix, state.cache_minimum
    if prefix is None or minimum is None or prefix.tokens < minimum:
        return None
    return prefix.tokens
