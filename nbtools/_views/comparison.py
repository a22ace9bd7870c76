"""A comparison shown: serial against concurrent, the measured speedup and both timelines on one time scale."""

from __future__ import annotations

from nbtools._engine.state import BatchState
from nbtools._views.escaping import escape
from nbtools._views.report import lanes
from nbtools._views.style import framed
from nbtools._views.timeline import timeline_svg


class ComparisonView:
    """The same prompts run at concurrency 1, then at the chosen concurrency; ``by_model``: with several models,
    each one's wall times (serially, concurrently)."""

    def __init__(self, serial: BatchState, concurrent: BatchState, speedup: float,
                 by_model: dict[str, tuple[float, float]]) -> None:
        self.serial, self.concurrent, self.speedup, self.by_model = serial, concurrent, speedup, by_model

    def text(self) -> str:
        c = self
        text = (
            f"Comparison: serially {c.serial.elapsed():.2f} s, concurrently {c.concurrent.elapsed():.2f} s "
            f"(concurrency {c.concurrent.current_limit()}): {c.speedup:.1f}x faster (measured)"
        )
        for label, (serial, concurrent) in c.by_model.items():  # several models: each one's own figures
            text += (f"\n  {label}: serially {serial:.2f} s, concurrently {concurrent:.2f} s: "
                     f"{serial / concurrent if concurrent > 0 else 0.0:.1f}x (measured)")
        return text

    def html(self) -> str:
        c = self
        span = max(c.serial.elapsed(), c.concurrent.elapsed())
        cells = []
        for label, batch in (("serial (concurrency 1)", c.serial),
                             (f"concurrent (concurrency {c.concurrent.current_limit()})", c.concurrent)):
            cells.append(
                f"<td style='vertical-align:top'><b>{escape(label)}</b>: {batch.elapsed():.2f} s wall"
                f"{timeline_svg(lanes(batch), batch.elapsed(), width=420, title=label, span=span)}</td>"
            )
        return framed(
            f"<div><b>{c.speedup:.1f}x faster</b> concurrently (measured): "
            f"{c.serial.elapsed():.2f} s serially vs {c.concurrent.elapsed():.2f} s "
            f"({len(c.concurrent.rows)} requests; both timelines on the same time scale)</div>"
            f"<table><tr>{''.join(cells)}</tr></table>"
        )
