"""Fixtures for the browser tests: JupyterLab (session), headless Chromium (this package), pages.

Chromium is Debian's (/usr/bin/chromium, or $NBTOOLS_TEST_CHROMIUM), launched through Playwright
for Python; ``python3 scripts/test.py`` installs it with apt when it is missing. Without it these
tests fail (they do not skip), saying how to install it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from nbtools.sim import SimServer, serve
from tests.support.browser_lab import CHROMIUM, CHROMIUM_ARGS, LabServer, NotebookPage, open_notebook, serving
from tests.support.error_server import HeldEcho
from tests.support.helpers import serve_app


@pytest.fixture(scope="session")
def lab() -> Iterator[LabServer]:
    """JupyterLab on 127.0.0.1 (free port, token, temporary root dir), answering before the tests start."""
    with serving(LabServer, "nbtools-lab-") as server:
        yield server


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: the browser tests need it. Install it with "
            "`apt-get install -y chromium` (python3 scripts/test.py does this when it can), or point "
            "NBTOOLS_TEST_CHROMIUM at a Chromium binary.",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def notebook(browser: Any, lab: LabServer, request: pytest.FixtureRequest) -> Iterator[Callable[[list[str]], NotebookPage]]:
    """``notebook(cells)`` opens a notebook named after the test; closed (and its kernel shut down) after."""
    pages: list[NotebookPage] = []

    def make(cells: list[str]) -> NotebookPage:
        page = open_notebook(browser, lab, request.node.name, cells)
        pages.append(page)
        return page

    yield make
    failed = getattr(request.node, "rep_call", None)
    for page in pages:
        if failed is not None and failed.failed:
            page.screenshot_on_failure()
        page.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)  # lets fixtures see whether the test failed
    return report


@pytest.fixture(scope="module")
def slow_echo_sim() -> Iterator[SimServer]:
    """A simulator in this process (the kernel reaches it over 127.0.0.1): 0.3 s per reply, echoing the prompt."""
    with serve(latency=0.3, latency_spread=0.0, reply="echo") as server:
        yield server


@pytest.fixture
def held_echo() -> Iterator[HeldEcho]:
    """An echo endpoint in this process, 0.3 s per reply, holding the replies to "four" until ``release()``."""
    server = HeldEcho(held="four", latency=0.3)
    with serve_app(server.app()) as url:
        server.base_url = url + "/v1"
        try:
            yield server
        finally:
            server.release()  # no reply left waiting when the server stops
