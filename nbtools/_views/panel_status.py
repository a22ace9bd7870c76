"""The panel's status line: what it says after an action, in red when something went wrong."""

from __future__ import annotations

from nbtools._views.escaping import escape


def status_html(message: str, *, error: bool = False) -> str:
    color = "#c0392b" if error else "#555"
    return f"<span style='color:{color}'>{escape(message)}</span>"
