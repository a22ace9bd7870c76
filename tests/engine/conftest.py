"""Fixtures the engine's end-to-end tests share."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest

from tests.support.error_server import ProviderServer, Script
from tests.support.helpers import serve_app


@pytest.fixture
def serve() -> Iterator[Callable[..., tuple[ProviderServer, str]]]:
    """``serve(script)``: a provider's server answering by ``script``; returns it and its base URL (…/v1)."""
    with ExitStack() as stack:

        def start(script: Script | None = None) -> tuple[ProviderServer, str]:
            server = ProviderServer(script)
            return server, stack.enter_context(serve_app(server.app())) + "/v1"

        yield start
