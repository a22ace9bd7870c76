"""The live view of a running batch, as markup: its header, the body redrawn below the progress bar, what a terminal
is shown at the end; and the stop hint.

A result asks for its own live view (``result.live_view()``): report.live for one endpoint, grid.live for several,
both a ``Live`` made of their own functions. The widgets that carry it (progress bar, Cancel, the updatable
output) are nbtools._notebook's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from nbtools._views.escaping import escape
from nbtools._views.style import framed

B = TypeVar("B")  # the batch shown
F = TypeVar("F")  # its figures


class Live(Generic[B, F]):
    """A running batch as the live display shows it; ``figures()`` gives its figures of the moment."""

    def __init__(self, batch: B, figures: Callable[[], F], header: Callable[[B], str],
                 header_html: Callable[[B, str | None], str], body: Callable[[B, F, int], dict[str, str]],
                 end: Callable[[B, F, int, str], str]) -> None:
        self.batch, self.figures = batch, figures
        self._header, self._header_html, self._body, self._end = header, header_html, body, end

    def header_text(self) -> str:
        """The header a terminal is shown at the start."""
        return self._header(self.batch)

    def header_html(self, title: str | None) -> str:
        """The header above the progress bar (without the style sheet: the body below carries it)."""
        return framed(self._header_html(self.batch, title), styled=False)

    def body(self, limit: int) -> dict[str, str]:
        """The body below the progress bar, redrawn as the batch runs: a display bundle (text and HTML)."""
        return self._body(self.batch, self.figures(), limit)

    def end_text(self, limit: int, shown_header: str) -> str:
        """What a terminal is shown at the end (``shown_header``: the header it was shown at the start)."""
        return self._end(self.batch, self.figures(), limit, shown_header)


def stop_hint_html(hint: str, tooltip: str) -> str:
    """Where a Cancel button cannot work (clicks wait for the cell's end): how to stop instead."""
    return f"<span style='margin-left:1em' title='{escape(tooltip)}'>{escape(hint)}</span>"
