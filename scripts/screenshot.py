"""Make docs/_static/live-table.png, the picture of the live table in the README and the docs.

    python3 scripts/screenshot.py

Starts a batch on the built-in simulator (no key: the same replies a learner sees), takes the result's HTML
while it runs, as a notebook shows it, and renders that in headless Chromium (/usr/bin/chromium, or
NBTOOLS_TEST_CHROMIUM). Uses only the public API and IPython's display formatter. Commit the new picture
after looking at it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

from _bootstrap import ROOT, VENV, venv_python
from run_notebooks import HIDDEN_PREFIXES

OUT = ROOT / "docs" / "_static" / "live-table.png"
TOPICS = ["photosynthesis", "plate tectonics", "the Krebs cycle", "TCP congestion control", "the French Revolution",
          "black holes", "CRISPR", "inflation", "the Silk Road", "quantum tunnelling", "monsoons", "the printing press"]
PAGE = """<!doctype html><html><head><meta charset="utf-8"><style>
body {{ margin: 0; background: #fff; color: #212121;
       font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }}
#shot {{ display: inline-block; max-width: 1240px; padding: 12px 16px; }}
</style></head><body><div id="shot">{html}</div></body></html>"""


async def live_html(seconds: float) -> str:
    """The HTML a notebook shows for a batch ``seconds`` after it started (rows done, streaming, waiting)."""
    import asyncio

    from IPython.core.formatters import DisplayFormatter

    import nbtools

    result = nbtools.start([f"Summarize {topic} in one sentence." for topic in TOPICS], concurrency=4, stream=True)
    await asyncio.sleep(seconds)
    data, _ = DisplayFormatter().format(result)
    await result
    return str(data["text/html"])


def render(html: str) -> None:
    from playwright.sync_api import sync_playwright

    chromium = os.environ.get("NBTOOLS_TEST_CHROMIUM", "/usr/bin/chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1300, "height": 900}, device_scale_factor=1.5)
        page.set_content(PAGE.format(html=html))
        page.locator("#shot").screenshot(path=str(OUT))
        browser.close()


def main() -> int:
    if sys.prefix != str(VENV):  # run again in ./.venv, with no key or nbtools setting of this machine, an empty cache
        python = venv_python("test")
        env = {k: v for k, v in os.environ.items() if not k.startswith(HIDDEN_PREFIXES)}
        with tempfile.TemporaryDirectory() as cache:
            return subprocess.call([python, __file__], env={**env, "NBTOOLS_CACHE": os.path.join(cache, "replies.sqlite")})
    import asyncio

    render(asyncio.run(live_html(1.2)))
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
