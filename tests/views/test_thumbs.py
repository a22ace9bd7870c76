"""Each row's images in the table: small ones as pictures within a stated budget per view, the rest by name, escaped."""

from __future__ import annotations

import os
import re
from pathlib import Path

import nbtools
from nbtools._views.report import table_html, table_text
from nbtools._views.thumbs import THUMB_BYTES, VIEW_BYTES
from tests.support.images import png, png_header


def test_a_view_embeds_at_most_its_budget_and_names_the_rest(tmp_path: Path) -> None:
    odd = tmp_path / "<b>cat's.png"
    odd.write_bytes(png(3, 3))
    big = png_header(64, 64) + os.urandom(THUMB_BYTES)  # over the per-image cap: named
    images = [str(odd), big] + [png_header(8, 8) + os.urandom(10_000) for _ in range(28)]
    result = nbtools.batch([f"p{i}" for i in range(30)], images=images, provider="sim")
    html = table_html(result, limit=30)
    embedded = re.findall(r"src='data:image/png;base64,([^']*)'", html)
    assert sum(len(e) * 3 // 4 for e in embedded) <= VIEW_BYTES and 2 <= len(embedded) < 29
    assert "&lt;b&gt;cat&#x27;s.png" in html and "<b>cat" not in html
    assert f"[{result[1].attachments[0].name}]" in html  # too big to embed: its hash names it
    assert table_text(result, limit=2).splitlines()[1].startswith("0 | [<b>cat's.png] p0")
