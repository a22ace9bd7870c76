"""A Comparison shown: serial against concurrent, the measured speedup and both timelines on one time scale."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nbtools._views.escaping import escape
from nbtools._views.style import framed
from nbtools._views.timeline import timeline_svg

if TYPE_CHECKING:
    from nbtools._compare import Comparison


def comparison_text(c: Comparison) -> str:
    text = (
        f"Comparison: serially {c.serial.elapsed():.2f} s, concurrently {c.concurrent.elapsed():.2f} s "
        f"(concurrency {c.concurrent.concurrency}): {c.speedup:.1f}x faster (measured)"
    )
    for label, (serial, concurrent) in c.by_model().items():  # several models: each one's own figures
        text += (f"\n  {label}: serially {serial:.2f} s, concurrently {concurrent:.2f} s: "
                 f"{serial / concurrent if concurrent > 0 else 0.0:.1f}x (measured)")
    return text


def comparison_html(c: Comparison) -> str:
    span = max(c.serial.elapsed(), c.concurrent.elapsed())
    cells = []
    for label, result in (("serial (concurrency 1)", c.serial),
                          (f"concurrent (concurrency {c.concurrent.concurrency})", c.concurrent)):
        cells.append(
            f"<td style='vertical-align:top'><b>{escape(label)}</b>: {result.elapsed():.2f} s wall"
            f"{timeline_svg(result, width=420, title=label, span=span)}</td>"
        )
    return framed(
        f"<div><b>{c.speedup:.1f}x faster</b> concurrently (measured): "
        f"{c.serial.elapsed():.2f} s serially vs {c.concurrent.elapsed():.2f} s "
        f"({len(c.concurrent)} requests; both timelines on the same time scale)</div>"
        f"<table><tr>{''.join(cells)}</tr></table>"
    )
