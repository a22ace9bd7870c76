"""A JobList shown: one line (or table row) per recorded Batch API run, its parts, counts and age."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from nbtools.views.escaping import escape

if TYPE_CHECKING:
    from collections.abc import Sequence

    from nbtools.batch_jobs import JobInfo

__all__ = ["age", "job_cells", "job_list_html", "job_list_text"]

_HEAD = ["id", "provider", "host", "model", "jobs", "status", "done", "failed", "age"]
_NONE = "no Batch API jobs recorded"


def age(created: float) -> str:
    """How long ago ``created`` (a time.time()) was, in the unit that reads best."""
    seconds = time.time() - created
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def job_cells(job: JobInfo) -> list[str]:
    """One job's cells, in the order of the table's head (at most two provider job ids, then a count)."""
    ids = ", ".join(job.job_ids[:2]) + (f" +{len(job.job_ids) - 2}" if len(job.job_ids) > 2 else "")
    return [job.id, job.provider, job.host, job.model, ids, job.status, f"{job.done}/{job.total}", str(job.failed),
            age(job.created)]


def job_list_text(jobs: Sequence[JobInfo]) -> str:
    if not jobs:
        return _NONE
    rows = [_HEAD] + [job_cells(j) for j in jobs]
    widths = [max(len(r[c]) for r in rows) for c in range(len(_HEAD))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def job_list_html(jobs: Sequence[JobInfo]) -> str:
    if not jobs:
        return f"<p>{_NONE}</p>"
    head = "".join(f"<th>{h}</th>" for h in _HEAD)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in job_cells(j)) + "</tr>" for j in jobs)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
