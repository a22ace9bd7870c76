"""The exceptions nbtools raises. One tree, so callers can catch ``NbtoolsError``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nbtools._engine.state import BatchState
    from nbtools._result import BatchResult


class NbtoolsError(Exception):
    """Base class of every error nbtools raises on purpose."""


class ConfigError(NbtoolsError, ValueError):
    """A bad option or input. The message names the option, the bad value and the fix."""


class EndpointError(NbtoolsError):
    """The endpoint cannot be used at all (nothing listening, no model to use).

    Raised for the whole batch; ``.result`` holds its rows when it had started.
    """

    result: BatchState | None = None  # a BatchResult, once it reaches the caller


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C (or the kernel's stop button) ended a synchronous ``batch()``.

    Still a KeyboardInterrupt, so scripts stop; the finished rows are kept in ``.result``.
    """

    def __init__(self, result: BatchResult, message: str | None = None) -> None:
        self.result = result
        done = result.summary().completed
        super().__init__(message or (
            f"batch interrupted after {done} of {len(result)} requests; "
            "the finished results are in this exception's .result"
        ))

    def _render_traceback_(self) -> list[str]:
        # IPython shows this instead of a traceback: the user asked for the stop; frames would only hide the message.
        return [f"{type(self).__name__}: {self}"]
