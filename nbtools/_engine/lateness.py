"""How late this process's event loop ran while a batch ran: how far the batch's own time stamps may be off.

Every time a row records (sent, finished) is taken by a callback of the loop. A reply that arrived while the loop
was busy (a slow ``on_result``, a display refresh, other cells' tasks) or while the process did not run at all
(a busy machine: other processes, or a thread holding the GIL) is stamped only when the loop gets to it, and a
request stamped as sent leaves only when the loop gets on. A timer due every ``INTERVAL`` seconds measures that
lateness: the most it fired late is about the most a stamp was late (a stall shorter than ``INTERVAL`` may go
unseen; so would its effect, being that short). The serial estimate (nbtools._engine.serial) uses it to tell the
server's queue from the client's own delays.
"""

from __future__ import annotations

import asyncio

INTERVAL = 0.01  # seconds between ticks: 100 cheap callbacks a second while a batch runs


class LoopLateness:
    """A timer on the batch's loop, from ``start`` to ``stop``; ``worst``: the most it fired late, in seconds."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._schedule(loop.time())

    def _schedule(self, now: float) -> None:
        assert self._loop is not None
        self._due = now + INTERVAL
        self._handle = self._loop.call_at(self._due, self._tick)

    def _tick(self) -> None:
        assert self._loop is not None
        now = self._loop.time()
        if now - self._due > self.worst:
            self.worst = now - self._due
        self._schedule(now)

    def stop(self) -> None:
        """Stop ticking (idempotent); ``worst`` keeps what was seen."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
