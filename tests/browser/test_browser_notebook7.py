"""``%%llm_batch`` with several models in Notebook 7, in headless Chromium: the grid fills as replies arrive,
one line of figures per model, the timeline in one colour per model; and a one-model batch's view.

Notebook 7 is built from JupyterLab's components, so its cells and outputs have JupyterLab's classes; it
has no status bar, so the kernel is waited for through the server's API. Skipped where ``notebook>=7`` is
not installed (classic Notebook 6.5 has its own test, in the Colab stack).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nbtools._views.grid import PALETTE
from nbtools.sim import SimServer
from tests.browser.test_browser_grid import FIGURES_JS, PROMPTS, fill_grid
from tests.support.browser_lab import VENV_JUPYTER, JupyterServer, LabServer, NotebookPage, _shots_dir, serving
from tests.support.error_server import HeldEcho

notebook = pytest.importorskip("notebook")
if int(notebook.__version__.split(".")[0]) < 7:
    pytest.skip("Notebook 6 is the classic frontend: tests/browser/test_browser_classic.py", allow_module_level=True)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]


class Notebook7Server(LabServer):
    """``jupyter notebook`` (7) with this venv's kernel, and the same settings as the Lab tests (no windowing)."""

    landing = "/tree"

    def __init__(self, home: Path) -> None:
        JupyterServer.__init__(self, home)
        settings = self._write_settings()
        # notebook installed outside the venv (pip --target): its settings schemas next to JupyterLab's
        # (JupyterLab's server extension, loaded too, answers /lab/api/settings).
        extra: list[str] = []
        shared = Path(notebook.__file__).resolve().parents[1] / "share" / "jupyter" / "lab" / "schemas"
        if shared.exists() and shared.resolve() != (VENV_JUPYTER / "lab" / "schemas").resolve():
            schemas = home / "schemas"
            shutil.copytree(VENV_JUPYTER / "lab" / "schemas", schemas)
            shutil.copytree(shared, schemas, dirs_exist_ok=True)
            extra += [f"--JupyterNotebookApp.schemas_dir={schemas}", f"--LabApp.schemas_dir={schemas}"]
        self._launch(
            ["notebook", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
             f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root}",
             "--ServerApp.open_browser=False", "--KernelSpecManager.ensure_native_kernel=False", *extra],
            "notebook7.log", JUPYTERLAB_SETTINGS_DIR=str(settings),
        )

    def notebook_url(self, name: str, workspace: str) -> str:
        return f"{self.url}/notebooks/{name}?token={self.token}"


class Notebook7Page(NotebookPage):
    def open(self, workspace: str) -> NotebookPage:
        self.page.goto(self.lab.notebook_url(self.name, workspace))
        self.page.locator(".jp-Notebook .jp-Cell").nth(self.n_cells - 1).wait_for(timeout=90_000)
        deadline = time.monotonic() + 90
        while not any(s.get("path") == self.name and s["kernel"]["execution_state"] == "idle"
                      for s in self.lab.api("GET", "/api/sessions") or []):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the kernel of {self.name} was not idle within 90 s")
            time.sleep(0.2)
        # Notebook 7 itself may log an error while it loads (here: a settings lookup, with no cell run yet);
        # the tests check that running cells adds none.
        self.on_load = list(self.errors)
        return self


@pytest.fixture(scope="module")
def nb7() -> Iterator[Notebook7Server]:
    with serving(Notebook7Server, "nbtools-nb7-") as server:
        yield server


@pytest.fixture
def page7(browser: Any, nb7: Notebook7Server, request: pytest.FixtureRequest) -> Iterator[Any]:
    from tests.support.browser_lab import VIEWPORT

    pages: list[Notebook7Page] = []

    def make(cells: list[str]) -> Notebook7Page:
        context = browser.new_context(viewport=VIEWPORT)
        context.set_default_timeout(30_000)
        name = f"nb7_{request.node.name}"
        page = Notebook7Page(context.new_page(), nb7, f"{name}.ipynb", cells, _shots_dir(name))
        pages.append(page)
        page.open(workspace=name)
        return page

    yield make
    for page in pages:
        if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
            page.screenshot_on_failure()
        page.close()
        nb7.shutdown_kernels(page.name)


def test_the_grid_fills_as_replies_arrive_in_notebook_7(page7, held_echo: HeldEcho) -> None:
    prompts = PROMPTS
    nb, partial, final = fill_grid(page7, held_echo)
    assert [row["prompt"] for row in final] == prompts and len(partial) == 4
    figures = nb.wait_js(1, FIGURES_JS)
    assert [row[0] for row in figures] == ["sim-small", "sim-large"] and all(r[1] == "4/4" for r in figures), figures
    fills = set(nb.output(1).locator("svg[aria-label='timeline by model'] rect").evaluate_all(
        "rects => rects.map(r => r.getAttribute('fill'))"))
    assert {PALETTE[0], PALETTE[1]} <= fills, fills
    assert nb.errors == nb.on_load, nb.errors


def test_a_one_model_batch_renders_its_view_in_notebook_7(page7, slow_echo_sim: SimServer) -> None:
    nb = page7(["%load_ext nbtools", f"%%llm_batch --base-url {slow_echo_sim.base_url} -m m -c 2\nalpha\nbeta\ngamma"])
    nb.run(0)
    nb.run(1)
    summary = nb.wait_summary(1, "s.state === 'done'")
    assert summary["done"] == "3/3", summary
    rows = nb.rows(1)
    assert [(r["prompt"], r["response"], r["status"]) for r in rows] == [(p, p, "ok") for p in ("alpha", "beta", "gamma")]
    assert nb.output(1).locator("button.widget-button").count() >= 1  # the widgets render: Cancel
    assert nb.output(1).locator("[data-mime-type='text/html'] .nbt svg").count() == 1  # the timeline
    nb.screenshot("one-model", show=nb.output(1))
    assert nb.errors == nb.on_load, nb.errors
