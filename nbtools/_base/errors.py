"""The exceptions nbtools raises. One tree, so callers can catch ``NbtoolsError``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class Batch(Protocol):
    """A batch as an error carries it: the nbtools.BatchResult whose finished rows are kept."""

    @property
    def rows(self) -> Sequence[object]: ...
    @property
    def completed_count(self) -> int: ...


class NbtoolsError(Exception):
    """Base class of every error nbtools raises on purpose."""


class ConfigError(NbtoolsError, ValueError):
    """A bad option or input. The message names the option, the bad value and the fix."""


class EndpointError(NbtoolsError):
    """The endpoint cannot be used at all (nothing listening, no model to use).

    Raised for the whole batch; ``.result`` holds its rows when it had started.
    """

    result: Batch | None = None  # the BatchResult, with the rows that finished


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C (or the kernel's stop button) ended a synchronous ``batch()``.

    Still a KeyboardInterrupt, so scripts stop; the finished rows are kept in ``.result``.
    """

    def __init__(self, result: Batch, message: str | None = None) -> None:
        self.result = result
        super().__init__(message or (
            f"batch interrupted after {result.completed_count} of {len(result.rows)} requests; "
            "the finished results are in this exception's .result"
        ))

    def _render_traceback_(self) -> list[str]:
        # IPython shows this instead of a traceback: the user asked for the stop; frames would only hide the message.
        return [f"{type(self).__name__}: {self}"]
