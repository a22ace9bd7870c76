"""``retry_invalid()``: the rows whose reply did not fit the schema, asked again with the validator's message.

Only rows of kind ``invalid_output`` go out again, each as its own conversation: its prompt, the reply
it gave, and a user turn that quotes what was wrong. The answers fill the same rows in place; their
attempts and cost add up, so the batch's cost includes the retries. How they are sent (online, or a
new Batch API job with via="batch") is nbtools._api's choice, plugged in with ``use_sender``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from nbtools._base.errors import ConfigError, NbtoolsError
from nbtools._base.options import RESENT
from nbtools._base.prompts import Message
from nbtools._engine.failures import INVALID_OUTPUT
from nbtools._engine.rows import ERROR, RequestResult, copy_outcome

if TYPE_CHECKING:
    from nbtools._result import BatchResult

Sender = Callable[[list[list[Message]], Callable[[RequestResult], None], dict[str, Any]], Awaitable[Any]]
_sender: Sender | None = None

def use_sender(send: Sender) -> None:
    global _sender
    _sender = send


def invalid_rows(result: BatchResult) -> list[RequestResult]:
    return [row for row in result.rows if row.status == ERROR and row.error_kind == INVALID_OUTPUT]


def reask_messages(row: RequestResult) -> list[Message]:
    """The row's conversation so far, and what was wrong with its reply."""
    prompt: list[Message] = [{"role": "user", "content": row.prompt}] if isinstance(row.prompt, str) else list(row.prompt)
    problem = (row.error or "").removeprefix("the reply does not match the schema: ")
    return [*prompt, {"role": "assistant", "content": row.text or ""},
            {"role": "user", "content": f"That reply does not match the required JSON schema ({problem}). "
                                        "Reply again with only the corrected JSON object."}]


async def aretry_invalid(result: BatchResult, **options: Any) -> BatchResult:
    """Send the invalid rows again and fill them in place; ``options`` override the batch's (e.g. via="batch")."""
    if result.options.schema is None:
        raise ConfigError("retry_invalid() is for a batch run with schema=: this one had none")
    if not result.done:
        raise ConfigError("this batch is still running: await it (or result.wait()) before retry_invalid()")
    todo = invalid_rows(result)
    if not todo:
        return result
    if _sender is None:
        raise NbtoolsError("retry_invalid() needs nbtools._api: import nbtools")
    # Where and how to ask, as resend() does (not how fast: pass that again); and the same engine.
    base = {name: getattr(result.options, name) for name in (*RESENT, "via")}
    if result.model:
        base["model"] = result.model
    target = dict(enumerate(todo))

    def fill_back(row: RequestResult) -> None:
        original = target[row.index]
        cost = None if original.cost is None or row.cost is None else original.cost + row.cost
        cost = cost if cost is not None else (row.cost if original.cost is None else original.cost)
        attempts, waits = original.attempts + row.attempts, original.waits + row.waits
        copy_outcome(row, original)  # the retry's times are on its own batch's clock: its last request's latency
        original.attempts, original.waits, original.cost = attempts, waits, cost
        result.rows_changed()

    await _sender([reask_messages(row) for row in todo], fill_back, {**base, **options})
    return result
