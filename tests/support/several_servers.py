"""Several endpoints for the several-model tests: independent servers over real HTTP on 127.0.0.1, each in a thread of
its own (tests/support/error_server.py): a fast one, a slow one and one that refuses the key with OpenAI's documented
401 body (tests/support/provider_errors.py, with its source). Counts come from the servers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from tests.support import provider_errors as pe
from tests.support.error_server import ProviderServer, Script, every
from tests.support.helpers import serve_app

KEY_ENV = "NBTOOLS_MULTI_KEY"  # set to provider_errors.FAKE_KEY by the fixture that serves them
REFUSED = next(r for r in pe.OPENAI if r.id == "openai-invalid_api_key")
Serve = Callable[..., tuple["PeakServer", str]]


class PeakServer(ProviderServer):
    """A ProviderServer that also records the most requests it held at once."""

    def __init__(self, script: Script | None = None, latency: float = 0.005) -> None:
        inner = script or (lambda number, body: None)
        self.peak = 0

        def watched(number: int, body: dict[str, Any]) -> pe.ErrorReply | None:
            self.peak = max(self.peak, self.in_flight)  # called on arrival, once counted in flight
            return inner(number, body)

        super().__init__(watched, latency)


@contextmanager
def endpoints() -> Iterator[Serve]:
    """``start(script=None, latency=0.005)`` serves one more endpoint: (its server, its base URL)."""
    with ExitStack() as stack:

        def start(script: Script | None = None, latency: float = 0.005) -> tuple[PeakServer, str]:
            server = PeakServer(script, latency)
            return server, stack.enter_context(serve_app(server.app())) + "/v1"

        yield start


def three(serve: Serve) -> tuple[dict[str, PeakServer], list[dict[str, Any]]]:
    """A fast, a slow and a refusing endpoint, and the ``models=`` items for them (concurrency 4, 3 and 2)."""
    fast, fast_url = serve(latency=0.01)
    slow, slow_url = serve(latency=0.15)
    refusing, refusing_url = serve(every(1, REFUSED), latency=0.01)
    items = [
        {"base_url": fast_url, "model": "fast-model", "label": "fast", "concurrency": 4, "api_key_env": KEY_ENV},
        {"base_url": slow_url, "model": "slow-model", "label": "slow", "concurrency": 3, "api_key_env": KEY_ENV},
        {"base_url": refusing_url, "provider": "openai", "model": "gpt-4o-mini", "label": "refused", "concurrency": 2,
         "api_key_env": KEY_ENV},
    ]
    return {"fast": fast, "slow": slow, "refused": refusing}, items


def on_sim(sim: Any, name: str, **extra: Any) -> dict[str, Any]:
    """A ``models=`` item: the model ``name`` on the simulator ``sim``, labelled by its name."""
    return {"base_url": sim.base_url, "model": name, "label": name, **extra}
