"""Serial against concurrent, side by side: the lesson of the async demo in one object."""

from __future__ import annotations

from dataclasses import dataclass

from nbtools._result import BatchResult
from nbtools._several import MultiModelResult
from nbtools._views.comparison import ComparisonView
from nbtools._views.rich import Shown, View


@dataclass(repr=False)
class Comparison(Shown):
    """The same prompts run at concurrency 1 and then at the chosen concurrency."""

    serial: BatchResult
    concurrent: BatchResult

    @property
    def speedup(self) -> float:
        """Serial wall time / concurrent wall time: measured, not estimated."""
        wall = self.concurrent.elapsed()
        return self.serial.elapsed() / wall if wall > 0 else 0.0

    def by_model(self) -> dict[str, tuple[float, float]]:
        """With several models: each one's measured wall time, serially and concurrently."""
        serial, concurrent = self.serial, self.concurrent
        if not isinstance(serial, MultiModelResult) or not isinstance(concurrent, MultiModelResult):
            return {}
        return {label: (part.elapsed(), concurrent.by_model[label].elapsed()) for label, part in serial.by_model.items()}

    def _view(self) -> View:
        return ComparisonView(self.serial, self.concurrent, self.speedup, self.by_model())
