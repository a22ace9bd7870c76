"""A batch's figures as users get them: ``result.summary()``, which prints itself as one line."""

from __future__ import annotations

from nbtools._engine.figures import Figures
from nbtools._views import report


class Summary(Figures):
    """Figures for a whole batch (see the fields of nbtools._engine.figures.Figures); ``str()`` gives them on one
    line, then the server's limit if it set the pace. ``Summary.of(result)`` figures a batch, and
    ``Summary.combine(whole, parts)`` several endpoints side by side."""

    def __str__(self) -> str:
        return report.summary_line(self)

    @property
    def schema_text(self) -> str:
        """How the schema was asked for, and how many replies did not match it."""
        return report.schema_text(self)

    @property
    def cost_text(self) -> str:
        """The money line: "cost $0.0123 (price source)", or why it is unknown; and the cap."""
        return report.cost_text(self)

    def server_limit(self) -> str | None:
        """One line when the server, not the client, set the pace (a teaching moment)."""
        return report.server_limit(self)
