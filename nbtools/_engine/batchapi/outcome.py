"""One row's answer from a batch job, as read from the provider and as kept in the job store."""

from __future__ import annotations

from dataclasses import dataclass

from nbtools._engine.replies import Completion


@dataclass(slots=True)
class Outcome:
    """A completion, or an error with its class, or ``not_sent`` (the job expired or was cancelled first)."""

    index: int
    completion: Completion | None = None
    error: str | None = None
    not_sent: bool = False
