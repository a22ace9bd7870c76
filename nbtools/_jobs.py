"""The job store seen by a user: list Batch API runs, cancel or forget them, send again what they did not run.

A run is one ``via="batch"`` call: one provider job per part (a part holds at most the provider's
requests per job). ``jobs()`` lists runs; ``cancel_job`` and ``forget_job`` take a run's id or any of its jobs' ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nbtools._api import batch
from nbtools._base.errors import ConfigError
from nbtools._base.options import RESENT
from nbtools._engine.batchapi.clients import client_for
from nbtools._engine.batchapi.store import JobRecord, JobStore
from nbtools._engine.endpoints import PROFILES, resolve_endpoint
from nbtools._engine.rows import NOT_SENT, RequestResult, copy_outcome
from nbtools._result import BatchResult
from nbtools._views.run_table import runs_html, runs_text


@dataclass(frozen=True)
class RecordedRun:
    """One recorded Batch API run (all its jobs): ``id`` is what cancel_job / forget_job take."""

    id: str
    provider: str
    host: str
    model: str
    job_ids: tuple[str, ...]
    status: str
    total: int
    done: int
    failed: int
    created: float


class RecordedRuns(list[RecordedRun]):
    """What ``jobs()`` returns: a list that shows itself as a table."""

    def __repr__(self) -> str:
        return runs_text(self)

    def _repr_html_(self) -> str:
        return runs_html(self)


def _group(records: list[JobRecord]) -> dict[str, list[JobRecord]]:
    groups: dict[str, list[JobRecord]] = {}
    for r in records:
        groups.setdefault(r.key, []).append(r)
    return groups


def jobs(store: JobStore | None = None) -> RecordedRuns:
    """Every recorded Batch API run with its jobs, oldest first, as last seen (a running cell keeps them current)."""
    store = store or JobStore()
    found = RecordedRuns()
    for key, parts in _group(store.all()).items():
        statuses = sorted({p.status for p in parts})
        missing = parts[0].parts - len(parts)
        status = "/".join(statuses) + (f" ({missing} part(s) not submitted)" if missing else "")
        host = parts[0].base_url.split("://", 1)[-1].split("/", 1)[0]
        found.append(RecordedRun(key[:12], parts[0].provider, host, parts[0].model, tuple(p.job_id for p in parts), status,
                             sum(p.total for p in parts), sum(p.done for p in parts), sum(p.failed for p in parts),
                             min(p.created for p in parts)))
    return found


def _find_run(ref: str, store: JobStore) -> list[JobRecord]:
    """The jobs of the run ``ref`` names: the run's id as jobs() shows it, or one of its provider job ids."""
    ref = ref.strip()
    for key, parts in _group(store.all()).items():
        if key.startswith(ref) and len(ref) >= 6 or any(p.job_id == ref for p in parts):
            return parts
    raise ConfigError(f"no recorded Batch API job {ref!r}: nbtools.jobs() (magic: %llm_jobs) lists them")


def forget_job(job: str) -> int:
    """Drop a run (by the id jobs() shows, or one of its provider job ids) from the store; a re-run submits anew."""
    store = JobStore()
    parts = _find_run(job, store)
    return store.forget(parts[0].key)


def cancel_job(job: str) -> list[str]:
    """Ask the provider to cancel every job of a recorded run (by either id, as forget_job); returns their states."""
    from nbtools._engine.blocking import run_blocking

    store = JobStore()
    parts = _find_run(job, store)
    first = parts[0]
    provider = first.provider if first.provider in PROFILES else None
    endpoint = resolve_endpoint(provider, first.base_url)

    async def cancel_all() -> list[str]:
        states = []
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
    if not result.done:
        raise ConfigError("this batch is still running: await it (or result.wait()) before sending the rest again")
    todo = [row for row in result.rows if row.status == NOT_SENT]
    if not todo:
        return result
    base = {name: getattr(result.options, name) for name in RESENT}
    if result.model:
        base["model"] = result.model
    target = {i: row for i, row in enumerate(todo)}

    def copy_back(row: RequestResult) -> None:
        original = target[row.index]
        copy_outcome(row, original)
        result.row_finished(original)

    batch([row.prompt for row in todo], via=via, on_result=copy_back, **{**base, **options})
    return result
