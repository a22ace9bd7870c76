"""The look of every view: one style sheet, the colour of each row status, and the frame that carries them."""

from __future__ import annotations

# A row's status, as the table's text and the timeline's bars colour it.
COLORS = {"ok": "#4c78a8", "error": "#e45756", "cancelled": "#bab0ac", "running": "#f2b447", "pending": "#dddddd",
          "not sent": "#bab0ac"}
STYLE = (
    "<style>.nbt{font-family:var(--jp-ui-font-family,system-ui,sans-serif);font-size:13px}"
    ".nbt table{border-collapse:collapse;margin:4px 0}.nbt th,.nbt td{padding:2px 8px;"
    "vertical-align:top;border-bottom:1px solid #ddd}"
    # As specific as JupyterLab's own `.jp-RenderedHTMLCommon td` rule (which right-aligns), and later.
    ".nbt th:not(.num),.nbt td:not(.num){text-align:left}.nbt td.num{text-align:right;font-variant-numeric:tabular-nums}"
    ".nbt .note{background:#fff7e0;border-left:3px solid #f2b447;padding:2px 8px;margin:2px 0}"
    ".nbt .err{color:#c0392b}.nbt .muted{color:#888}</style>"
)


def framed(body: str, *, styled: bool = True) -> str:
    """``body`` in the ``.nbt`` frame the style sheet applies to; ``styled=False`` for a part shown next to a
    styled one (the live header above its body), so the sheet is not sent twice."""
    return f"<div class='nbt'>{STYLE if styled else ''}{body}</div>"
