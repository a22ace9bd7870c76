"""Fixed batch states for the views' tests: rows filled by hand, with times chosen, and no request sent.

A view is a function of a batch's state (and its figures): building the state here lets a test say exactly what
is on screen, and see one row change, with no server, no clock and no luck.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nbtools._base.options import options_from
from nbtools._engine.endpoints import resolve_endpoint
from nbtools._engine.figures import Figures
from nbtools._engine.rows import CANCELLED, ERROR, NOT_SENT, OK, PENDING, RUNNING, RequestResult
from nbtools._engine.state import BatchState, PartState, SeveralState

BASE_URL = "http://127.0.0.1:9/v1"


def row(index: int, status: str = OK, *, queued: float = 0.0, started: float | None = 0.0,
        finished: float | None = 0.5, text: str | None = None, prompt: str | None = None, **fields: Any) -> RequestResult:
    """One row as a batch would have filled it: ``text`` defaults to the prompt (an echo), times as given."""
    made = RequestResult(index, prompt if prompt is not None else f"p{index}", queued)
    made.status = status
    if status in (PENDING, NOT_SENT):
        started = finished = None
    elif status == RUNNING:
        finished = None
    made.started, made.sent, made.finished = started, started, finished
    made.attempts = 0 if started is None else 1
    if status == OK:
        made.text = made.prompt_text if text is None else text
    elif status == ERROR:
        made.error = fields.pop("error", "HTTP 500: boom")
    for name, value in fields.items():
        setattr(made, name, value)
    return made


def batch(rows: Sequence[RequestResult], *, elapsed: float = 1.0, done: bool = True, model: str = "m",
          state: type[BatchState] = BatchState, **options: Any) -> BatchState:
    """A batch of these rows, ``elapsed`` seconds in; closed (done) unless ``done=False``."""
    made = state(list(rows), options_from(options), resolve_endpoint(base_url=BASE_URL), model)
    for r in rows:
        if r.status == RUNNING:
            made.active[r.index] = r
        elif r.status in (OK, ERROR):
            made.completed_count += 1
            made.recent.append(r)
    made._t0 = 0.0  # the batch's clock, set by hand: elapsed() is exactly what the test says
    if done:
        made._t_end = elapsed
        made._done.set()
        made.cancelled = any(r.status == CANCELLED for r in rows)
    else:
        made._t0 = _now() - elapsed
    return made


def several(parts: dict[str, Sequence[RequestResult]], *, elapsed: float = 1.0, done: bool = True) -> SeveralState[Any]:
    """The same prompts sent to several models: one part per label, each row labelled."""
    made = []
    for label, rows in parts.items():
        part = batch(rows, elapsed=elapsed, done=done, state=PartState, model=label)
        assert isinstance(part, PartState)
        part.label = label
        for r in part.rows:
            r.label = label
        made.append(part)
    whole = SeveralState(made, options_from({}))
    for part in made:
        whole.completed_count += part.completed_count
        whole.active.update({whole.position(part, r): r for r in part.active.values()})
        whole.recent.extend(part.recent)
    whole._t0, whole._t_end = made[0]._t0, made[0]._t_end
    if done:
        whole._done.set()
    return whole


def figures(state: BatchState) -> Figures:
    return Figures.of(state)


def _now() -> float:
    import time

    return time.perf_counter()
