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
from collections import deque
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, overload

from .endpoints import Endpoint
from .options import BatchOptions, Prompt

if TYPE_CHECKING:
    import pandas

__all__ = ["RequestResult", "BatchResult", "Summary"]

PENDING, RUNNING, OK, ERROR, CANCELLED = "pending", "running", "ok", "error", "cancelled"


class RequestResult:
    """One request: its prompt, reply or error, usage, attempts and times.

    Times are seconds since the batch started: ``queued`` (submitted), ``started`` (first attempt
    sent), ``first_token`` (streaming only), ``finished``.
    """

    # __slots__: a batch of 100,000 rows must stay small in memory.
    __slots__ = (
        "index", "prompt", "text", "error", "model", "prompt_tokens", "completion_tokens",
        "finish_reason", "attempts", "status", "queued", "started", "first_token", "finished", "cached", "_parts",
    )

    def __init__(self, index: int, prompt: Prompt, queued: float = 0.0) -> None:
        self.index = index
        self.prompt = prompt
        self.text: str | None = None
        self.error: str | None = None
        self.model: str | None = None
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.finish_reason: str | None = None
        self.attempts = 0
        self.status = PENDING
        self.queued = queued
        self.started: float | None = None
        self.first_token: float | None = None
        self.finished: float | None = None
        self.cached = False  # answered from the cache, or by an identical request in the same batch
        self._parts: list[str] | None = None  # streamed text so far, while running

    @property
    def ok(self) -> bool:
        return self.status == OK

    @property
    def done(self) -> bool:
        return self.status in (OK, ERROR, CANCELLED)

    @property
    def partial_text(self) -> str:
        """The reply so far: the streamed text of a running request, else ``text``."""
        if self._parts is not None:
            return "".join(self._parts)
        return self.text or ""

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
            "status": self.status, "model": self.model, "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens, "finish_reason": self.finish_reason,
            "attempts": self.attempts, "cached": self.cached, "queued": self.queued, "started": self.started,
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
    """Figures for a whole batch. ``speedup`` = sum of latencies / wall time."""

    total: int
    completed: int
    ok: int
    errors: int
    cancelled: int
    retries: int
    wall: float
    sum_latency: float
    speedup: float
    p50: float | None
    p95: float | None
    prompt_tokens: int
    completion_tokens: int
    tokens_per_s: float
    max_concurrency: int
    cached: int = 0  # rows answered from the cache (or by an identical request): not in the latency figures

    def __str__(self) -> str:
        pct = f"p50 {self.p50:.2f} s, p95 {self.p95:.2f} s" if self.p50 is not None else "no latencies yet"
        return (
            f"{self.completed}/{self.total} done in {self.wall:.2f} s wall; serially ~{self.sum_latency:.2f} s "
            f"(speedup {self.speedup:.1f}x); {pct}; {self.tokens_per_s:.0f} tokens/s; "
            f"{self.errors} errors, {self.retries} retries"
            + (f", {self.cancelled} cancelled" if self.cancelled else "")
            + (f", {self.cached} from the cache" if self.cached else "")
        )


class BatchResult(Sequence[RequestResult]):
    """The results of one batch, in input order, live while the batch runs.

    ``await result`` waits for the end; ``result.cancel()`` stops it and keeps finished rows;
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
        self._done = asyncio.Event()  # binds to a loop only when first awaited
        self._peak = 0
        self._last_limit: int | None = None
        # Kept up to date by the runner, so live views never scan all rows:
        self.completed_count = 0  # rows finished, ok or error
        self.stream_chunks = 0  # streamed pieces of text received so far
        self.active: dict[int, RequestResult] = {}  # rows in flight, by index
        self.recent: deque[RequestResult] = deque(maxlen=100)  # the latest finished rows
        self._controller: Any = None  # the running batch (runner._Run), while there is one

    # -- live control -------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self._t_end is not None

    @property
    def concurrency(self) -> int:
        """The limit in force (with concurrency="auto": the one it has found so far)."""
        if self._controller is not None:
            return self._controller.limiter.limit
        return self._last_limit or self.options.concurrency  # type: ignore[return-value]

    @concurrency.setter
    def concurrency(self, value: int) -> None:
        """A number set by hand also ends ``concurrency="auto"``: you take over from the controller."""
        if self._controller is not None:
            self._controller.limiter.limit = value
            self._controller.adaptive = None
        self.options.concurrency = value

    @property
    def in_flight(self) -> int:
        return self._controller.limiter.active if self._controller and not self.done else 0

    def cancel(self) -> None:
        """Stop the batch: in-flight and pending requests are cancelled, finished rows stay."""
        if self._controller is not None and not self.done:
            self._controller.cancel()

    async def aclose(self) -> None:
        """Cancel (if still running) and wait until nothing of the batch is left running."""
        if self._controller is not None and not self.done:
            self._controller.cancel()
            await self._controller.wait_closed()

    def wait(self) -> BatchResult:
        """Block until the batch ends (e.g. a via="batch" job that updates in the background). Issue 15."""
        from .blocking import run_blocking

        async def until_done() -> BatchResult:
            return await self

        return run_blocking(until_done())

    def __await__(self) -> Generator[Any, None, BatchResult]:
        if not self.done:
            yield from self._done.wait().__await__()
        return self

    def elapsed(self) -> float:
        """Seconds since the batch started (the wall time once it is done)."""
        return (self._t_end if self._t_end is not None else time.perf_counter()) - self._t0

    def _now(self) -> float:
        return time.perf_counter() - self._t0

    def _finish(self, *, cancelled: bool = False) -> None:
        now = self._now()
        for row in self.rows:
            if not row.done:
                row.status = CANCELLED
                row._parts = None
                if row.started is not None:
                    row.finished = now
        self.active.clear()
        self.cancelled = cancelled
        self._t_end = time.perf_counter()
        if self._controller is not None:
            self._peak = self._controller.limiter.peak
            self._last_limit = self._controller.limiter.limit
        self._controller = None
        self._done.set()

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
        # Rows answered from the cache took no time and made no request: they would skew the figures.
        latencies = sorted(
            lat for r in self.rows if r.status != CANCELLED and not r.cached and (lat := r.latency) is not None
        )
        wall = self.elapsed()
        ok = errors = cancelled = retries = ptok = ctok = cached = 0
        for r in self.rows:
            status = r.status
            cached += r.cached
            if status == OK:
                ok += 1
            elif status == ERROR:
                errors += 1
            elif status == CANCELLED:
                cancelled += 1
            if r.attempts > 1:
                retries += r.attempts - 1
            ptok += r.prompt_tokens or 0
            ctok += r.completion_tokens or 0
        total_latency = sum(latencies)
        peak = self._controller.limiter.peak if self._controller else self._peak
        return Summary(
            total=len(self.rows), completed=ok + errors, ok=ok, errors=errors, cancelled=cancelled,
            retries=retries, wall=wall, sum_latency=total_latency,
            speedup=total_latency / wall if wall > 0 else 0.0,
            p50=_quantile(latencies, 0.50), p95=_quantile(latencies, 0.95),
            prompt_tokens=ptok, completion_tokens=ctok, tokens_per_s=ctok / wall if wall > 0 else 0.0,
            max_concurrency=peak, cached=cached,
        )

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
