"""Sending some rows of a finished batch again, and filling the answers back into it.

Two things send rows again, the same way: ``retry_invalid()`` (the rows whose reply did not fit the schema,
each asked again with the validator's message) and ``resend()`` (the rows a Batch API job did not run). The
rows go out as a batch of their own (online, or a new Batch API job), with the options that say what was
asked (``OptionSpec.resent``), and each answer is filled into its row as it arrives.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nbtools._base.errors import ConfigError
from nbtools._base.options import RESENT
from nbtools._base.prompts import Message, Prompt
from nbtools._engine.failures import INVALID_OUTPUT
from nbtools._engine.launch import prepare_one, run_for
from nbtools._engine.lifecycle import Run
from nbtools._engine.rows import ERROR, NOT_SENT, RequestResult
from nbtools._engine.state import BatchState

Fill = Callable[[RequestResult, RequestResult], None]  # (the answer's row, the batch's row it answers)


def again(state: BatchState, rows: list[RequestResult], prompts: list[Prompt], fill: Fill, *, via: str, what: str,
          **options: Any) -> Run[Any] | None:
    """A run (not started) that sends ``prompts`` for ``rows`` of ``state``'s finished batch and fills each answer
    into its row; None when there is nothing to send. ``options`` override the batch's own; ``what`` names the
    caller in the error for a batch still running."""
    if not state.done:
        raise ConfigError(f"this batch is still running: await it (or result.wait()) before {what}")
    if not rows:
        return None
    base = {name: getattr(state.options, name) for name in RESENT}  # what was asked, not how fast it ran
    if state.model:
        base["model"] = state.model
    target = dict(enumerate(rows))

    def fill_back(row: RequestResult) -> None:
        fill(row, target[row.index])

    resent = prepare_one(prompts, BatchState, **{**base, "via": via, **options})
    return run_for(resent, fill_back)


# -- rows a Batch API job did not run --------------------------------------------------------------
def not_sent(state: BatchState) -> list[RequestResult]:
    return [row for row in state.rows if row.status == NOT_SENT]


# -- replies that did not fit the schema -----------------------------------------------------------
def invalid(state: BatchState) -> list[RequestResult]:
    """Rows whose reply did not match the schema (kind ``invalid_output``), their raw text kept."""
    return [row for row in state.rows if row.status == ERROR and row.error_kind == INVALID_OUTPUT]


def reask(row: RequestResult) -> list[Message]:
    """The row's conversation so far, and what was wrong with its reply."""
    prompt: list[Message] = [{"role": "user", "content": row.prompt}] if isinstance(row.prompt, str) else list(row.prompt)
    problem = (row.error or "").removeprefix("the reply does not match the schema: ")
    return [*prompt, {"role": "assistant", "content": row.text or ""},
            {"role": "user", "content": f"That reply does not match the required JSON schema ({problem}). "
                                        "Reply again with only the corrected JSON object."}]
