"""The state a running batch shares with the engine that drives it.

A batch's rows fill in as requests finish; displays read them at their own pace. The counters
below are kept up to date as rows change, so live views never scan all rows.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from nbtools.engine.lateness import LoopLateness
from nbtools.engine.rows import CANCELLED, ERROR, NOT_SENT, OK, RUNNING, RequestResult
from nbtools.options import BatchOptions

if TYPE_CHECKING:
    from nbtools.engine.endpoints import Endpoint
    from nbtools.engine.prices import Price

__all__ = ["BatchState", "Control", "State"]


class Control(Protocol):
    """What a BatchResult asks of the runner driving it (OnlineRun and BatchAPIRun implement it)."""

    @property
    def limit(self) -> int: ...
    def set_limit(self, value: int) -> None: ...
    @property
    def in_flight(self) -> int: ...
    @property
    def peak(self) -> int: ...
    def cancel(self) -> None: ...
    async def wait_closed(self) -> None: ...


class BatchState:
    """What an engine fills while a batch runs: its rows, clock, price and the runner driving it.

    nbtools.results.BatchResult adds what users call on it (figures, export, display, awaiting).
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
        self.schema_form: str | None = None  # with schema=: how the endpoint was asked (nbtools.schemas.FORMS)
        self.batch_run: Any = None  # with via="batch": its jobs (batchapi.BatchAPIRun), for the job line
        self._done = asyncio.Event()  # binds to a loop only when first awaited
        self._peak = 0
        self._last_limit: int | None = None
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
        if row.status in (OK, ERROR):  # a cancelled one is not "done", and close() settles it
            self.completed_count += 1
            self.recent.append(row)
        self.rows_changed()  # rows can be filled after the end too (nbtools.resend)

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

    def rows_changed(self) -> None:
        """A row was filled: figures derived from the rows are out of date."""

    @property
    def done(self) -> bool:
        return self._t_end is not None

    def elapsed(self) -> float:
        """Seconds since the batch started (the wall time once it is done)."""
        return (self._t_end if self._t_end is not None else time.perf_counter()) - self._t0


State = TypeVar("State", bound=BatchState)  # the result an engine fills: a BatchState or a subclass
