"""Serial against concurrent, side by side: the lesson of the async demo in one object."""

from __future__ import annotations

from dataclasses import dataclass

from nbtools.results import BatchResult
from nbtools.views.comparison import comparison_html, comparison_text

__all__ = ["Comparison"]


@dataclass
class Comparison:
    """The same prompts run at concurrency 1 and then at the chosen concurrency."""

    serial: BatchResult
    concurrent: BatchResult

    @property
    def speedup(self) -> float:
        """Serial wall time / concurrent wall time: measured, not estimated."""
        wall = self.concurrent.elapsed()
        return self.serial.elapsed() / wall if wall > 0 else 0.0

    def __repr__(self) -> str:
        return comparison_text(self)

    def _repr_html_(self) -> str:
        return comparison_html(self)
