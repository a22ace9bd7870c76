"""Each row's images beside its prompt: a small picture where it costs little, else its name.

A saved notebook keeps every view it showed, so what a view embeds is capped: an image goes in as it is (shown
48 px high) only if it is at most THUMB_BYTES, and one view embeds at most VIEW_BYTES in all; past either, the
image is named (its file name, URL or hash). Nothing is decoded or resized here.
"""

from __future__ import annotations

import base64
import os

from nbtools._base.attachments import IMAGE, Attachment
from nbtools._views.escaping import escape

THUMB_BYTES = 12 * 1024  # an image embedded as it is up to this size
VIEW_BYTES = 96 * 1024  # what one view embeds in all (20 rows of small images); past it, names only


def name_of(a: Attachment) -> str:
    return os.path.basename(a.path) if a.path else a.name


def names_text(found: list[Attachment]) -> str:
    """The images as text, before the prompt: ``[photo.png, scan.pdf] ``."""
    return f"[{', '.join(name_of(a) for a in found)}] " if found else ""


class Thumbs:
    """The pictures of one view, within its budget of VIEW_BYTES."""

    def __init__(self, budget: int = VIEW_BYTES) -> None:
        self.left = budget

    def html(self, found: list[Attachment]) -> str:
        return "".join(self._one(a) for a in found)

    def _one(self, a: Attachment) -> str:
        label = escape(name_of(a))
        if a.kind == IMAGE and a.url is None and a.size <= min(THUMB_BYTES, self.left):
            try:
                data = a.data()
            except OSError:  # the file is gone since: named instead
                data = b""
            if data:
                self.left -= len(data)
                uri = f"data:{a.media_type};base64,{base64.b64encode(data).decode('ascii')}"
                return f"<img src='{uri}' alt='{label}' title='{label}' style='height:48px;margin-right:4px'>"
        return f"<span class='muted'>[{label}]</span> "
