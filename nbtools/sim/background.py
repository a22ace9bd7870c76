"""Running the simulator behind a socket, on a daemon thread with its own event loop; the shared one.

A separate loop keeps the server responsive whatever the caller's loop is doing
(a notebook cell blocked in ``asyncio.run``, a synchronous test, ...). Where no thread can start (a browser),
the shared simulator answers in-process instead (local.py).
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from nbtools._engine.transport.base import IN_BROWSER
from nbtools.sim.config import SimConfig
from nbtools.sim.local import LocalSim, Running, local_server, shared_local
from nbtools.sim.simulator import Simulator

T = TypeVar("T")


class SimServer(Running):
    """A simulator listening on ``host:port`` (0 = any free port) until ``stop()``."""

    def __init__(self, config: SimConfig | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._sim: Simulator
        self.port = port
        self._thread = threading.Thread(
            target=self._run, args=(config or SimConfig(), host, port), name="nbtools-sim", daemon=True
        )
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        self.host = host
        self.url = f"http://{f'[{host}]' if ':' in host else host}:{self.port}"
        self.base_url = f"{self.url}/v1"
        _running_urls.add(self.base_url)

    def _run(self, config: SimConfig, host: str, port: int) -> None:
        from nbtools.sim.server import start  # aiohttp's server side: never imported where no socket can open

        loop = self._loop
        asyncio.set_event_loop(loop)
        try:
            runner, self._sim, self.port = loop.run_until_complete(start(config, host, port))
        except BaseException as exc:  # e.g. port in use: re-raised in the constructor
            self._error = exc
            loop.close()
            return
        finally:
            self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            # Cancel replies still sleeping so the loop closes without "task destroyed" warnings.
            leftovers = asyncio.all_tasks(loop)
            for task in leftovers:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
            loop.close()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    @property
    def config(self) -> SimConfig:
        return self._sim.config

    def stats(self) -> dict[str, Any]:
        """The counters served at GET /sim/stats."""
        return self._call(self._sim.stats.snapshot)

    def batch_stats(self) -> dict[str, int]:
        """Batch API counters: uploads, jobs created, lines run, cancels."""
        return self._call(self._sim.batches.snapshot)

    def reset(self) -> None:
        """Zero the counters, restart the random stream, forget flaky counts, rate windows and the prompt cache."""
        self._call(self._sim.reset)

    def configure(self, /, **knobs: Any) -> SimConfig:
        """Change knobs live (validated; ValueError leaves the config untouched)."""
        return self._call(functools.partial(self._sim.configure, **knobs))

    def stop(self) -> None:
        _running_urls.discard(self.base_url)
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()

    def _call(self, fn: Callable[[], T]) -> T:
        # The state belongs to the server's loop: touch it only from there.
        async def call() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result()



def serve(config: SimConfig | None = None, *, host: str = "127.0.0.1", port: int = 0,
          **knobs: Any) -> SimServer | LocalSim:
    """Start a simulator on a background thread; returns once it is listening. In a browser, which can open
    no socket and start no thread, the same simulator in-process (used the same way).

    ``knobs`` override fields of ``config`` (e.g. ``serve(latency=0.1, rpm=60)``).
    """
    config = (config or SimConfig()).replace(**knobs)
    return LocalSim(config) if IN_BROWSER else SimServer(config, host=host, port=port)


_running_urls: set[str] = set()  # base URLs of the simulators running in this process


def is_simulator(base_url: str) -> bool:
    """True if ``base_url`` is a simulator this process started (its replies are not worth caching)."""
    return base_url.rstrip("/") in _running_urls or local_server(base_url) is not None


_shared: SimServer | None = None
_shared_lock = threading.Lock()


def shared_server(in_process: bool = False) -> SimServer | LocalSim:
    """The process-wide simulator with default knobs, started on first use: behind a socket on a thread, or
    ``in_process`` (always in a browser, which has neither) answered by direct calls.

    Restarted if someone stopped it (e.g. by using it as a context manager).
    """
    global _shared
    if in_process or IN_BROWSER:
        return shared_local()
    with _shared_lock:
        if _shared is None or not _shared.running:
            _shared = SimServer()
            atexit.register(_shared.stop)
        return _shared
