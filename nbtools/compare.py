"""Serial against concurrent, side by side: the lesson of the async demo in one object."""

from __future__ import annotations

from dataclasses import dataclass

from nbtools.multimodel import MultiModelResult
from nbtools.results import BatchResult
from nbtools.views import report as render

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

    def by_model(self) -> dict[str, tuple[float, float]]:
        """With several models: each one's measured wall time, serially and concurrently."""
        serial, concurrent = self.serial, self.concurrent
        if not isinstance(serial, MultiModelResult) or not isinstance(concurrent, MultiModelResult):
            return {}
        return {label: (part.elapsed(), concurrent.by_model[label].elapsed()) for label, part in serial.by_model.items()}

    def __repr__(self) -> str:
        text = (
            f"Comparison: serially {self.serial.elapsed():.2f} s, concurrently {self.concurrent.elapsed():.2f} s "
            f"(concurrency {self.concurrent.concurrency}): {self.speedup:.1f}x faster (measured)"
        )
        for label, (serial, concurrent) in self.by_model().items():
            text += (f"\n  {label}: serially {serial:.2f} s, concurrently {concurrent:.2f} s: "
                     f"{serial / concurrent if concurrent > 0 else 0.0:.1f}x (measured)")
        return text

    def _repr_html_(self) -> str:
        span = max(self.serial.elapsed(), self.concurrent.elapsed())
        cells = []
        for label, result in (("serial (concurrency 1)", self.serial), (f"concurrent (concurrency {self.concurrent.concurrency})", self.concurrent)):
            cells.append(
                f"<td style='vertical-align:top'><b>{render.escape(label)}</b>: {result.elapsed():.2f} s wall"
                f"{render.timeline_svg(result, width=420, title=label, span=span)}</td>"
            )
        return (
            f"<div class='nbt'>{render.STYLE}<div><b>{self.speedup:.1f}x faster</b> concurrently (measured): "
            f"{self.serial.elapsed():.2f} s serially vs {self.concurrent.elapsed():.2f} s "
            f"({len(self.concurrent)} requests; both timelines on the same time scale)</div>"
            f"<table><tr>{''.join(cells)}</tr></table></div>"
        )
