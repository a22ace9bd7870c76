"""The gate protocol: each gate answers wait / started / finished, and the online run consults its list.

The gates are driven through the protocol itself; the run is tested against the simulator over real HTTP,
with hand-written spy gates added to its list.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from nbtools._api import prepare
from nbtools._engine.gates.adaptive import AdaptiveConcurrency
from nbtools._engine.gates.gate import AttemptOutcome, Gate, Ticket
from nbtools._engine.gates.limiter import Limiter
from nbtools._engine.gates.pacing import Pacer
from nbtools._engine.gates.server_budget import ServerBudget
from nbtools._engine.gates.spending import SpendingGuard
from nbtools._engine.online import OnlineRun
from nbtools._result import BatchResult
from nbtools.sim import SimServer


def _gates() -> list[Gate]:
    limiter, pacer = Limiter(2), Pacer()
    adaptive = AdaptiveConcurrency(limiter, pacer, lambda: True)
    return [pacer, SpendingGuard(1.0), limiter, adaptive.budget, adaptive]


@pytest.mark.parametrize("gate", _gates(), ids=lambda g: type(g).__name__)
def test_every_gate_speaks_the_protocol(gate: Gate) -> None:
    async def go() -> None:
        ticket = Ticket(tokens=10, worst=0.1)
        assert await gate.wait(ticket) is True
        gate.started(ticket)
        gate.finished(ticket, AttemptOutcome("ok", latency=0.01, tokens=12, cost=0.05))

    asyncio.run(go())


def test_the_limiter_keeps_the_slot_through_a_retry_and_gives_it_back_to_wait_out_a_push_back() -> None:
    async def go() -> None:
        limiter = Limiter(1)
        ticket = Ticket()
        await limiter.wait(ticket)
        assert (limiter.active, ticket.slot) == (1, True)
        limiter.finished(ticket, AttemptOutcome("failed", "retry"))
        assert limiter.active == 1  # a retry keeps its slot
        await limiter.wait(ticket)  # and does not take a second one
        assert limiter.active == 1
        limiter.finished(ticket, AttemptOutcome("overloaded", "wait"))
        assert (limiter.active, ticket.slot) == (0, False)  # waiting out a 429 holds no slot
        await limiter.wait(ticket)
        assert limiter.active == 1
        limiter.finished(ticket, AttemptOutcome("ok"))
        assert limiter.active == 0
        limiter.finished(ticket, AttemptOutcome("cancelled"))  # told twice: gives back nothing more
        assert limiter.active == 0

    asyncio.run(go())


def test_the_spending_cap_admits_once_per_request_and_settles_on_its_final_outcome() -> None:
    async def go() -> None:
        guard = SpendingGuard(1.0)
        first, second = Ticket(worst=0.6), Ticket(worst=0.6)
        assert await guard.wait(first)
        waiting = asyncio.ensure_future(guard.wait(second))  # 0.6 + 0.6 > 1: waits for the first to settle
        await asyncio.sleep(0.01)
        assert not waiting.done()
        first.attempt = 2
        assert await guard.wait(first)  # a second attempt is not admitted again
        guard.finished(first, AttemptOutcome("overloaded", "wait"))
        assert guard.reserved == pytest.approx(0.6)  # not over yet: still reserved
        guard.finished(first, AttemptOutcome("ok", cost=0.1))
        assert await waiting is True  # it cost less than its worst case: room for the second
        assert guard.spent == pytest.approx(0.1)
        guard.finished(second, AttemptOutcome("cancelled"))
        assert (guard.reserved, guard.in_flight) == (pytest.approx(0.0), 0)

    asyncio.run(go())


def test_the_spending_cap_refuses_what_can_never_fit() -> None:
    async def go() -> None:
        guard = SpendingGuard(0.5)
        assert await guard.wait(Ticket(worst=0.6)) is False
        assert guard.stopped

    asyncio.run(go())


def test_pacing_spaces_first_attempts_and_corrects_its_token_clock_with_the_usage() -> None:
    async def go() -> None:
        pacer = Pacer(rpm=6000)  # 10 ms a request
        ticket = Ticket()
        await pacer.wait(ticket)
        assert pacer.held_back is False  # the very first start does not wait
        loop = asyncio.get_running_loop()
        start = loop.time()
        await pacer.wait(Ticket())
        assert loop.time() - start >= 0.005
        assert pacer.held_back is True
        tokens = Pacer(tpm=60_000)  # 1 ms a token
        ticket = Ticket(tokens=100)
        await tokens.wait(ticket)
        booked = tokens._tokens_free_at
        tokens.finished(ticket, AttemptOutcome("ok", tokens=50))
        assert tokens._tokens_free_at == pytest.approx(booked - 0.05)
        tokens.finished(ticket, AttemptOutcome("failed"))  # no usage, nothing to correct
        assert tokens._tokens_free_at == pytest.approx(booked - 0.05)

    asyncio.run(go())


def test_the_server_budget_stamps_each_start_and_learns_from_replies_and_push_backs_only() -> None:
    async def go() -> None:
        budget = ServerBudget()
        ticket = Ticket(tokens=5)
        await budget.wait(ticket)
        assert ticket.mark == (1.0, 5.0)
        spent = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "2s"}
        budget.finished(ticket, AttemptOutcome("failed", headers=spent))  # a 500's headers say nothing of the budget
        assert budget.take(1) == 0.0
        budget.finished(Ticket(), AttemptOutcome("overloaded", "wait", spent))
        assert 1.9 < budget.take(1) <= 2.0

    asyncio.run(go())


def test_the_adaptive_gate_ignores_push_backs_from_before_its_last_back_off() -> None:
    limiter = Limiter(100)
    adaptive = AdaptiveConcurrency(limiter, Pacer(), lambda: True, ceiling=100, fixed=True)
    old, new = Ticket(), Ticket()
    adaptive.started(old)
    adaptive.finished(old, AttemptOutcome("overloaded", "wait"))
    assert limiter.limit == 95
    adaptive.started(new)
    adaptive.finished(Ticket(), AttemptOutcome("overloaded", "wait"))  # sent in generation 0: already answered
    assert limiter.limit == 95
    adaptive.finished(new, AttemptOutcome("overloaded", "wait"))
    assert limiter.limit < 95
    adaptive.finished(new, AttemptOutcome("ok", latency=0.01))  # fixed: climbs back a step a success
    adaptive.finished(new, AttemptOutcome("failed"))  # neither a reply nor a push-back: no change
    assert limiter.limit == 91


class SpyGate:
    """Records what the run asks; optionally lets only ``allow`` requests through."""

    def __init__(self, limiter: Limiter, allow: int | None = None) -> None:
        self.limiter, self.allow = limiter, allow
        self.waits = self.starts = 0
        self.slots_at_wait: list[bool] = []
        self.outcomes: list[AttemptOutcome] = []
        self.running = self.max_running = 0

    async def wait(self, ticket: Ticket) -> bool:
        self.waits += 1
        self.slots_at_wait.append(ticket.slot)
        if self.allow is not None and self.waits > self.allow:
            return False
        await asyncio.sleep(0)
        return True

    def started(self, ticket: Ticket) -> None:
        self.starts += 1
        self.running += 1
        self.max_running = max(self.max_running, self.running)

    def finished(self, ticket: Ticket, outcome: AttemptOutcome) -> None:
        self.running -= 1
        self.outcomes.append(outcome)


def _run(sim: SimServer, n: int, **options: Any) -> OnlineRun[BatchResult]:
    result = prepare([f"p{i}" for i in range(n)], base_url=sim.base_url, model="m", cache=False, **options)
    return OnlineRun(result, None)


def test_a_gate_added_after_the_limiter_is_consulted_for_every_request_holding_its_slot(sim: SimServer) -> None:
    async def go() -> tuple[OnlineRun[BatchResult], SpyGate]:
        run = _run(sim, 30, concurrency=4)
        spy = SpyGate(run.limiter)
        run.gates.append(spy)
        await run.main()
        return run, spy

    run, spy = asyncio.run(go())
    assert [row.status for row in run.result.rows] == ["ok"] * 30
    assert spy.waits == spy.starts == 30
    assert all(spy.slots_at_wait)  # after the limiter: each waits holding its slot
    assert [o.status for o in spy.outcomes] == ["ok"] * 30 and all(o.latency for o in spy.outcomes)
    assert spy.max_running <= 4


def test_a_gate_before_the_limiter_can_hold_back_the_rest_of_the_batch(sim: SimServer) -> None:
    async def go() -> tuple[OnlineRun[BatchResult], SpyGate]:
        run = _run(sim, 20, concurrency=4)
        spy = SpyGate(run.limiter, allow=5)
        run.gates.insert(0, spy)
        await run.main()
        return run, spy

    run, spy = asyncio.run(go())
    assert not any(spy.slots_at_wait)  # waited on by the dispatcher, without a slot
    assert [row.status for row in run.result.rows].count("ok") == 5
    assert sim.stats()["requests"] == 5
    assert run.limiter.active == 0


def test_a_retried_request_asks_every_gate_again_and_ends_once(make_sim) -> None:
    sim = make_sim(latency=0.01, reply="echo")

    async def go() -> SpyGate:
        result = prepare(["flaky [[sim:flaky=2]]"], base_url=sim.base_url, model="m", cache=False, retries=2)
        run = OnlineRun(result, None)
        spy = SpyGate(run.limiter)
        run.gates.append(spy)
        await run.main()
        assert result.rows[0].status == "ok"
        return spy

    spy = asyncio.run(go())
    assert spy.waits == spy.starts == 3
    assert [o.final for o in spy.outcomes] == [False, False, True]


def test_the_online_run_creates_no_task_per_request(sim: SimServer) -> None:
    created: list[str] = []

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        created.append(getattr(coro, "__qualname__", ""))
        return asyncio.Task(coro, loop=loop, **kwargs)

    async def go() -> OnlineRun[BatchResult]:
        asyncio.get_running_loop().set_task_factory(factory)
        run = _run(sim, 200, concurrency=10)
        await run.main()
        return run

    run = asyncio.run(go())
    assert [row.status for row in run.result.rows] == ["ok"] * 200
    ours = [name for name in created if name.startswith("OnlineRun.")]
    assert 1 <= len(ours) <= 10  # one worker per slot, each taking request after request
