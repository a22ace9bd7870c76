"""A concurrency limiter whose limit can change while requests wait on it."""

from __future__ import annotations

import asyncio
from collections import deque

from nbtools._base.checks import whole_number
from nbtools._engine.gates.gate import AttemptOutcome, Ticket

_PATH_KEPT = 1000  # limits kept in ``path``: a long "auto" run changes its limit often; the first ones tell the story


class Limiter:
    """Like ``asyncio.Semaphore(limit)``, but ``limit`` can be raised or lowered at any time.

    Raising it lets waiters start at once; lowering it lets running holders finish and holds back
    new starts until fewer than ``limit`` are active. ``peak`` records the most ever active at once.
    As a gate: a request holds its slot through retries, and gives it back while it waits out the
    server's push-back (the limit counts requests the server is handling, not waiting ones).
    """

    def __init__(self, limit: int) -> None:
        self._limit = self._check(limit)
        self._active = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self.peak = 0
        self.path = [self._limit]  # each limit in force, in turn (for the run's manifest: how "auto" went)

    @staticmethod
    def _check(limit: int) -> int:
        return whole_number("concurrency", limit, 1, "e.g. concurrency=16")

    @property
    def limit(self) -> int:
        return self._limit

    @limit.setter
    def limit(self, value: int) -> None:
        self._limit = self._check(value)
        if value != self.path[-1] and len(self.path) < _PATH_KEPT:
            self.path.append(value)
        self._wake()

    @property
    def active(self) -> int:
        return self._active

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def try_acquire(self) -> bool:
        """Take a slot if one is free right now (and nobody is queued for it)."""
        if self._active < self._limit and not self._waiters:
            self._take()
            return True
        return False

    async def acquire(self) -> None:
        if self.try_acquire():
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the slot was handed over just as we were cancelled: give it back
            elif waiter in self._waiters:  # _wake may already have dropped it
                self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        self._active -= 1
        self._wake()

    def _take(self) -> None:
        self._active += 1
        if self._active > self.peak:
            self.peak = self._active

    def _wake(self) -> None:
        # Hand slots over at wake-up time, so a newcomer cannot overtake a waiter.
        while self._waiters and self._active < self._limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._take()
                waiter.set_result(None)

    # -- the gate ------------------------------------------------------------------------------------
    async def wait(self, ticket: Ticket) -> bool:
        if not ticket.slot:
            if not self.try_acquire():
                await self.acquire()
            ticket.slot = True
        return True

    def started(self, ticket: Ticket) -> None:
        pass

    def finished(self, ticket: Ticket, outcome: AttemptOutcome) -> None:
        if ticket.slot and outcome.next != "retry":
            ticket.slot = False
            self.release()
