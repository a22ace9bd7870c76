"""The job store seen by a user: list Batch API runs, cancel or forget them, send again what they did not run.

A run is one ``via="batch"`` call: one provider job per part (a part holds at most the provider's
requests per job). ``jobs()`` lists runs; ``cancel_job`` and ``forget_job`` take a run's id or any of its jobs' ids.
"""

from __future__ import annotations

from typing import Any

from nbtools._base.errors import BatchInterrupted
from nbtools._engine import resend as resending
from nbtools._engine.batchapi.store import JobStore, RecordedRun
from nbtools._engine.blocking import run_blocking
from nbtools._engine.endpoints import PROFILES, resolve_endpoint
from nbtools._engine.rows import RequestResult, copy_outcome
from nbtools._result import BatchResult
from nbtools._views.rich import Shown, View
from nbtools._views.run_table import RunsView


class RecordedRuns(Shown, list[RecordedRun]):
    """What ``jobs()`` returns: a list that shows itself as a table."""

    def _view(self) -> View:
        return RunsView(self)


def jobs(store: JobStore | None = None) -> RecordedRuns:
    """Every recorded Batch API run with its jobs, oldest first, as last seen (a running cell keeps them current)."""
    return RecordedRuns((store or JobStore()).runs())


def forget_job(job: str) -> int:
    """Drop a run (by the id jobs() shows, or one of its provider job ids) from the store; a re-run submits anew."""
    store = JobStore()
    parts = store.find_run(job)
    return store.forget(parts[0].key)


def cancel_job(job: str) -> list[str]:
    """Ask the provider to cancel every job of a recorded run (by either id, as forget_job); returns their states."""
    store = JobStore()
    parts = store.find_run(job)
    first = parts[0]
    provider = first.provider if first.provider in PROFILES else None
    endpoint = resolve_endpoint(provider, first.base_url)

    async def cancel_all() -> list[str]:
        states = []
        from nbtools._engine.batchapi.clients import client_for  # on aiohttp: imported where it can run

        async with client_for(endpoint, 60.0) as client:
            for p in parts:
                state = await client.cancel(p.job_id)
                store.update(p.key, p.part, state.status, state.total, state.done, state.failed)
                states.append(f"{state.id}: {state.status}")
        return states

    return run_blocking(cancel_all())


def resend(result: BatchResult, via: str = "online", **options: Any) -> BatchResult:
    """Send again the rows a job did not run (expired, cancelled), online or as a new batch job.

    Blocks until they are back, fills them into ``result`` in place and returns it. ``options``
    override the original ones (e.g. concurrency=32 online).
    """
    def fill(row: RequestResult, original: RequestResult) -> None:
        copy_outcome(row, original)
        result.row_finished(original)

    rows = resending.not_sent(result)
    run = resending.again(result, rows, [row.prompt for row in rows], fill, via=via, what="sending the rest again",
                          **options)
    if run is not None:
        try:
            run.block()
        except BatchInterrupted:
            raise BatchInterrupted(result) from None  # the rows sent again are in the batch they belong to
    return result
