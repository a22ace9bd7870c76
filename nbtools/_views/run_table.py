"""The recorded Batch API runs shown (``nbtools.jobs()``): one line or table row per run, its jobs, counts and age."""

from __future__ import annotations

import time
from collections.abc import Sequence

from nbtools._engine.batchapi.store import RecordedRun
from nbtools._views.escaping import escape

_HEAD = ["id", "provider", "host", "model", "jobs", "status", "done", "failed", "age"]
_NONE = "no Batch API jobs recorded"


def age(created: float) -> str:
    """How long ago ``created`` (a time.time()) was, in the unit that reads best."""
    seconds = time.time() - created
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def run_cells(run: RecordedRun) -> list[str]:
    """One run's cells, in the order of the table's head (at most two provider job ids, then a count)."""
    ids = ", ".join(run.job_ids[:2]) + (f" +{len(run.job_ids) - 2}" if len(run.job_ids) > 2 else "")
    return [run.id, run.provider, run.host, run.model, ids, run.status, f"{run.done}/{run.total}", str(run.failed),
            age(run.created)]


class RunsView:
    def __init__(self, runs: Sequence[RecordedRun]) -> None:
        self.runs = runs

    def text(self) -> str:
        if not self.runs:
            return _NONE
        rows = [_HEAD] + [run_cells(r) for r in self.runs]
        widths = [max(len(r[c]) for r in rows) for c in range(len(_HEAD))]
        return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)

    def html(self) -> str:
        if not self.runs:
            return f"<p>{_NONE}</p>"
        head = "".join(f"<th>{h}</th>" for h in _HEAD)
        body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in run_cells(r)) + "</tr>" for r in self.runs)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
