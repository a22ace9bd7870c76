"""Shared fixtures: a real simulator over real HTTP on 127.0.0.1, one per test that asks for it; the IPython shell.

Helpers, servers and drivers that tests import live in tests/support/, never here."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from nbtools.sim import SimServer, serve
from tests.support import provider_errors
from tests.support.helpers import serve_app
from tests.support.several_servers import KEY_ENV, Serve, endpoints
from tests.support.sums_server import SumsServer


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser and Binder tests are slow too: `-m "not slow"` is the whole fast tier."""
    for item in items:
        if item.get_closest_marker("browser") or item.get_closest_marker("binder"):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def ip() -> Any:
    """The one real IPython shell of this test process (IPython allows one), with nbtools loaded."""
    from IPython import get_ipython
    from IPython.testing.globalipapp import start_ipython

    shell = start_ipython() or get_ipython()  # start_ipython answers only its first caller
    shell.run_line_magic("load_ext", "nbtools")
    return shell


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch) -> None:
    """Each test gets its own reply cache, so no test is answered from another's replies."""
    monkeypatch.setenv("NBTOOLS_CACHE", str(tmp_path / "replies.sqlite"))


@pytest.fixture
def make_sim() -> Iterator[Callable[..., SimServer]]:
    """``make_sim(**knobs)`` starts a simulator with those knobs; all are stopped after the test."""
    with ExitStack() as stack:

        def start(**knobs: Any) -> SimServer:
            knobs.setdefault("latency_spread", 0.0)
            return stack.enter_context(serve(**knobs))

        yield start


@pytest.fixture
def sim(make_sim: Callable[..., SimServer]) -> SimServer:
    """A fast, fixed-latency simulator that echoes each prompt back."""
    return make_sim(latency=0.05, reply="echo")


@pytest.fixture
def serve_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[Serve]:
    """``serve_endpoint(script=None, latency=0.005)`` serves one more endpoint (tests/support/several_servers.py);
    its key variable is set to a fake key."""
    monkeypatch.setenv(KEY_ENV, provider_errors.FAKE_KEY)
    with endpoints() as start:
        yield start


@pytest.fixture
def sums() -> Iterator[tuple[SumsServer, str]]:
    """An independent server of sums (tests/support/sums_server.py) and its base URL."""
    server = SumsServer()
    with serve_app(server.app()) as url:
        yield server, url + "/v1"
