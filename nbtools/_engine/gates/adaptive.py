"""``concurrency="auto"``: find the concurrency an endpoint sustains, and keep to it.

Also used under a fixed concurrency once the server pushes back (429/503): then the user's number
is a ceiling the limit drops below and climbs back to, never past.

Additive increase, multiplicative decrease, as TCP does for a network path:
- slow start: +1 per success (the limit doubles every round trip) until the first sign of overload;
- then +1 a round while requests succeed and latency holds (no server-side queueing);
- on 429/503: back off by 5%, once per generation: signals from requests sent before the
  last back-off describe the old limit and are ignored. The gentle step keeps the limit within
  a request or two of what the server sustains, instead of halving it (TCP's 50%) and losing
  a quarter of the throughput on average;
- x-ratelimit-limit-* headers, when present, turn on pacing at the server's own rate (see pacing.py),
  and x-ratelimit-remaining-*/reset-* hold starts while the server's budget is spent (server_budget.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from nbtools._engine.gates.gate import AttemptOutcome, Ticket
from nbtools._engine.gates.limiter import Limiter
from nbtools._engine.gates.pacing import Pacer
from nbtools._engine.gates.server_budget import ServerBudget, header_number

AUTO_START = 4
AUTO_CEILING = 1024
LATENCY_SLACK = 2.0  # recent latency above this many times the best seen means the server queues
DECREASE = 0.95


class AdaptiveConcurrency:
    def __init__(self, limiter: Limiter, pacer: Pacer, demand: Callable[[], bool], *, ceiling: int = AUTO_CEILING,
                 fixed: bool = False, windows: Mapping[str, float] | None = None) -> None:
        """``fixed``: the user chose ``ceiling``; back off under pressure, climb back to it, never past it."""
        self.limiter = limiter
        self.fixed = fixed
        self.demand = demand  # would more slots be used now? (requests left, and no rate budget holding them)
        self.pacer = pacer
        self.budget = ServerBudget(windows)  # a gate of its own, in the run's list right before this one; windows: the endpoint's
        self.ceiling = ceiling
        self.generation = 0  # bumped at each back-off
        self._slow_start = not fixed
        self._successes = 0
        self._best: float | None = None
        self._recent: float | None = None  # moving average of latency

    # -- the gate: the limit itself is the limiter's; this one learns from each outcome --------------
    async def wait(self, ticket: Ticket) -> bool:
        return True

    def started(self, ticket: Ticket) -> None:
        ticket.generation = self.generation

    def finished(self, ticket: Ticket, outcome: AttemptOutcome) -> None:
        if outcome.status == "ok":
            self.on_success(outcome.latency or 0.0, outcome.headers)
        elif outcome.status == "overloaded":
            self.on_overload(ticket.generation, outcome.headers)

    def on_success(self, latency: float, headers: Mapping[str, str] | None) -> None:
        """A reply after ``latency`` s."""
        if headers is not None:
            self._adopt_limits(headers)
        self._best = latency if self._best is None else min(self._best, latency)
        self._recent = latency if self._recent is None else 0.9 * self._recent + 0.1 * latency
        if not self.demand() or self.budget.limiting:
            return  # the limit is not what holds us back (a rate budget, or the batch's tail)
        if self.fixed:  # +1 a success (doubling a round trip) back to the user's number, whatever the latency
            self.limiter.limit = min(self.ceiling, self.limiter.limit + 1)
            return
        if self._slow_start:
            if self._recent > LATENCY_SLACK * self._best + 0.05:
                self._slow_start = False  # requests queue at the server: more in flight buys nothing
            else:
                self.limiter.limit = min(self.ceiling, self.limiter.limit + 1)
            return
        self._successes += 1
        if self._successes < self.limiter.limit:
            return
        self._successes = 0  # a round is over
        if self._recent > LATENCY_SLACK * self._best + 0.05:
            self._slow_start = False  # requests queue at the server: more in flight buys nothing
            return
        self.limiter.limit = min(self.ceiling, self.limiter.limit + 1)

    def on_overload(self, generation: int, headers: Mapping[str, str] | None) -> None:
        """A 429 or 503 for a request sent in ``generation``."""
        if headers is not None:
            self._adopt_limits(headers)
        if generation != self.generation:
            return  # sent under a limit we already gave up
        self.generation += 1
        self._slow_start = False
        self._successes = 0
        self.limiter.limit = max(1, min(self.limiter.limit - 1, int(self.limiter.limit * DECREASE)))

    def _adopt_limits(self, headers: Mapping[str, str]) -> None:
        """x-ratelimit-limit-*: pace at the server's own rate (what is left is the budget gate's)."""
        rpm = header_number(headers.get("x-ratelimit-limit-requests"))
        tpm = header_number(headers.get("x-ratelimit-limit-tokens"))
        if rpm or tpm:
            self.pacer.adopt(rpm, tpm)

