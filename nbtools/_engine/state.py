"""The state a running batch shares with the engine that drives it.

A batch's rows fill in as requests finish; displays read them at their own pace. The counters
below are kept up to date as rows change, so live views never scan all rows.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from nbtools._base.grading import grade
from nbtools._base.options import BatchOptions
from nbtools._engine.lateness import LoopLateness
from nbtools._engine.rows import CANCELLED, ERROR, NOT_SENT, OK, RUNNING, RequestResult

if TYPE_CHECKING:
    from nbtools._engine.endpoints import Endpoint
    from nbtools._engine.prices import Price
    from nbtools._engine.prompt_cache import SharedPrefix


class Control(Protocol):
    """What a batch asks of the run driving it (every nbtools._engine.lifecycle.Run is one)."""

    @property
    def limit(self) -> int: ...
    def set_limit(self, value: int) -> None: ...
    @property
    def in_flight(self) -> int: ...
    @property
    def peak(self) -> int: ...
    @property
    def limit_path(self) -> list[int]: ...
    def cancel(self) -> None: ...
    async def wait_closed(self) -> None: ...


class Jobs(Protocol):
    """A Batch API run, as its batch shows it (nbtools._engine.batchapi.run.BatchAPIRun)."""

    submitted: asyncio.Event  # every job submitted or reattached (or the run ended)

    def describe(self) -> str: ...


class BatchState:
    """What an engine fills while a batch runs: its rows, clock, price and the runner driving it.

    nbtools._result.BatchResult adds what users call on it (figures, export, display, awaiting).
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
        self.schema_form: str | None = None  # with schema=: how the endpoint was asked (nbtools._engine.wire.FORMS)
        self.batch_run: Jobs | None = None  # with via="batch": its jobs, for the job line
        self.shared_prefix: SharedPrefix | None = None  # what every row sends first, measured once the model is known
        self.cache_minimum: int | None = None  # the fewest prompt tokens the provider caches; None: it does not here
        self.warmed_up = False  # one row went first, to fill the provider's prompt cache for the rest
        self._done = asyncio.Event()  # binds to a loop only when first awaited
        self._peak = 0
        self._last_limit: int | None = None
        self._limit_path: list[int] = []
        self.lateness = LoopLateness()  # how late the loop ran while the batch did (started by the online run)
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
        self.grade(row)
        if row.status in (OK, ERROR):  # a cancelled one is not "done", and close() settles it
            self.completed_count += 1
            self.recent.append(row)
        self.rows_changed()  # rows can be filled after the end too (nbtools.resend)

    def grade(self, row: RequestResult) -> None:
        """With checks=: the row's checks, as soon as it has a reply (one that did not fit the schema included)."""
        checks = self.options.checks
        if checks is not None:
            if row.text is None:
                row.checks, row.check_error = None, None
            else:
                grade(row, checks)

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
            self._limit_path = self._control.limit_path
        self._control = None
        self._done.set()

    def rows_changed(self) -> None:
        """A row was filled: figures derived from the rows are out of date."""

    # -- what views and figures read --------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self._t_end is not None

    def current_limit(self) -> int:
        """The concurrency limit in force (with concurrency="auto": the one found so far)."""
        if self._control is not None:
            return self._control.limit
        return self._last_limit or self.options.concurrency  # type: ignore[return-value]

    @property
    def in_flight(self) -> int:
        return self._control.in_flight if self._control is not None and not self.done else 0

    @property
    def peak(self) -> int:
        """The most requests that were in flight at once."""
        return self._control.peak if self._control is not None else self._peak

    @property
    def limit_path(self) -> list[int]:
        """Each concurrency limit in force, in turn (how concurrency="auto" went)."""
        return self._control.limit_path if self._control is not None else self._limit_path

    def elapsed(self) -> float:
        """Seconds since the batch started (the wall time once it is done)."""
        return (self._t_end if self._t_end is not None else time.perf_counter()) - self._t0


State = TypeVar("State", bound=BatchState)  # the result an engine fills: a BatchState or a subclass


# -- several endpoints, one batch ------------------------------------------------------------------
class PartState(BatchState):
    """One endpoint's part of a several-model batch: a batch of its own, on the whole batch's clock."""

    parent: SeveralState[Any] | None = None
    label = ""
    slot = 0  # its place among the models

    def start_clock(self) -> None:
        if self.parent is not None:  # one clock for every model: their timelines line up
            self._t0 = self.parent._t0
        else:
            super().start_clock()

    def row_started(self, row: RequestResult) -> None:
        super().row_started(row)
        if self.parent is not None:
            self.parent.active[self.parent.position(self, row)] = row

    def row_streamed(self, row: RequestResult, delta: str) -> None:
        super().row_streamed(row, delta)
        if self.parent is not None:
            self.parent.stream_chunks += 1

    def row_finished(self, row: RequestResult) -> None:
        super().row_finished(row)
        parent = self.parent
        if parent is not None:
            parent.active.pop(parent.position(self, row), None)
            if row.status in (OK, ERROR):
                parent.completed_count += 1
                parent.recent.append(row)
            parent.rows_changed()


Part = TypeVar("Part", bound=PartState)


class SeveralState(BatchState, Generic[Part]):
    """The same prompts sent to several endpoints: one row per prompt and endpoint (prompt by prompt);
    ``by_model[label]`` is each endpoint's own part."""

    def __init__(self, parts: Sequence[Part], options: BatchOptions) -> None:
        count = len(parts)
        rows = [part.rows[i] for i in range(len(parts[0].rows)) for part in parts]  # prompt by prompt
        super().__init__(rows, options, parts[0].endpoint, None)
        self.by_model: dict[str, Part] = {}
        for slot, part in enumerate(parts):
            part.parent, part.slot = self, slot
            self.by_model[part.label] = part
        self._count = count

    def position(self, part: PartState, row: RequestResult) -> int:
        """Where a part's row sits in ``rows``."""
        return row.index * self._count + part.slot

    @property
    def labels(self) -> list[str]:
        return list(self.by_model)

    @property
    def failures(self) -> dict[str, BaseException]:
        """The endpoints that stopped on their own (a refused key, a model that is not there), and why."""
        return {label: part.failure for label, part in self.by_model.items() if part.failure is not None}

    def failure_lines(self) -> list[str]:
        """One line per endpoint that stopped: which one, why, and what became of its rows."""
        failures = self.failures
        others = "; the other models went on" if len(failures) < len(self.by_model) else ""
        lines = []
        for label, error in failures.items():
            held = sum(row.status == NOT_SENT for row in self.by_model[label].rows)
            lines.append(f"{label} stopped ({held} of its requests not sent{others}): {error}")
        return lines
