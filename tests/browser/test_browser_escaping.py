"""Replies are untrusted: markup in them shows as text and runs nothing, in the magic's output and the panel.

The simulator echoes each prompt, so a prompt carrying markup comes back as the reply; the HTML
output of a cell run in this session is trusted by JupyterLab (scripts and handlers would run),
so only nbtools' escaping stands in the way.
"""

from __future__ import annotations

import pytest

from nbtools.sim import SimServer
from tests.support.browser_lab import widget_button

pytestmark = pytest.mark.timeout(150)

PAYLOADS = [
    """<img id=pwned src=x onerror="alert('img onerror ran')">""",
    """<script>alert('script ran')</script>""",
    """<svg id=pwned-svg onload="alert('svg onload ran')"></svg>""",
]
INJECTED = "#pwned, #pwned-svg, img[src='x']:not(#control), .jp-OutputArea script"


def test_markup_in_replies_is_shown_as_text_and_runs_nothing(notebook, slow_echo_sim: SimServer) -> None:
    body = "\n".join(PAYLOADS)
    nb = notebook([
        "%load_ext nbtools",
        f"%%llm_batch -c 3 --base-url {slow_echo_sim.base_url} -m m\n{body}",
        f"import nbtools\nxss_panel = nbtools.Panel({PAYLOADS!r}, base_url={slow_echo_sim.base_url!r}, model='m')\nxss_panel",
        # The control: the same markup NOT escaped does run in this page, so the checks above can see it.
        "from IPython.display import HTML\nHTML(\"<img id=control src=x onerror=\\\"alert('control ran')\\\">\")",
    ])
    nb.run(0)
    nb.run(1)
    summary = nb.wait_summary(1, "s.state === 'done'")
    assert summary["done"] == "3/3", summary
    rows = nb.rows(1)
    assert [(r["prompt"], r["response"], r["status"]) for r in rows] == [(p, p, "ok") for p in PAYLOADS], rows
    nb.screenshot("magic-output", show=nb.output(1))

    nb.run(2)
    panel = nb.output(2)
    widget_button(panel, "Run").click()
    summary = nb.wait_summary(2, "s.state === 'done'")
    assert summary["done"] == "3/3", summary
    rows = nb.rows(2)
    assert [(r["prompt"], r["response"]) for r in rows] == [(p, p) for p in PAYLOADS], rows
    nb.screenshot("panel-output", show=panel.locator(".nbt table").first)

    # Nothing ran and nothing was injected, anywhere in the page.
    assert nb.page.locator(INJECTED).count() == 0
    assert nb.dialogs == [], f"markup in a reply opened dialogs: {nb.dialogs}"
    assert not nb.errors, nb.errors

    # Control: raw HTML output with the same kind of handler is injected and runs, and is caught.
    with nb.page.expect_event("dialog"):
        nb.run(3)
    assert nb.page.locator(".jp-OutputArea img#control").count() == 1
    assert nb.dialogs == ["alert: control ran"], nb.dialogs
    assert nb.page.locator(INJECTED).count() == 0
