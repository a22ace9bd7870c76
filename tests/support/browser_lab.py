"""JupyterLab on 127.0.0.1 and headless Chromium through Playwright, for the browser tests.

``LabServer`` runs ``jupyter lab`` from this venv (its python3 kernelspec first on JUPYTER_PATH) in a
temporary root dir, with its own settings (no news toast, no windowing, so every cell is in the
DOM) and no key in the environment, so ``%%llm_batch`` uses the built-in simulator.
``NotebookPage`` wraps a Playwright page showing one notebook: run a cell, read its output, take
a screenshot. Helpers wait for selectors or poll the DOM; there are no fixed sleeps.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

ROOT = Path(__file__).resolve().parents[2]
VENV_JUPYTER = Path(sys.prefix) / "share" / "jupyter"
ServerT = TypeVar("ServerT", bound="JupyterServer")
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = os.environ.get("NBTOOLS_TEST_CHROMIUM", "/usr/bin/chromium")
VIEWPORT = {"width": 1400, "height": 1000}
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]

# User settings for this Lab only: no news/update toasts over the cells, and every cell rendered
# (JupyterLab's default windowing leaves cells outside the viewport out of the DOM).
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def notebook_json(cells: list[str]) -> str:
    """An nbformat 4 notebook of code cells, bound to the python3 kernelspec (no kernel picker)."""
    return json.dumps({
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"},
            "language_info": {"name": "python"},
        },
        "cells": [
            {"cell_type": "code", "id": f"cell-{i}", "metadata": {}, "execution_count": None, "outputs": [],
             "source": source}
            for i, source in enumerate(cells)
        ],
    }, indent=1)


class JupyterServer:
    """A Jupyter server of this venv on 127.0.0.1 in ``home`` (root dir ``home/notebooks``): its own port,
    token, config, data and runtime dirs, reply cache and log, and no key in its environment."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.root = home / "notebooks"
        self.root.mkdir(parents=True)
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"

    def _launch(self, args: list[str], log_name: str, **env: str) -> None:
        """``python -m ARGS`` in its own session (so ``stop()`` ends its kernels too), output to ``log_name``."""
        clean = {k: v for k, v in os.environ.items()
                 if not k.startswith(("NBTOOLS_", "OPENAI_", "XAI_", "ANTHROPIC_", "PYTEST_", "JUPYTER", "IPYTHONDIR"))}
        clean.update(
            JUPYTER_PATH=str(VENV_JUPYTER),  # the venv's python3 kernelspec and extensions win
            JUPYTER_CONFIG_DIR=str(self.home / "config"),
            JUPYTER_DATA_DIR=str(self.home / "data"),
            JUPYTER_RUNTIME_DIR=str(self.home / "runtime"),
            IPYTHONDIR=str(self.home / "ipython"),
            NBTOOLS_CACHE=str(self.home / "replies.sqlite"),  # the reply cache stays out of the user's cache dir
            PYTHONUNBUFFERED="1",
            **env,
        )
        self.log_path = self.home / log_name
        self._log = self.log_path.open("wb")
        as_root = ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
        self.process = subprocess.Popen([sys.executable, "-m", *args, *as_root], cwd=self.root, env=clean,
                                        stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def _answers(self) -> bool:
        """True once the server serves what the tests need."""
        raise NotImplementedError

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.process.args[2]} exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if self._answers():
                    return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.process.args[2]} did not answer at {self.url} within {timeout} s:\n"
                                   f"{self.log_tail()}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # its own session: the server and its kernels
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        self._log.close()


@contextmanager
def serving(server_class: type[ServerT], prefix: str) -> Iterator[ServerT]:
    """A server of ``server_class`` in a fresh temporary home, answering, until the block ends."""
    home = Path(tempfile.mkdtemp(prefix=prefix))
    server = server_class(home)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


class LabServer(JupyterServer):
    """``jupyter lab`` with its own settings (no news toast, no windowing: every cell is in the DOM)."""

    landing = "/lab"  # the frontend's page: the server is ready once it answers

    def __init__(self, home: Path) -> None:
        super().__init__(home)
        settings = self._write_settings()
        self._launch(
            ["jupyterlab", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
             f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root}",
             "--ServerApp.open_browser=False", "--LabApp.news_url=", "--KernelSpecManager.ensure_native_kernel=False",
             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.extension_manager=readonly"],
            "jupyterlab.log", JUPYTERLAB_SETTINGS_DIR=str(settings), JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
        )

    def _write_settings(self) -> Path:
        """LAB_SETTINGS as this server's user settings, in ``home/lab-settings``; returns that folder."""
        settings = self.home / "lab-settings"
        for name, value in LAB_SETTINGS.items():
            path = settings / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(value))
        return settings

    def _answers(self) -> bool:
        if self.api("GET", "/api/status") is None:
            return False
        # the frontend's page itself (its HTML is built on the first request)
        with urllib.request.urlopen(f"{self.url}{self.landing}?token={self.token}", timeout=10) as r:
            return r.status == 200

    def api(self, method: str, path: str) -> Any:
        request = urllib.request.Request(f"{self.url}{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def write_notebook(self, name: str, cells: list[str]) -> str:
        (self.root / name).write_text(notebook_json(cells))
        return name

    def notebook_url(self, name: str, workspace: str) -> str:
        # A fresh named workspace per page: nothing restored from an earlier test's layout.
        return f"{self.url}/lab/workspaces/{workspace}/tree/{name}?token={self.token}"

    def shutdown_kernels(self, name: str) -> None:
        """Close the sessions (and kernels) of notebook ``name``, so a finished test leaves none running."""
        try:
            for session in self.api("GET", "/api/sessions") or []:
                if session.get("path") == name:
                    self.api("DELETE", f"/api/sessions/{session['id']}")
        except (urllib.error.URLError, OSError):
            pass

# -- the page ---------------------------------------------------------------------------------------
# The summary table of an nbtools view ({"state": "done", "done": "8/8", ...}) inside ``root``;
# the last one, so a panel that shows several views reports its latest.
SUMMARY_JS = """root => {
  let found = null;
  for (const table of root.querySelectorAll('.nbt table')) {
    const rows = table.querySelectorAll('tr');
    if (rows.length < 2) continue;
    const heads = [...rows[0].querySelectorAll('th')].map(x => x.textContent.trim());
    if (heads[0] !== 'state') continue;
    const cells = [...rows[1].querySelectorAll('td')].map(x => x.textContent.trim());
    found = Object.fromEntries(heads.map((h, i) => [h, cells[i]]));
  }
  return found;
}"""

# The rows of an nbtools results table inside ``root``: [{"#": "0", "prompt": ..., "status": "ok"}, ...].
ROWS_JS = """root => {
  let rows = [];
  for (const table of root.querySelectorAll('.nbt table')) {
    const trs = table.querySelectorAll('tr');
    if (!trs.length) continue;
    const heads = [...trs[0].querySelectorAll('th')].map(x => x.textContent.trim());
    if (heads[0] !== '#') continue;
    rows = [...trs].slice(1).map(tr => Object.fromEntries(
      [...tr.querySelectorAll('td')].map((td, i) => [heads[i], td.textContent])));
  }
  return rows;
}"""


def widget_button(root: Any, label: str) -> Any:
    """The ipywidgets Button labelled ``label`` in ``root`` (its icon adds to the accessible name)."""
    return root.locator("button.widget-button").filter(has_text=re.compile(rf"^\s*{re.escape(label)}\s*$"))


def panel_cells(sim: Any) -> list[str]:
    """The cells of the panel tests: nbtools loaded, then ``%llm_panel`` at concurrency 2 over 200 requests to ``sim``."""
    return ["%load_ext nbtools", f"%llm_panel -c 2 -n 200 --base-url {sim.base_url} -m m -o panel"]


class Panel(NamedTuple):
    """The controls of a ``%llm_panel`` shown in a cell's output ``out`` (Playwright locators)."""

    out: Any
    slider: Any  # the concurrency: a slider of doubling steps (1, 2, 4, 8 ...)
    number: Any  # and its number, beside it
    run: Any
    cancel: Any


def show_panel(nb: Any, sim: Any) -> Panel:
    """Run the cells of :func:`panel_cells` in page ``nb`` (``sim``'s counters zeroed first) and find the
    panel's controls, its concurrency showing 2."""
    from playwright.sync_api import expect

    sim.reset()
    nb.run(0)
    nb.run(1)
    out = nb.output(1)
    control = out.locator(".widget-hbox", has=nb.page.locator("label", has_text="concurrency"))
    panel = Panel(out, control.locator(".widget-slider"), control.locator("input"), widget_button(out, "Run"),
                  widget_button(out, "Cancel"))
    expect(panel.number).to_have_value("2")
    return panel


KERNEL_IDLE = '.jp-StatusBar-TextItem[title^="Change kernel"]:has-text("| Idle")'


class CellPage:
    """What a notebook page offers in any frontend once ``cell(index)`` finds a cell: the batch's summary
    and rows as shown, and screenshots. Subclasses set ``page`` and ``shots`` and define ``cell``."""

    page: Any
    shots: Path
    _shot = 0

    def cell(self, index: int) -> Any:
        raise NotImplementedError

    def summary(self, index: int) -> dict[str, str] | None:
        return self.cell(index).evaluate(SUMMARY_JS)

    def wait_summary(self, index: int, condition: str, timeout: float = 30) -> dict[str, str]:
        """Wait until ``condition`` (a JS expression over ``s``, the summary dict) holds; return ``s``."""
        return self.page.wait_for_function(
            f"cell => {{ const s = ({SUMMARY_JS})(cell); return s && ({condition}) && s; }}",
            arg=self.cell(index).element_handle(), timeout=timeout * 1000).json_value()

    def rows(self, index: int) -> list[dict[str, str]]:
        return self.cell(index).evaluate(ROWS_JS)

    def screenshot(self, step: str, show: Any = None) -> Path:
        """Save the page as ``NN-step.png`` in this test's folder, ``show`` (a locator) scrolled into view."""
        if show is not None:
            show.scroll_into_view_if_needed()
        self._shot += 1
        path = self.shots / f"{self._shot:02d}-{step}.png"
        self.page.screenshot(path=str(path))
        return path

    def close(self) -> None:
        self.page.context.close()


class NotebookPage(CellPage):
    """A Playwright page showing one notebook of a LabServer: run cells, read outputs, screenshots."""

    def __init__(self, page: Any, lab: LabServer, name: str, cells: list[str], shots: Path) -> None:
        self.page = page
        self.lab = lab
        self.name = lab.write_notebook(name, cells)
        self.n_cells = len(cells)
        self.shots = shots
        self._shot = 0
        self.dialogs: list[str] = []  # alert/confirm/prompt opened by anything in the page
        self.errors: list[str] = []  # uncaught JavaScript errors
        page.on("dialog", self._on_dialog)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    def _on_dialog(self, dialog: Any) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def open(self, workspace: str) -> NotebookPage:
        """Load the notebook and wait for its kernel (the venv's python3) to be idle."""
        page = self.page
        page.goto(self.lab.notebook_url(self.name, workspace))
        page.wait_for_selector(KERNEL_IDLE, timeout=90_000)
        page.locator(".jp-Notebook .jp-Cell").nth(self.n_cells - 1).wait_for()
        kernel = page.locator('.jp-StatusBar-TextItem[title^="Change kernel"]').inner_text()
        assert kernel.startswith("Python 3 (ipykernel)"), f"unexpected kernel: {kernel!r}"
        # More room for the notebook (and the screenshots): fold the file browser away.
        sidebar_tab = page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current")
        if sidebar_tab.count():
            sidebar_tab.first.click()
        return self

    # -- cells ------------------------------------------------------------------------------------
    def cell(self, index: int) -> Any:
        return self.page.locator(".jp-Notebook .jp-Cell").nth(index)

    def output(self, index: int) -> Any:
        return self.cell(index).locator(".jp-Cell-outputArea")

    def prompt(self, index: int) -> str:
        return self.cell(index).locator(".jp-InputPrompt").inner_text().strip()

    def run(self, index: int, *, wait: bool = True, timeout: float = 60) -> None:
        """Select cell ``index`` and press Shift+Enter; with ``wait``, until its "[n]:" prompt shows."""
        self.cell(index).locator(".jp-InputPrompt").click()
        self.page.keyboard.press("Shift+Enter")
        if wait:
            self.wait_executed(index, timeout)

    def wait_executed(self, index: int, timeout: float = 60) -> None:
        self.page.wait_for_function(
            "cell => /\\[\\d+\\]/.test(cell.querySelector('.jp-InputPrompt').textContent)",
            arg=self.cell(index).element_handle(), timeout=timeout * 1000,
        )

    def wait_js(self, index: int, predicate: str, arg: Any = None, timeout: float = 30) -> Any:
        """Wait until the JS ``predicate(cellElement, arg)`` is truthy (polled in the page)."""
        return self.page.wait_for_function(
            f"([cell, arg]) => ({predicate})(cell, arg)", arg=[self.cell(index).element_handle(), arg],
            timeout=timeout * 1000,
        ).json_value()

    # -- evidence ---------------------------------------------------------------------------------
    def screenshot_on_failure(self) -> None:
        """The page as the failure left it, plus its JS errors and dialogs, for whoever debugs it."""
        from playwright.sync_api import Error as PlaywrightError

        try:
            self.screenshot("FAILED")
            (self.shots / "FAILED.txt").write_text(f"dialogs: {self.dialogs!r}\nerrors: {self.errors!r}\n")
        except (PlaywrightError, OSError) as exc:  # the page may be gone: the test's own error says more
            print(f"no screenshot of the failure: {exc}")
        self.lab.shutdown_kernels(self.name)


def _shots_dir(name: str) -> Path:
    folder = ARTIFACTS / re.sub(r"[^\w.-]+", "_", name)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def open_notebook(browser: Any, lab: LabServer, name: str, cells: list[str]) -> NotebookPage:
    """A fresh browser context showing a new notebook ``name``.ipynb with ``cells``, kernel idle."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(30_000)
    page = NotebookPage(context.new_page(), lab, f"{name}.ipynb", cells, _shots_dir(name))
    try:
        return page.open(workspace=name.replace("_", "-"))
    except BaseException:
        page.close()
        raise
