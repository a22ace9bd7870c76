"""Running a batch through a provider's Batch API, filling the same BatchState as an online run.

Per part (one provider job): reattach if the store knows it, else submit and record it at once; poll
with a growing interval; when it ends, read its result lines into the rows (input order, by custom_id)
and store them, so the next run answers from the store. ``cancel()`` (``result.cancel()``, the Cancel
button, the stop button on a ``--wait`` cell) cancels the provider's jobs and keeps what finished. A run
that is torn down instead (Ctrl-C in ``batch()``, Ctrl-C in ``result.wait()``, a dead kernel) only
detaches: the jobs keep running and the next run reattaches to them.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from nbtools._base.errors import ConfigError
from nbtools._engine.batchapi.clients import BatchAPIError, BatchClient, JobState, client_for
from nbtools._engine.batchapi.outcome import Outcome
from nbtools._engine.batchapi.requests import Part, build_parts, run_key
from nbtools._engine.batchapi.store import JobRecord, JobStore
from nbtools._engine.failures import BAD_INPUT
from nbtools._engine.lifecycle import Run
from nbtools._engine.plan import cache_fields, caches_system
from nbtools._engine.rows import ERROR, NOT_SENT, RequestResult, fill_reply
from nbtools._engine.state import State
from nbtools._engine.wire import Dialect, schema_form

OnResult = Callable[[RequestResult], Any]
SIM_POLL = 0.25  # seconds: the simulator finishes a batch in about a second
REAL_POLL = 5.0  # a provider's batch takes minutes to hours: no need to ask more often at first
MAX_POLL = 60.0
GROWTH = 1.5
CANCEL_WAIT = 10.0  # seconds to wait for a cancelled job to end before leaving it cancelling


def poll_schedule(first: float) -> Callable[[], float]:
    """Intervals that start at ``first`` and grow by half each time, up to a minute (or 20x first)."""
    cap = max(first, min(MAX_POLL, first * 20))
    interval = first / GROWTH

    def next_interval() -> float:
        nonlocal interval
        interval = min(cap, interval * GROWTH)
        return interval

    return next_interval


class BatchAPIRun(Run[State]):
    """One ``via="batch"`` run: its jobs, one per part."""

    _owns_cancel = False  # cancel() cancels the provider's jobs, not our task: a CancelledError is an interrupt

    def __init__(self, result: State, on_result: OnResult | None) -> None:
        if result.model is None:
            raise ConfigError("via='batch' needs a model name (a job cannot ask the server which): pass model= "
                              "(magic: -m MODEL)")
        super().__init__(result)
        self.options = result.options
        self.on_result = on_result
        self._active = 0  # rows in jobs that have not ended
        self._peak = 0
        self.store = JobStore()
        self.key: str | None = None
        self.jobs: dict[int, JobState] = {}  # part -> its job as last seen
        self.status = "preparing"  # for the live view: see ``describe()``
        self.reattached = 0
        self.submitted_jobs = 0
        self.timings = {"build": 0.0, "submit": 0.0, "results": 0.0}  # client-side seconds, summed over parts
        self.submitted = asyncio.Event()  # every part submitted or reattached (or the run ended)
        self._wake = asyncio.Event()
        self._n_parts = 0
        self._ready_parts: set[int] = set()
        self._reading = asyncio.Lock()
        result.batch_run = self  # views.report reads it for the jobs' line

    # -- Control: no concurrency limit applies to a job; "in flight" is the rows in jobs not ended -----
    @property
    def limit(self) -> int:
        return len(self.result.rows)

    def set_limit(self, value: int) -> None:
        pass  # the provider runs a job at its own pace

    @property
    def in_flight(self) -> int:
        return self._active

    @property
    def peak(self) -> int:
        return self._peak

    def cancel(self) -> None:
        """Cancel the provider's jobs; rows already answered stay, the rest end cancelled."""
        self._cancel_requested = True
        self._wake.set()
        if self.main_task is not None and self.main_task.done():
            self.close(cancelled=True)

    def describe(self) -> str:
        """One line for the live view: the jobs' states and counts."""
        if not self.jobs:
            return f"Batch API: {self.status}"
        states = sorted({s.status for s in self.jobs.values()})
        done = sum(s.done for s in self.jobs.values())
        failed = sum(s.failed for s in self.jobs.values())
        ids = ", ".join(s.id for _, s in sorted(self.jobs.items())[:3]) + (" ..." if len(self.jobs) > 3 else "")
        again = f" (reattached {self.reattached})" if self.reattached else ""
        return (f"Batch API {self.status}: {len(self.jobs)} job{'s' if len(self.jobs) != 1 else ''} {ids}{again} · "
                f"{'/'.join(states)} · {done} done, {failed} failed of {len(self.result.rows)}")

    # -- the run ---------------------------------------------------------------------------------------
    async def go(self) -> None:
        async with client_for(self.result.endpoint, self.options.timeout) as client:
            await self._run(client)

    def _ended(self) -> None:
        self.close(cancelled=self._cancel_requested)

    def _cancelled(self) -> None:  # an interrupt: detach; the jobs stay recorded and keep running
        self.status = "detached (the job keeps running: run the same cell again to reattach)"

    def _fail(self, error: BaseException, *, not_sent: bool = False) -> None:
        self.status = "failed"
        super()._fail(error, not_sent=not_sent)

    async def _run(self, client: BatchClient) -> None:
        result, options = self.result, self.options
        assert result.model is not None
        self.status = "building requests"
        t = time.perf_counter()
        form = result.schema_form = schema_form(result.endpoint, batch_api=True) if options.schema is not None else None
        parts = build_parts(result.rows, options, result.model, client.batch_format, Dialect(result.endpoint, options.api),
                            max_requests=options.job_size, form=form, fields=cache_fields(result),
                            cache_system=caches_system(result))
        self.timings["build"] = time.perf_counter() - t
        self.key = key = run_key(client.batch_format, result.endpoint.base_url, result.model, parts)
        self._n_parts = len(parts)
        known = self.store.parts(key)
        for row in result.rows:
            if row.error_kind == BAD_INPUT:  # refused before the batch began: counted and passed on, as online
                self._done(row)
        self.status = "submitting"
        first = options.poll_interval or (SIM_POLL if result.endpoint.simulated else REAL_POLL)
        tasks = [asyncio.ensure_future(self._part(client, i, len(parts), part, known.get(i), first))
                 for i, part in enumerate(parts)]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _part(self, client: BatchClient, i: int, n: int, part: Part, record: JobRecord | None,
                    first_poll: float) -> None:
        key = self.key
        assert key is not None
        rows = [r for r in self.result.rows[part.first : part.first + part.count] if r.error_kind != BAD_INPUT]
        if record is not None and record.stored:  # finished before: answer from the store
            self.jobs[i] = JobState(record.job_id, record.status, record.total, record.done, record.failed, {})
            self.reattached += 1
            self._fill(rows, self.store.results(key, part.first, part.count), cached=True)
            self._ready(i)
            return
        job_id = record.job_id if record is not None else None
        if job_id is not None:
            self.reattached += 1
        self._active += part.count
        self._peak = max(self._peak, self._active)
        try:
            state: JobState | None = None
            if job_id is not None:
                try:
                    state = await client.retrieve(job_id)
                except BatchAPIError as exc:
                    if exc.status != 404:
                        raise
                    self.reattached -= 1  # the provider no longer has it: nothing can be paid twice
                    job_id = None
            if job_id is None:
                if self._cancel_requested:
                    self._ready(i)
                    self._not_sent(rows, "not sent: the batch was cancelled before this job was submitted")
                    return
                t = time.perf_counter()
                job_id, file_id = await client.submit(part, {"nbtools_key": key[:16], "nbtools_part": f"{i + 1}/{n}"})
                self.timings["submit"] += time.perf_counter() - t
                self.store.add(key, i, n, self.result.endpoint.provider, self.result.endpoint.base_url,
                               self.result.model or "", job_id, file_id, part.first, part.count)
                self.submitted_jobs += 1
            part.lines = []  # sent: the request bytes are not needed any more
            state = await self._poll(client, i, job_id, first_poll, state)
            self.status = "reading results"
            if state.status == "failed":  # refused as a whole, nothing ran: a re-run may submit it again
                self._fail_rows(rows, f"the provider failed the job {state.id}: {state.errors or 'no reason given'}")
                self.store.forget_part(key, i)
                return
            if state.ended:
                async with self._reading:  # one result file in memory at a time
                    t = time.perf_counter()
                    outcomes = await client.results(state)
                    stored = self._apply(rows, outcomes, state)
                    self.timings["results"] += time.perf_counter() - t
                    self.store.save_results(key, i, stored)
            else:  # cancelled by us, and still cancelling: what it finished is read on the next run
                self._not_sent(rows, f"not sent: job {state.id} is {state.status}; run again to collect what it finished")
        finally:
            self._active -= part.count

    def _ready(self, i: int) -> None:
        """Part ``i`` has its job (submitted, reattached or answered from the store)."""
        self._ready_parts.add(i)
        if len(self._ready_parts) == self._n_parts and not self.submitted.is_set():
            self.submitted.set()
            self.status = "waiting for the provider"

    async def _poll(self, client: BatchClient, i: int, job_id: str, first: float, state: JobState | None) -> JobState:
        next_interval = poll_schedule(first)
        cancel_sent: float | None = None
        while True:
            if state is None:
                state = await client.retrieve(job_id)
            self.jobs[i] = state
            self._ready(i)
            assert self.key is not None
            self.store.update(self.key, i, state.status, state.total, state.done, state.failed)
            if state.ended:
                return state
            if self._cancel_requested:
                if cancel_sent is None:
                    state = await client.cancel(job_id)
                    cancel_sent = time.monotonic()
                    continue
                if time.monotonic() - cancel_sent > CANCEL_WAIT:
                    return state
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), next_interval() if cancel_sent is None else first)
            except asyncio.TimeoutError:
                pass
            state = None

    # -- rows --------------------------------------------------------------------------------------
    def _apply(self, rows: list[RequestResult], outcomes: Iterable[Outcome], state: JobState) -> list[Outcome]:
        first, end = (rows[0].index, rows[-1].index + 1) if rows else (0, 0)
        by_index: dict[int, Outcome | None] = {o.index: o for o in outcomes if first <= o.index < end}
        # A row the provider said nothing about was never run.
        stored = [by_index.pop(row.index, None) or Outcome(row.index, error=f"not sent: job {state.id} ended "
                                                            f"{state.status} without it", not_sent=True) for row in rows]
        self._fill(rows, stored, cached=False)
        return stored

    def _fill(self, rows: list[RequestResult], stored: list[Outcome], *, cached: bool) -> None:
        by_index = {s.index: s for s in stored}
        now = self.result.now()
        model = self.result.model
        for row in rows:
            s = by_index.get(row.index)
            row.started = 0.0
            row.finished = now
            row.attempts = 1
            row.cached = cached
            if s is None or s.not_sent:
                row.status, row.error = NOT_SENT, (s.error if s else "not sent")
                row.attempts, row.started, row.finished = 0, None, None  # never ran: no time of its own
                continue
            if s.completion is not None:  # the batch rates (price_batch); nothing more for a stored one
                fill_reply(row, s.completion, model, self.result.price, charged=not cached, schema=self.options.schema)
            else:
                row.error, row.status = s.error, ERROR
            self._done(row)

    def _fail_rows(self, rows: list[RequestResult], message: str) -> None:
        self._fill(rows, [Outcome(r.index, None, message, False) for r in rows], cached=False)

    def _not_sent(self, rows: list[RequestResult], message: str) -> None:
        self._fill(rows, [Outcome(r.index, None, message, True) for r in rows], cached=False)

    def _done(self, row: RequestResult) -> None:
        self.result.row_finished(row)
        if self.on_result is not None:
            try:
                self.on_result(row)
            except Exception as exc:  # a broken callback must not lose the job: say so and go on
                print(f"nbtools: on_result failed ({type(exc).__name__}: {exc}); rows are still filled", file=sys.stderr)

    def close(self, *, cancelled: bool, not_sent: bool = False) -> None:
        if not self.result.done and self.status != "failed" and not self.status.startswith("detached"):
            self.status = "cancelled" if cancelled else "ended"
        super().close(cancelled=cancelled, not_sent=not_sent)
        self.submitted.set()
