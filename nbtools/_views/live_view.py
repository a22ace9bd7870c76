"""The live view of a running batch, as markup: what every batch's live view gives, and the stop hint.

A result asks for its own live view (``result.live_view()``): report.BatchLive for one endpoint, grid.SeveralLive
for several. The widgets that carry them (progress bar, Cancel, the updatable output) are nbtools._notebook's.
"""

from __future__ import annotations

from typing import Protocol

from nbtools._views.escaping import escape


class LiveView(Protocol):
    """A running batch as the live display shows it."""

    def header_text(self) -> str:
        """The header a terminal is shown at the start."""
        ...

    def header_html(self, title: str | None) -> str:
        """The header above the progress bar (without the style sheet: the body below carries it)."""
        ...

    def body(self, limit: int) -> dict[str, str]:
        """The body below the progress bar, redrawn as the batch runs: a display bundle (text and HTML)."""
        ...

    def end_text(self, limit: int, shown_header: str) -> str:
        """What a terminal is shown at the end (``shown_header``: the header it was shown at the start)."""
        ...


def stop_hint_html(hint: str, tooltip: str) -> str:
    """Where a Cancel button cannot work (clicks wait for the cell's end): how to stop instead."""
    return f"<span style='margin-left:1em' title='{escape(tooltip)}'>{escape(hint)}</span>"
