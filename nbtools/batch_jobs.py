"""The job store seen by a user: list jobs, cancel or forget them, send again what a job did not run."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from nbtools.api import batch
from nbtools.engine.batchapi.protocols import client_for
from nbtools.engine.batchapi.store import JobRecord, JobStore
from nbtools.engine.endpoints import PROFILES, resolve_endpoint
from nbtools.engine.rows import NOT_SENT, RequestResult
from nbtools.errors import ConfigError
from nbtools.results import BatchResult
from nbtools.views.report import escape

__all__ = ["JobInfo", "JobList", "cancel_job", "forget_job", "jobs", "resend"]


@dataclass(frozen=True)
class JobInfo:
    """One submitted run (all its parts): ``id`` is what cancel_job / forget_job take."""

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

    @property
    def age(self) -> str:
        seconds = time.time() - self.created
        if seconds < 120:
            return f"{seconds:.0f} s"
        return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"

    def cells(self) -> list[str]:
        ids = ", ".join(self.job_ids[:2]) + (f" +{len(self.job_ids) - 2}" if len(self.job_ids) > 2 else "")
        return [self.id, self.provider, self.host, self.model, ids, self.status,
                f"{self.done}/{self.total}", str(self.failed), self.age]


_HEAD = ["id", "provider", "host", "model", "jobs", "status", "done", "failed", "age"]


class JobList(list[JobInfo]):
    """What ``jobs()`` returns: a list that shows itself as a table."""

    def __repr__(self) -> str:
        if not self:
            return "no Batch API jobs recorded"
        rows = [_HEAD] + [j.cells() for j in self]
        widths = [max(len(r[c]) for r in rows) for c in range(len(_HEAD))]
        return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows)

    def _repr_html_(self) -> str:
        if not self:
            return "<p>no Batch API jobs recorded</p>"
        head = "".join(f"<th>{h}</th>" for h in _HEAD)
        body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in j.cells()) + "</tr>" for j in self)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _group(records: list[JobRecord]) -> dict[str, list[JobRecord]]:
    groups: dict[str, list[JobRecord]] = {}
    for r in records:
        groups.setdefault(r.key, []).append(r)
    return groups


def jobs(store: JobStore | None = None) -> JobList:
    """Every recorded Batch API run, oldest first, as last seen (a running cell keeps them current)."""
    store = store or JobStore()
    found = JobList()
    for key, parts in _group(store.all()).items():
        statuses = sorted({p.status for p in parts})
        missing = parts[0].parts - len(parts)
        status = "/".join(statuses) + (f" ({missing} part(s) not submitted)" if missing else "")
        host = parts[0].base_url.split("://", 1)[-1].split("/", 1)[0]
        found.append(JobInfo(key[:12], parts[0].provider, host, parts[0].model, tuple(p.job_id for p in parts), status,
                             sum(p.total for p in parts), sum(p.done for p in parts), sum(p.failed for p in parts),
                             min(p.created for p in parts)))
    return found


def _find(job: str, store: JobStore) -> list[JobRecord]:
    job = job.strip()
    for key, parts in _group(store.all()).items():
        if key.startswith(job) and len(job) >= 6 or any(p.job_id == job for p in parts):
            return parts
    raise ConfigError(f"no recorded Batch API job {job!r}: nbtools.jobs() (magic: %llm_jobs) lists them")


def forget_job(job: str) -> int:
    """Drop a job (by the id jobs() shows, or a provider job id) from the store; a re-run submits anew."""
    store = JobStore()
    parts = _find(job, store)
    return store.forget(parts[0].key)


def cancel_job(job: str) -> list[str]:
    """Ask the provider to cancel every part of a recorded job; returns their states."""
    from nbtools.engine.blocking import run_blocking

    store = JobStore()
    parts = _find(job, store)
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


_COPIED = ("text", "data", "error", "error_kind", "status_code", "partial", "status", "model", "prompt_tokens",
           "completion_tokens", "cached_tokens", "cost", "finish_reason", "attempts", "waits", "cached", "started", "finished")


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
    base = {k: getattr(result.options, k) for k in ("model", "system", "temperature", "max_tokens", "params",
                                                    "provider", "base_url", "api_key_env", "timeout", "retries",
                                                    "max_wait", "price", "cache", "dedupe")}
    if result.model:
        base["model"] = result.model
    target = {i: row for i, row in enumerate(todo)}

    def copy_back(row: RequestResult) -> None:
        original = target[row.index]
        for name in _COPIED:
            setattr(original, name, getattr(row, name))
        result.row_finished(original)

    batch([row.prompt for row in todo], via=via, on_result=copy_back, **{**base, **options})
    return result
