"""A spending cap: a request starts only if what was spent, plus the worst case of every request in
flight, plus its own worst case, stays within ``max_cost``.

So the cap can be passed only when replies cost more than their worst case (a prompt longer than
counted); at most by what the requests in flight then cost. When nothing more fits, no further
request starts: the runner lets those in flight finish and marks the rest "not sent".
"""

from __future__ import annotations

import asyncio

from nbtools._engine.gates.gate import AttemptOutcome, Ticket


class SpendingGuard:
    """A gate acting once per request: admitted on its first attempt, settled on its final outcome
    (a failed request is free; a reply without usage costs its worst case: the run says so in ``cost``)."""

    def __init__(self, max_cost: float) -> None:
        self.max_cost = max_cost
        self.spent = 0.0  # USD of the replies received
        self.reserved = 0.0  # worst cases of the requests in flight
        self.in_flight = 0
        self.stopped = False  # the cap is reached: nothing more starts
        self._settled: asyncio.Event | None = None

    async def wait(self, ticket: Ticket) -> bool:
        return ticket.attempt > 1 or await self.admit(ticket.worst)

    def started(self, ticket: Ticket) -> None:
        pass

    def finished(self, ticket: Ticket, outcome: AttemptOutcome) -> None:
        if outcome.final:
            self.settle(ticket.worst, outcome.cost)

    def may_start(self, worst: float) -> bool:
        """Reserve ``worst`` and say yes, if it fits."""
        if self.stopped or self.spent + self.reserved + worst > self.max_cost:
            return False
        self.reserved += worst
        self.in_flight += 1
        return True

    async def admit(self, worst: float) -> bool:
        """Like ``may_start``, but while requests in flight may still cost less than their worst case,
        wait for them rather than give up room the cap has. False (and stopped) once nothing fits."""
        while not self.may_start(worst):
            if self.stopped or self.in_flight == 0 or self.spent + worst > self.max_cost:
                self.stopped = True
                return False
            self._settled = self._settled or asyncio.Event()
            await self._settled.wait()
        return True

    def settle(self, worst: float, actual: float) -> None:
        """A request admitted with ``worst`` ended, costing ``actual`` (0 if it failed unanswered)."""
        self.reserved -= worst
        self.in_flight -= 1
        self.spent += actual
        if self._settled is not None:
            self._settled.set()
            self._settled = None
