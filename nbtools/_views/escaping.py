"""Untrusted text made safe to show: model replies, prompts, errors and names go through here.

``escape`` before any text enters HTML (a reply may hold ``<script>``); ``clip`` to fit one line of a cell.
"""

from __future__ import annotations

import html


def escape(text: str) -> str:
    """Text as HTML shows it literally: ``< > & " '`` become entities (quotes too: it may sit in an attribute)."""
    return html.escape(text, quote=True)


def clip(text: str, width: int) -> str:
    """``text`` on one line (runs of whitespace become one space), cut to ``width`` characters with an ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
