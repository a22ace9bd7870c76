"""Result objects shared by every layer: one row per request, and the batch that holds them.

A BatchResult is live while its batch runs: rows fill in as requests finish, and displays read it
at their own pace. It renders itself (text and HTML), converts to pandas and JSONL, and is
awaitable, so a batch started in the background can be awaited in a later cell.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter, deque
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol, overload

from .checks import whole_number
from .endpoints import Endpoint
from .figures import estimate_serial
from .prices import Price, usd
from .options import BatchOptions
from .prompts import Prompt

if TYPE_CHECKING:
    import pandas

__all__ = ["RequestResult", "BatchResult", "Summary", "Control"]

PENDING, RUNNING, OK, ERROR, CANCELLED = "pending", "running", "ok", "error", "cancelled"
NOT_SENT = "not sent"  # never sent: the batch stopped first (a bad key, the spending cap); a re-run sends it
DONE_STATUSES = frozenset({OK, ERROR, CANCELLED, NOT_SENT})


class Control(Protocol):
    """What a BatchResult asks of the runner driving it (runner._Run implements it)."""

    @property
    def limit(self) -> int: ...
    def set_limit(self, value: int) -> None: ...
    @property
    def in_flight(self) -> int: ...
    @property
    def peak(self) -> int: ...
    def cancel(self) -> None: ...
    async def wait_closed(self) -> None: ...


class RequestResult:
    """One request: its prompt, reply or error, usage, attempts and times.

    Times are seconds since the batch started: ``queued`` (submitted), ``started`` (first attempt
    sent), ``first_token`` (streaming only), ``finished``. A failed row keeps ``status_code`` and
    ``error_kind`` (see nbtools.failures); ``partial`` is what arrived of a reply that was cut off.
    """

    # __slots__: a batch of 100,000 rows must stay small in memory.
    __slots__ = (
        "index", "prompt", "text", "error", "error_kind", "status_code", "partial", "model", "prompt_tokens",
        "completion_tokens", "cached_tokens", "cost", "finish_reason", "attempts", "waits", "status", "queued", "started",
        "sent", "first_token", "finished", "cached", "_parts",
    )

    def __init__(self, index: int, prompt: Prompt, queued: float = 0.0) -> None:
        self.index = index
        self.prompt = prompt
        self.text: str | None = None
        self.error: str | None = None
        self.error_kind: str | None = None
        self.status_code: int | None = None
        self.partial: str | None = None
        self.model: str | None = None
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.finish_reason: str | None = None
        self.attempts = 0
        self.waits = 0  # attempts a rate limit or overload (429/503/529) sent back to wait: not retries
        self.status = PENDING
        self.queued = queued
        self.started: float | None = None
        self.sent: float | None = None  # when its last attempt went out (after any rate-limit wait or backoff)
        self.first_token: float | None = None
        self.finished: float | None = None
        self.cached = False  # answered from the cache, or by an identical request in the same batch
        self._parts: list[str] | None = None  # streamed text so far, while running
        self.cached_tokens: int | None = None  # prompt tokens the provider read from its prompt cache
        self.cost: float | None = None  # USD; None: price or usage unknown; 0.0 when no request was made

    @property
    def ok(self) -> bool:
        return self.status == OK

    @property
    def done(self) -> bool:
        return self.status in DONE_STATUSES

    @property
    def streaming(self) -> bool:
        """True while a streamed reply is arriving."""
        return self._parts is not None

    @property
    def partial_text(self) -> str:
        """The reply so far: the streamed text of a running request, else ``text``."""
        if self._parts is not None:
            return "".join(self._parts)
        return self.text or ""

    def begin_stream(self) -> None:
        """A new attempt streams: forget what an earlier one sent."""
        self._parts, self.first_token = [], None

    def add_text(self, delta: str, now: float) -> None:
        if self.first_token is None:
            self.first_token = now
        assert self._parts is not None
        self._parts.append(delta)

    def end_stream(self) -> None:
        self._parts = None

    @property
    def queue_wait(self) -> float | None:
        return None if self.started is None else self.started - self.queued

    @property
    def ttft(self) -> float | None:
        """Time to first token (streaming), from the start of the request."""
        return None if self.first_token is None or self.started is None else self.first_token - self.started

    @property
    def latency(self) -> float | None:
        return None if self.finished is None or self.started is None else self.finished - self.started

    @property
    def usage(self) -> dict[str, int | None]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens}

    @property
    def prompt_text(self) -> str:
        """The prompt as one line of text (the last user message of a chat prompt)."""
        if isinstance(self.prompt, str):
            return self.prompt
        for message in reversed(self.prompt):
            if message.get("role") == "user":
                return str(message.get("content"))
        return str(self.prompt[-1].get("content"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index, "prompt": self.prompt, "text": self.text, "error": self.error,
            "error_kind": self.error_kind, "status_code": self.status_code, "partial": self.partial,
            "status": self.status, "model": self.model, "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens, "cached_tokens": self.cached_tokens, "cost": self.cost,
            "finish_reason": self.finish_reason,
            "attempts": self.attempts, "waits": self.waits, "cached": self.cached, "queued": self.queued, "started": self.started,
            "first_token": self.first_token, "finished": self.finished, "queue_wait": self.queue_wait,
            "ttft": self.ttft, "latency": self.latency,
        }

    def __repr__(self) -> str:
        from .render import clip

        body = f"error={self.error!r}" if self.error else f"text={clip(self.partial_text, 60)!r}"
        lat = f", latency={self.latency:.3f}s" if self.latency is not None else ""
        return f"RequestResult(#{self.index} {self.status}, {body}{lat}, attempts={self.attempts})"


@dataclass(frozen=True)
class Summary:
    """Figures for a whole batch.

    ``serial`` is the serial-equivalent time: the sum of the time each request spent being served,
    estimated once the batch is done with the time it waited in the server's own queue taken out
    (see nbtools.figures); ``speedup`` = serial / wall. Both are None while the batch runs.
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

    def __str__(self) -> str:
        pct = f"p50 {self.p50:.2f} s, p95 {self.p95:.2f} s" if self.p50 is not None else "no latencies yet"
        if self.speedup is not None and self.serial is not None:
            serial = f"serially ~{self.serial:.2f} s (estimated; speedup {self.speedup:.1f}x)"
        else:
            serial = "speedup when done"
        tokens = "tokens/s unknown (no usage reported)" if self.tokens_per_s is None else f"{self.tokens_per_s:.0f} tokens/s"
        text = (
            f"{self.completed}/{self.total} done in {self.wall:.2f} s wall; {serial}; {pct}; {tokens}; "
            f"{self.errors} errors, {self.retries} retries"
            + (f", {self.waits} waits for rate limits" if self.waits else "")
            + (f", {self.cancelled} cancelled" if self.cancelled else "")
            + (f", {self.not_sent} not sent" if self.not_sent else "")
            + (f", {self.cached} from the cache" if self.cached else "")
        )
        notable = "; ".join(f"{n} {_FINISH_LABELS.get(r, r)}" for r, n in self.finish_reasons.items())
        if notable:
            text += f"; {notable}"
        if self.error_kinds:
            text += "; errors by kind: " + ", ".join(f"{kind} {n}" for kind, n in self.error_kinds.items())
        text += f"; {self.cost_text}"
        limit = self.server_limit()
        return text + (f"\n{limit}" if limit else "")

    @property
    def cost_text(self) -> str:
        """The money line: "cost $0.0123 (price source)", or why it is unknown; and the cap."""
        if self.cost is None:
            text = f"cost unknown ({self.price})" if self.price else "cost not known yet"
        else:
            more = f" + {self.cost_unknown} replies without usage" if self.cost_unknown else ""
            text = f"cost {usd(self.cost)}{more} ({self.price})"
        if self.max_cost is not None:
            text += f", max_cost {usd(self.max_cost)}"
        if self.capped and self.not_sent:
            text += f"; {self.not_sent} not sent: max_cost reached (raise it and run again to send them)"
        return text

    def server_limit(self) -> str | None:
        """One line when the server, not the client, set the pace (a teaching moment)."""
        if self.server_capacity is not None:
            n = self.server_capacity
            return (f"The server is the limit: it processed about {n} request{'s' if n != 1 else ''} at a time and "
                    f"queued the rest (latency grew with the number in flight); concurrency above {n} buys nothing here.")
        if self.refused_at is not None:
            return (f"The server is the limit: it turned requests away (429/503) at about {self.refused_at} in flight; "
                    "they waited and were sent again.")
        return None


_FINISH_LABELS = {"length": "cut off by max_tokens (finish_reason 'length')",
                  "content_filter": "stopped by a content filter"}
NOTABLE_FINISH = tuple(_FINISH_LABELS)


class BatchResult(Sequence[RequestResult]):
    """The results of one batch, in input order, live while the batch runs.

    ``await result`` (or, blocking, ``result.wait()``) waits for the end and raises what stopped the
    batch, as ``abatch`` does; ``result.cancel()`` stops it and keeps finished rows;
    ``result.concurrency = n`` changes the limit for requests not yet started.
    """

    def __init__(self, rows: list[RequestResult], options: BatchOptions, endpoint: Endpoint, model: str | None) -> None:
        self.rows = rows
        self.options = options
        self.endpoint = endpoint
        self.model = model
        self.started_at = datetime.now(timezone.utc)
        self._t0 = time.perf_counter()
        self._t_end: float | None = None
        self.cancelled = False
        self.failure: BaseException | None = None  # what stopped the batch as a whole, if anything
        self.refused_at: int | None = None  # in flight when the server first turned a request away
        self.price: Price | None = None  # set by the runner once the model is known; None: unknown
        self.price_note: str | None = None  # where the price came from, or why it is unknown
        self.capped = False  # max_cost stopped new requests
        self.batch_job: Any = None  # with via="batch": its jobs (batchapi.BatchJobRun), for the job line
        self._done = asyncio.Event()  # binds to a loop only when first awaited
        self._peak = 0
        self._last_limit: int | None = None
        self._figures: Summary | None = None  # the final summary, computed once
        # Kept up to date through the methods below, so live views never scan all rows:
        self.completed_count = 0  # rows finished, ok or error
        self.stream_chunks = 0  # streamed pieces of text received so far
        self.active: dict[int, RequestResult] = {}  # rows in flight, by index
        self.recent: deque[RequestResult] = deque(maxlen=100)  # the latest finished rows
        self._control: Control | None = None  # the runner, while the batch runs

    # -- what the runner calls ------------------------------------------------------------------
    def attach(self, control: Control) -> None:
        """The runner that drives this result, until ``close()``."""
        self._control = control

    def start_clock(self) -> None:
        """Time starts now: setting up a display is not queueing."""
        self._t0 = time.perf_counter()

    def now(self) -> float:
        """Seconds since the batch started."""
        return time.perf_counter() - self._t0

    def row_started(self, row: RequestResult) -> None:
        row.started = self.now()
        row.status = RUNNING
        self.active[row.index] = row

    def row_streamed(self, row: RequestResult, delta: str) -> None:
        self.stream_chunks += 1
        row.add_text(delta, self.now())

    def row_finished(self, row: RequestResult) -> None:
        """A row left flight: if it ended ok or in error, it is counted and shown among the latest."""
        row.end_stream()
        if row.finished is None:
            row.finished = self.now()
        self.active.pop(row.index, None)
        if row.status in (OK, ERROR):  # a cancelled one is not "done", and close() settles it
            self.completed_count += 1
            self.recent.append(row)
        self._figures = None  # rows can be filled after the end too (nbtools.resend)

    def close(self, *, cancelled: bool = False, not_sent: bool = False) -> None:
        """The batch is over: rows still open become cancelled (or not sent, if never started)."""
        now = self.now()
        for row in self.rows:
            if not row.done:
                row.end_stream()
                if row.started is not None:
                    row.status = CANCELLED
                    row.finished = now
                else:
                    row.status = NOT_SENT if not_sent else CANCELLED
        self.active.clear()
        self.cancelled = cancelled
        self._t_end = time.perf_counter()
        if self._control is not None:
            self._peak = self._control.peak
            self._last_limit = self._control.limit
        self._control = None
        self._done.set()

    # -- live control -------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self._t_end is not None

    @property
    def concurrency(self) -> int:
        """The limit in force (with concurrency="auto": the one it has found so far)."""
        if self._control is not None:
            return self._control.limit
        return self._last_limit or self.options.concurrency  # type: ignore[return-value]

    @concurrency.setter
    def concurrency(self, value: int) -> None:
        """A number set by hand also ends ``concurrency="auto"``: you take over from the controller."""
        value = whole_number("concurrency", value, 1, "e.g. result.concurrency = 16")
        if self._control is not None:
            self._control.set_limit(value)
        self.options.concurrency = value

    @property
    def in_flight(self) -> int:
        return self._control.in_flight if self._control is not None and not self.done else 0

    def cancel(self) -> None:
        """Stop the batch: in-flight and pending requests are cancelled, finished rows stay."""
        if self._control is not None and not self.done:
            self._control.cancel()

    async def aclose(self) -> None:
        """Cancel (if still running) and wait until nothing of the batch is left running."""
        if self._control is not None and not self.done:
            self._control.cancel()
            await self._control.wait_closed()

    def __await__(self) -> Generator[Any, None, BatchResult]:
        if not self.done:
            yield from self._done.wait().__await__()
        if self.failure is not None:
            raise self.failure
        return self

    def wait(self) -> BatchResult:
        """Block until the batch ends (e.g. a via="batch" job updating in the background); raises what
        stopped it, as ``await result`` does. Works in a script and in a notebook cell."""
        from .blocking import run_blocking

        async def until_done() -> BatchResult:
            return await self

        return run_blocking(until_done())

    def elapsed(self) -> float:
        """Seconds since the batch started (the wall time once it is done)."""
        return (self._t_end if self._t_end is not None else time.perf_counter()) - self._t0

    # -- sequence -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.rows)

    @overload
    def __getitem__(self, i: int) -> RequestResult: ...
    @overload
    def __getitem__(self, i: slice) -> list[RequestResult]: ...
    def __getitem__(self, i: int | slice) -> RequestResult | list[RequestResult]:
        return self.rows[i]

    def __iter__(self) -> Iterator[RequestResult]:
        return iter(self.rows)

    @property
    def texts(self) -> list[str | None]:
        """The reply texts in input order (None where a request failed or did not run)."""
        return [r.text for r in self.rows]

    @property
    def errors(self) -> list[RequestResult]:
        return [r for r in self.rows if r.status == ERROR]

    # -- figures --------------------------------------------------------------------------------
    def summary(self) -> Summary:
        if self._figures is not None:
            return self._figures
        # Rows answered from the cache took no time and made no request: they would skew the figures.
        latencies = sorted(
            lat for r in self.rows if r.status != CANCELLED and not r.cached and (lat := r.latency) is not None
        )
        wall = self.elapsed()
        counts: Counter[str] = Counter()
        kinds: Counter[str] = Counter()
        finishes: Counter[str] = Counter()
        retries = waits = ptok = ctok = cached = reported = cost_unknown = 0
        cost = 0.0
        for r in self.rows:
            counts[r.status] += 1
            if r.status == OK:
                if r.cost is None:
                    cost_unknown += 1
                else:
                    cost += r.cost
            cached += r.cached
            waits += r.waits
            if r.attempts > 1:
                retries += r.attempts - 1 - r.waits
            if r.error_kind is not None and r.status == ERROR:  # issue 11: a row cancelled while rate limited did not fail
                kinds[r.error_kind] += 1
            if r.finish_reason in NOTABLE_FINISH:
                finishes[r.finish_reason] += 1  # type: ignore[index]
            if r.completion_tokens is not None:
                reported += 1
                ptok += r.prompt_tokens or 0
                ctok += r.completion_tokens
        peak = self._control.peak if self._control is not None else self._peak
        serial = capacity = None
        if self.done:
            estimate = estimate_serial(self.rows, peak, queue_model=self.refused_at is None)
            if estimate is not None:
                serial, capacity = estimate
                if self.failure is not None or self.refused_at is not None:
                    capacity = None  # its times are of refusals and waits: it says so itself (server_limit)
        ok, errors = counts[OK], counts[ERROR]
        summary = Summary(
            total=len(self.rows), completed=ok + errors, ok=ok, errors=errors, cancelled=counts[CANCELLED],
            retries=retries, wall=wall, sum_latency=sum(latencies), serial=serial,
            speedup=serial / wall if serial is not None and wall > 0 else None,
            p50=_quantile(latencies, 0.50), p95=_quantile(latencies, 0.95),
            prompt_tokens=ptok if reported else None, completion_tokens=ctok if reported else None,
            tokens_per_s=ctok / wall if reported and wall > 0 else None,
            max_concurrency=peak, cached=cached, waits=waits, not_sent=counts[NOT_SENT], server_capacity=capacity,
            refused_at=self.refused_at, error_kinds=dict(kinds.most_common()), finish_reasons=dict(finishes),
            cost=cost if self.price is not None else None, cost_unknown=cost_unknown, max_cost=self.options.max_cost,
            price=self.price_note, capped=self.capped,
        )
        if self.done:
            self._figures = summary  # a finished batch does not change: figure it once
        return summary

    # -- export ---------------------------------------------------------------------------------
    def to_dicts(self) -> list[dict[str, Any]]:
        return [r.to_dict() for r in self.rows]

    def to_pandas(self) -> pandas.DataFrame:
        """One row per request (needs pandas: ``pip install pandas``)."""
        try:
            import pandas as pd
        except ImportError:
            from .errors import NbtoolsError

            raise NbtoolsError("to_pandas() needs pandas, which is not installed: pip install pandas") from None
        frame = pd.DataFrame.from_records(self.to_dicts())
        return frame.set_index("index")

    def to_jsonl(self, path: str | os.PathLike[str]) -> int:
        """Write one JSON object per request to ``path``; returns the number of lines written."""
        with open(path, "w", encoding="utf-8") as f:
            for r in self.rows:
                f.write(json.dumps(r.to_dict(), ensure_ascii=False) + "\n")
        return len(self.rows)

    # -- display --------------------------------------------------------------------------------
    def __repr__(self) -> str:
        from .render import batch_text

        return batch_text(self)

    def _repr_html_(self) -> str:
        from .render import batch_html

        return batch_html(self)


def _quantile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    k = (len(sorted_values) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)
