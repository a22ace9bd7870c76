"""``%%llm_batch`` and the panel in classic Notebook 6.5 with ipywidgets 7, in headless Chromium.

Classic Notebook 6.5 with ipywidgets 7 on ipykernel 6 is the open frontend closest to Colab's, so
this runs in the Colab stack's venv (``python3 scripts/stack.py tests/stacks/colab.txt``, which the
README's test command runs); elsewhere (Notebook 7 is JupyterLab's frontend) it is skipped.
A person's actions only: Shift+Enter in a cell, clicks on buttons, arrow keys on the slider.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nbtools.sim import SimServer
from tests.support.browser_lab import (
    ARTIFACTS,
    VIEWPORT,
    CellPage,
    JupyterServer,
    notebook_json,
    panel_cells,
    serving,
    show_panel,
    widget_button,
)
from tests.support.error_server import HeldEcho

notebook = pytest.importorskip("notebook")
if int(notebook.__version__.split(".")[0]) >= 7:
    pytest.skip("classic Notebook 6.5 runs in the Colab stack (scripts/stack.py tests/stacks/colab.txt)",
                allow_module_level=True)

from playwright.sync_api import expect  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

HEADER = ".widget-html-content .nbt"
BODY = ".output_html .nbt"  # the display_data output: rows, summary, timeline


class ClassicServer(JupyterServer):
    """``jupyter notebook`` (classic, 6.5) with this venv's kernel."""

    def __init__(self, home: Path) -> None:
        super().__init__(home)
        self._launch(["notebook", "--NotebookApp.ip=127.0.0.1", f"--NotebookApp.port={self.port}",
                      "--NotebookApp.port_retries=0", f"--NotebookApp.token={self.token}", "--no-browser",
                      f"--NotebookApp.notebook_dir={self.root}", "--KernelSpecManager.ensure_native_kernel=False"],
                     "notebook.log")

    def _answers(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/api/status?token={self.token}", timeout=5) as r:
            return r.status == 200


class ClassicPage(CellPage):
    """One notebook in classic Notebook: run a cell with Shift+Enter, read its output, take screenshots."""

    def __init__(self, browser: Any, server: ClassicServer, name: str, cells: list[str]) -> None:
        (server.root / f"{name}.ipynb").write_text(notebook_json(cells))
        self.shots = ARTIFACTS / f"classic_{name}"
        shutil.rmtree(self.shots, ignore_errors=True)
        self.shots.mkdir(parents=True)
        self._shot = 0
        self.errors: list[str] = []
        self.page = browser.new_context(viewport=VIEWPORT).new_page()
        self.page.set_default_timeout(30_000)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.goto(f"{server.url}/notebooks/{name}.ipynb?token={server.token}")
        self.page.wait_for_selector("#kernel_indicator_icon.kernel_idle_icon", timeout=90_000)

    def cell(self, index: int) -> Any:
        return self.page.locator("#notebook-container .cell").nth(index)

    def output(self, index: int) -> Any:
        return self.cell(index).locator(".output_wrapper")

    def run(self, index: int, *, wait: bool = True, timeout: float = 60) -> None:
        self.cell(index).locator(".CodeMirror").click()
        self.page.keyboard.press("Shift+Enter")
        if wait:
            self.page.wait_for_function(
                "cell => /In\\s*\\[\\d+\\]/.test(cell.querySelector('.input_prompt').textContent)",
                arg=self.cell(index).element_handle(), timeout=timeout * 1000)


@pytest.fixture(scope="module")
def classic() -> Iterator[ClassicServer]:
    with serving(ClassicServer, "nbtools-classic-") as server:
        yield server


def test_magic_live_view_stop_hint_and_background_in_classic_notebook(browser: Any, classic: ClassicServer,
                                                                      slow_echo_sim: SimServer) -> None:
    url = slow_echo_sim.base_url
    nb = ClassicPage(browser, classic, "magic", [
        "%load_ext nbtools",
        f"%%llm_batch -o r -c 2 -n 12 -m m --base-url {url}\nHello",
        f"%%llm_batch --background -o bg -c 3 -n 9 -m m --base-url {url}\nHi",
        "await bg\nprint(sum(x.ok for x in r), sum(x.ok for x in bg))",
    ])
    try:
        nb.run(0)
        nb.run(1, wait=False)
        out = nb.output(1)
        # While it runs: the widgets render (ipywidgets 7), and where Cancel would be, how to stop.
        expect(out.locator(f"{HEADER} .inflight")).to_have_text(re.compile(r"^[12] in flight$"))
        expect(out.locator(".widget-hprogress")).to_have_count(1)
        expect(out).to_contain_text("to stop: interrupt the kernel (\u25a0)")
        expect(widget_button(out, "Cancel")).to_have_count(0)
        nb.screenshot("magic-running", show=out)
        final = nb.wait_summary(1, "s.state === 'done'")
        assert final["done"] == "12/12", final
        assert all(row["status"] == "ok" for row in nb.rows(1))
        nb.screenshot("magic-done", show=out)

        nb.run(2)  # returns at once; its view keeps updating in its own cell while the next cell runs
        nb.run(3)
        expect(nb.output(3)).to_contain_text("12 9")
        final = nb.wait_summary(2, "s.state === 'done'")
        assert final["done"] == "9/9", final
        expect(widget_button(nb.output(2), "Cancel")).to_be_disabled()  # background: a live Cancel, now done
        expect(nb.output(3).locator(".nbt")).to_have_count(0)  # nothing of it landed in the later cell
        nb.screenshot("background-done", show=nb.output(2))
        assert not nb.errors, nb.errors
    finally:
        nb.close()


def test_panel_slider_and_cancel_in_classic_notebook(browser: Any, classic: ClassicServer,
                                                     slow_echo_sim: SimServer) -> None:
    nb = ClassicPage(browser, classic, "panel", panel_cells(slow_echo_sim))
    try:
        out, slider, number, run, cancel = show_panel(nb, slow_echo_sim)
        nb.screenshot("panel", show=out)

        run.click()
        header = out.locator(HEADER).first
        expect(header.locator(".inflight")).to_have_text("2 in flight")
        slider.locator(".ui-slider-handle, .noUi-handle").focus()  # ipywidgets 7: jQuery UI; 8: noUiSlider
        for _ in range(2):  # two steps: 2 -> 4 -> 8
            nb.page.keyboard.press("ArrowRight")
        expect(number).to_have_value("8")
        expect(header.locator(".inflight")).to_have_text("8 in flight")
        nb.screenshot("panel-running-at-8", show=header)

        cancel.click()
        final = nb.wait_summary(1, "s.state === 'cancelled'")
        done = int(final["done"].split("/")[0])
        assert 0 < done < 200, final
        expect(run).to_be_enabled()
        expect(cancel).to_be_disabled()
        assert slow_echo_sim.stats()["peak_in_flight"] == 8
        nb.screenshot("panel-cancelled", show=header)
        assert not nb.errors, nb.errors
    finally:
        nb.close()


def test_the_several_model_grid_fills_in_classic_notebook(browser: Any, classic: ClassicServer,
                                                          held_echo: HeldEcho) -> None:
    from .test_browser_grid import FIGURES_JS, GRID_JS, PARTIAL_JS, PROMPTS, unanswered

    prompts = PROMPTS  # the replies to "four" wait until the test has seen the grid part-way
    nb = ClassicPage(browser, classic, "grid", [
        "%load_ext nbtools",
        f"%%llm_batch --base-url {held_echo.base_url} -m sim-small,sim-large -c 1\n" + "\n".join(prompts),
    ])
    try:
        nb.run(0)
        nb.run(1, wait=False)
        partial = nb.page.wait_for_function(PARTIAL_JS, arg=nb.cell(1).element_handle(), timeout=30_000).json_value()
        nb.screenshot("grid-filling", show=nb.output(1))
        assert unanswered(partial, held_echo.held), partial  # its replies are held: not shown before they come
        held_echo.release()
        final = nb.page.wait_for_function(f"""cell => {{
          const rows = ({GRID_JS})(cell);
          return rows && rows.every(r => r['sim-small'] === r.prompt && r['sim-large'] === r.prompt) ? rows : null;
        }}""", arg=nb.cell(1).element_handle(), timeout=30_000).json_value()
        nb.screenshot("grid-done", show=nb.output(1))
        assert [row["prompt"] for row in final] == prompts and len(partial) == 4
        figures = nb.cell(1).evaluate(FIGURES_JS)
        assert [row[0] for row in figures] == ["sim-small", "sim-large"] and all(r[1] == "4/4" for r in figures), figures
        assert nb.output(1).locator("svg[aria-label='timeline by model']").count() == 1
        assert not nb.errors, nb.errors
    finally:
        nb.close()


def test_the_widgets_frontend_is_ipywidgets_7() -> None:
    import ipywidgets

    # The point of this module: the frontend closest to Colab's (its ipywidgets 7 nbextension).
    assert ipywidgets.__version__.startswith("7."), ipywidgets.__version__
    config = Path(sys.prefix) / "etc" / "jupyter" / "nbconfig" / "notebook.d" / "widgetsnbextension.json"
    assert json.loads(config.read_text())["load_extensions"]["jupyter-js-widgets/extension"] is True
