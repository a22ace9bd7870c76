"""The local job store: every submitted job, under a key of what was asked, so a re-run reattaches.

SQLite next to the reply cache (``$NBTOOLS_CACHE``'s folder, else the user's cache folder): jobs.sqlite.
It stays on even when the reply cache is off: it is what keeps a re-run from paying twice. A job is
written the moment the provider accepts it; its rows' results are written once it ends, so a finished
job answers from here without the network. Short connections: several kernels may share the file.
No API key is ever stored; URLs are kept without any user:password@.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from nbtools._base.errors import ConfigError
from nbtools._engine.batchapi.outcome import Outcome
from nbtools._engine.cache import default_path, in_own_folder
from nbtools._engine.endpoints import _without_credentials
from nbtools._engine.private import connect, nbtools_folder, private_database
from nbtools._engine.replies import Completion

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS jobs (key TEXT, part INTEGER, parts INTEGER, provider TEXT, base_url TEXT, "
    "model TEXT, job_id TEXT, file_id TEXT, status TEXT, total INTEGER, done INTEGER, failed INTEGER, "
    "first INTEGER, count INTEGER, created REAL, updated REAL, stored INTEGER DEFAULT 0, PRIMARY KEY (key, part))",
    "CREATE TABLE IF NOT EXISTS results (key TEXT, idx INTEGER, text TEXT, model TEXT, prompt_tokens INTEGER, "
    "completion_tokens INTEGER, finish_reason TEXT, error TEXT, not_sent INTEGER, cached_tokens INTEGER, "
    "system_fingerprint TEXT, request_id TEXT, PRIMARY KEY (key, idx))",
)
_ADDED = (("cached_tokens", "INTEGER"), ("system_fingerprint", "TEXT"), ("request_id", "TEXT"))  # a store from before
_RESULT_COLUMNS = ("key, idx, text, model, prompt_tokens, completion_tokens, finish_reason, error, not_sent, "
                   "cached_tokens, system_fingerprint, request_id")


def store_path() -> Path:
    """jobs.sqlite in the reply cache's folder (that folder even when the cache itself is off)."""
    if in_own_folder():
        return nbtools_folder() / "jobs.sqlite"
    return default_path().parent / "jobs.sqlite"


@dataclass
class JobRecord:
    key: str
    part: int
    parts: int
    provider: str
    base_url: str
    model: str
    job_id: str
    file_id: str | None
    status: str
    total: int
    done: int
    failed: int
    first: int
    count: int
    created: float
    updated: float
    stored: bool  # are its rows' results in the store?


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


def _recorded_run(key: str, parts: list[JobRecord]) -> RecordedRun:
    statuses = sorted({p.status for p in parts})
    missing = parts[0].parts - len(parts)
    status = "/".join(statuses) + (f" ({missing} part(s) not submitted)" if missing else "")
    host = parts[0].base_url.split("://", 1)[-1].split("/", 1)[0]
    return RecordedRun(key[:12], parts[0].provider, host, parts[0].model, tuple(p.job_id for p in parts), status,
                       sum(p.total for p in parts), sum(p.done for p in parts), sum(p.failed for p in parts),
                       min(p.created for p in parts))


def _record(row: tuple[object, ...]) -> JobRecord:
    values = list(row)
    values[16] = bool(values[16])
    return JobRecord(*values)  # type: ignore[arg-type]


class JobStore:
    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else store_path()
        private_database(self.path, own_folder=path is None and in_own_folder())
        with self._db() as db:
            for statement in _SCHEMA:
                db.execute(statement)
            columns = {row[1] for row in db.execute("PRAGMA table_info(results)")}
            for name, kind in _ADDED:
                if name not in columns:
                    db.execute(f"ALTER TABLE results ADD COLUMN {name} {kind}")

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = connect(self.path, timeout=30)
        try:
            with db:  # one transaction
                yield db
        finally:
            db.close()

    def parts(self, key: str) -> dict[int, JobRecord]:
        with self._db() as db:
            rows = db.execute("SELECT * FROM jobs WHERE key = ? ORDER BY part", (key,)).fetchall()
        return {row[1]: _record(row) for row in rows}

    def all(self) -> list[JobRecord]:
        with self._db() as db:
            rows = db.execute("SELECT * FROM jobs ORDER BY created, key, part").fetchall()
        return [_record(row) for row in rows]

    def by_run(self) -> dict[str, list[JobRecord]]:
        """Every recorded job, grouped by the run (one via="batch" call) it belongs to, oldest first."""
        groups: dict[str, list[JobRecord]] = {}
        for record in self.all():
            groups.setdefault(record.key, []).append(record)
        return groups

    def runs(self) -> list[RecordedRun]:
        """Every recorded run with its jobs, oldest first, as last seen."""
        return [_recorded_run(key, parts) for key, parts in self.by_run().items()]

    def find_run(self, ref: str) -> list[JobRecord]:
        """The jobs of the run ``ref`` names: the run's id as runs() shows it, or one of its provider job ids."""
        ref = ref.strip()
        for key, parts in self.by_run().items():
            if key.startswith(ref) and len(ref) >= 6 or any(p.job_id == ref for p in parts):
                return parts
        raise ConfigError(f"no recorded Batch API job {ref!r}: nbtools.jobs() (magic: %llm_jobs) lists them")

    def add(self, key: str, part: int, parts: int, provider: str, base_url: str, model: str, job_id: str,
            file_id: str | None, first: int, count: int) -> None:
        now = time.time()
        with self._db() as db:
            db.execute("INSERT OR REPLACE INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
                       (key, part, parts, provider, _without_credentials(base_url), model, job_id, file_id,
                        "submitted", count, 0, 0, first, count, now, now))

    def update(self, key: str, part: int, status: str, total: int, done: int, failed: int) -> None:
        with self._db() as db:
            db.execute("UPDATE jobs SET status = ?, total = ?, done = ?, failed = ?, updated = ? WHERE key = ? AND part = ?",
                       (status, total, done, failed, time.time(), key, part))

    def save_results(self, key: str, part: int, rows: list[Outcome]) -> None:
        with self._db() as db:
            db.executemany(
                f"INSERT OR REPLACE INTO results ({_RESULT_COLUMNS}) VALUES ({', '.join('?' * 12)})",
                ((key, r.index, c.text if (c := r.completion) else None, c.model if c else None,
                  c.prompt_tokens if c else None, c.completion_tokens if c else None, c.finish_reason if c else None,
                  r.error, int(r.not_sent), c.cached_tokens if c else None, c.system_fingerprint if c else None,
                  c.request_id if c else None) for r in rows))
            db.execute("UPDATE jobs SET stored = 1 WHERE key = ? AND part = ?", (key, part))

    def results(self, key: str, first: int, count: int) -> list[Outcome]:
        with self._db() as db:
            rows = db.execute("SELECT idx, text, model, prompt_tokens, completion_tokens, finish_reason, error, not_sent, "
                              "cached_tokens, system_fingerprint, request_id FROM results "
                              "WHERE key = ? AND idx >= ? AND idx < ?", (key, first, first + count)).fetchall()
        return [Outcome(idx, None if error is not None or not_sent else
                        Completion(text or "", model, ptok, ctok, finish, cached, system_fingerprint=fingerprint,
                                   request_id=request_id), error, bool(not_sent))
                for idx, text, model, ptok, ctok, finish, error, not_sent, cached, fingerprint, request_id in rows]

    def forget_part(self, key: str, part: int) -> None:
        with self._db() as db:
            db.execute("DELETE FROM jobs WHERE key = ? AND part = ?", (key, part))

    def forget(self, key: str) -> int:
        with self._db() as db:
            n = db.execute("DELETE FROM jobs WHERE key = ?", (key,)).rowcount
            db.execute("DELETE FROM results WHERE key = ?", (key,))
        return n
