"""The live view of a running batch, as markup: its header, its body (table, summary, timeline) and the stop hint.

The widgets that carry them (progress bar, Cancel, the updatable output) are notebook/display.py's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nbtools._views import report
from nbtools._views.escaping import escape
from nbtools._views.style import framed
from nbtools._views.timeline import timeline_svg

if TYPE_CHECKING:
    from nbtools._result import BatchResult


def live_header_html(result: BatchResult, title: str | None) -> str:
    """The header above the progress bar (shown without the style sheet: the body below carries it)."""
    return framed(report.header_html(result, title), styled=False)


def live_body(result: BatchResult, limit: int) -> dict[str, str]:
    """The body below the progress bar, as a display bundle: text for terminals and static viewers, and HTML."""
    summary = result.summary()
    html = framed(f"{report.table_html(result, limit)}{report.summary_html(result, summary)}{timeline_svg(result)}")
    text = report.summary_text(result, summary) + "\n" + report.table_text(result, limit)
    return {"text/plain": text, "text/html": html}


def live_end_text(result: BatchResult, limit: int) -> str:
    """What a terminal is shown at the end: the rows too, so errors are seen and not only counted."""
    return report.table_text(result, limit) + "\n" + report.summary_text(result)


def stop_hint_html(hint: str, tooltip: str) -> str:
    """Where a Cancel button cannot work (clicks wait for the cell's end): how to stop instead."""
    return f"<span style='margin-left:1em' title='{escape(tooltip)}'>{escape(hint)}</span>"
