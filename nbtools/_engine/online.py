"""The online run: a dispatcher that starts each request when the gates have room.

Every start passes the run's gates (nbtools._engine.gates: pacing, the spending cap, the concurrency
limiter, the server's budget, the adaptive controller), all asked the same three things; adding a
gate is adding it to ``gates``. Requests run in worker tasks, each taking the next request the
dispatcher lets through once its own is done: never more tasks than requests under way, and no task
created per request (aiohttp's body writer is then the one task a request costs). Cancelling stops
the dispatcher and every in-flight request, and keeps the rows that finished. What to do after a
failed attempt is nbtools._engine.retry's to decide.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from nbtools._base.errors import EndpointError
from nbtools._engine.cache import ReplyCache, SampleKeys, cache_is_on
from nbtools._engine.client import ChatClient
from nbtools._engine.failures import WAIT, RequestFailed
from nbtools._engine.gates.adaptive import AUTO_START, AdaptiveConcurrency
from nbtools._engine.gates.gate import AttemptOutcome, Gate, Status, Ticket
from nbtools._engine.gates.limiter import Limiter
from nbtools._engine.gates.pacing import Pacer, estimate_prompt_tokens
from nbtools._engine.gates.spending import SpendingGuard
from nbtools._engine.lifecycle import Run
from nbtools._engine.plan import PromptTokens, cache_fields, measure_prefix, plan, price_batch, warms_up
from nbtools._engine.prices import usd
from nbtools._engine.replies import Completion
from nbtools._engine.retry import FAIL, RETRY, STOP, WAIT_AGAIN, RetryPolicy
from nbtools._engine.rows import CANCELLED, ERROR, OK, RequestResult, fill_reply
from nbtools._engine.state import State
from nbtools._engine.stops import stop_message
from nbtools._engine.wire import JSON_OBJECT, schema_form

OnResult = Callable[[RequestResult], Any]
Admitted = tuple[RequestResult, dict[str, Any], "str | None", Ticket, list[Gate]]  # a row let through, for a worker
_NOT_CHAT = re.compile(r"embed|rerank|whisper|tts|dall-e|moderation|bge-|minilm", re.IGNORECASE)


class OnlineRun(Run[State]):
    """One batch sent online, request by request."""

    def __init__(self, result: State, on_result: OnResult | None) -> None:
        super().__init__(result)
        self.options = options = result.options
        auto = options.concurrency == "auto"
        self.limiter = Limiter(AUTO_START if auto else options.concurrency)  # type: ignore[arg-type]
        self.pacer = Pacer(options.rpm, options.tpm)
        # "auto" adapts from the start; a fixed number only once the server pushes back (429/503).
        self.adaptive = (AdaptiveConcurrency(self.limiter, self.pacer, self._wants_slots,
                                             windows=result.endpoint.rate_windows) if auto else None)
        self.policy = RetryPolicy(options.retries, options.max_wait)
        self._left = len(result.rows)  # rows the dispatcher has not handled yet
        self.cache = ReplyCache() if cache_is_on(options.cache, result.endpoint) else None
        self.client = ChatClient(result.endpoint, timeout=options.timeout, api=options.api)
        self.on_result = on_result
        self.tasks: set[asyncio.Task[None]] = set()  # the workers
        self._idle: deque[asyncio.Future[Admitted | None]] = deque()  # workers waiting for their next request
        self._dispatching = True
        self._followers: dict[str, list[RequestResult]] = {}  # with dedupe: identical requests wait on the first
        self._typical_completion = options.max_tokens or 256  # token estimate until usage is seen
        self._answered = False  # has the endpoint answered anything yet?
        # With the prompt-cache warm-up: the row sent first, and what the dispatcher waits on until its reply begins.
        self._warming: tuple[RequestResult, asyncio.Future[None]] | None = None
        self.guard = SpendingGuard(options.max_cost) if options.max_cost is not None else None
        self._prompt_tokens: PromptTokens | None = None  # with max_cost: each request's worst case needs them
        # In the order a start passes them. The dispatcher waits on those up to the limiter, in row order
        # and without a slot (the limit counts requests out, not waiting); each request, on the rest.
        self.gates: list[Gate] = [self.pacer, *([self.guard] if self.guard is not None else []), self.limiter]
        if self.adaptive is not None:
            self.gates += [self.adaptive.budget, self.adaptive]

    def share_spending(self, guard: SpendingGuard) -> None:
        """Spend from ``guard`` (one cap over several runs: a several-model batch) instead of a cap of its own."""
        if self.guard is not None:
            self.gates.remove(self.guard)
        self.guard = guard
        self.gates.insert(self.gates.index(self.limiter), guard)  # as its own would be: before the limiter

    # -- Control: what the result asks of us ---------------------------------------------------------
    @property
    def limit(self) -> int:
        return self.limiter.limit

    def set_limit(self, value: int) -> None:
        """A number set by hand: the user takes over from any controller."""
        self.limiter.limit = value
        self._set_adaptive(None)

    def _set_adaptive(self, adaptive: AdaptiveConcurrency | None) -> None:
        """Swap the controller (and its server budget) in the gates; requests under way keep theirs."""
        old = self.adaptive
        gates = [g for g in self.gates if old is None or (g is not old and g is not old.budget)]
        if adaptive is not None:
            at = gates.index(self.limiter) + 1
            gates[at:at] = [adaptive.budget, adaptive]
        self.gates = gates  # a new list: an attempt iterates the one it started with
        self.adaptive = adaptive

    @property
    def in_flight(self) -> int:
        return self.limiter.active

    @property
    def peak(self) -> int:
        return self.limiter.peak

    @property
    def limit_path(self) -> list[int]:
        return list(self.limiter.path)

    def cancel(self) -> None:
        if self.main_task is not None and not self.main_task.done():
            super().cancel()
        else:  # not started in a task of its own (or already ended): stop what may still run
            self._cancel_requested = True
            for task in self.tasks:
                task.cancel()

    # -- the batch ----------------------------------------------------------------------------------
    async def go(self) -> None:
        self.result.lateness.start(asyncio.get_running_loop())  # how far its stamps may be off: the serial estimate asks
        async with self.client:
            try:
                await self._dispatch()
                while self.tasks:
                    await asyncio.wait(list(self.tasks))
            finally:
                await self._cancel_tasks()  # while the session is still open
        if self.guard is not None and self.guard.stopped:  # say so, also in a script
            held = sum(row.started is None and not row.done for row in self.result.rows)
            print(f"nbtools: max_cost {usd(self.guard.max_cost)} reached: {held} requests not sent "
                  f"(spent {usd(self.guard.spent)}); raise max_cost and run again to send them", file=sys.stderr)

    async def _dispatch(self) -> None:
        """Start each row's request when the gates let it through."""
        result = self.result
        if result.model is None:  # the batch is priced once its model is known: now
            result.model = await self._discover_model()
            price_batch(result, result.model)
            measure_prefix(result, result.model)
        if self.guard is not None:  # each request's worst case needs its prompt tokens
            endpoint = result.endpoint
            self._prompt_tokens = PromptTokens(result.model, "sim" if endpoint.simulated else endpoint.provider)
        loop = asyncio.get_running_loop()
        try:
            await self._dispatch_rows(loop)
        finally:
            self._dispatching = False
            while self._idle:  # nothing more to hand over: let the waiting workers end
                idle = self._idle.popleft()
                if not idle.done():
                    idle.set_result(None)

    async def _dispatch_rows(self, loop: asyncio.AbstractEventLoop) -> None:
        result, options, cache = self.result, self.options, self.cache
        assert result.model is not None
        form = result.schema_form = schema_form(result.endpoint) if options.schema is not None else None
        keyed = cache is not None or options.dedupe
        keys = SampleKeys(result.endpoint.base_url, options.repeat, options.dedupe) if keyed else None
        warm = warms_up(result)
        for row, body, key, hit in plan(result.rows, options, result.model, form, keys=keys, cache=cache,
                                        fields=cache_fields(result)):
            self._left -= 1
            if row.done:  # refused before the batch began (on_bad_input="skip"): its error is its outcome
                self.result.row_finished(row)
                self._done(row)
                continue
            if key is not None and not self._sent_alone(row, key, hit):
                continue
            # Pacing, then room under the cap, then a slot: a request waiting for a slot to send again
            # (after a 429) must be able to settle, and let the cap admit the next one.
            ticket = Ticket(self._estimate(body) if self.pacer.active else 0,
                            self._worst_case(body) if self.guard is not None else 0.0)
            passed = await self._admit(ticket)
            if passed is None:
                result.capped = True
                return  # the cap is reached: what is left is "not sent"
            result.row_started(row)
            if warm:  # the first request sent goes alone: the rest wait until its reply has begun
                warm, result.warmed_up = False, True
                self._warming = (row, loop.create_future())
            self._hand_over((row, body, key, ticket, passed), loop)
            if self._warming is not None:
                await self._warming[1]
                self._warming = None

    def _begun(self, row: RequestResult) -> None:
        """The warm-up row's reply has begun (its first token) or ended: the provider has read its prompt."""
        warming = self._warming
        if warming is not None and warming[0] is row and not warming[1].done():
            warming[1].set_result(None)

    def _sent_alone(self, row: RequestResult, key: str, hit: Completion | None) -> bool:
        """Does this row need a request of its own? Not if the cache answers it, or (with dedupe) an identical
        request already on its way will."""
        if hit is not None:
            self._answer(row, hit, cached=True)
            return False
        if self.options.dedupe:
            if key in self._followers:
                self._followers[key].append(row)
                return False
            self._followers[key] = []
        return True

    async def _admit(self, ticket: Ticket) -> list[Gate] | None:
        """Wait on the dispatcher's gates in turn; the gates passed, or None once one never will let it through."""
        passed: list[Gate] = []
        for gate in self._admission():
            try:
                let_through = await gate.wait(ticket)
            except BaseException:  # cancelled while waiting: give back what the others reserved
                self._finish(passed, ticket, AttemptOutcome("cancelled"))
                raise
            if not let_through:
                self._finish(passed, ticket, AttemptOutcome("cancelled"))
                return None
            passed.append(gate)
        return passed

    def _admission(self) -> list[Gate]:
        """The gates waited on by the dispatcher: those up to and including the limiter."""
        gates = self.gates
        return gates[: gates.index(self.limiter) + 1]

    def _hand_over(self, admitted: Admitted, loop: asyncio.AbstractEventLoop) -> None:
        """Give a request let through to a waiting worker, or to a new one."""
        while self._idle:
            idle = self._idle.popleft()
            if not idle.done():  # a worker cancelled while it waited is gone
                idle.set_result(admitted)
                return
        task = loop.create_task(self._worker(admitted))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _worker(self, admitted: Admitted | None) -> None:
        loop = asyncio.get_running_loop()
        while admitted is not None:
            await self._request(*admitted)
            if not self._dispatching:
                return
            idle: asyncio.Future[Admitted | None] = loop.create_future()
            self._idle.append(idle)
            admitted = await idle

    @staticmethod
    def _finish(gates: list[Gate], ticket: Ticket, outcome: AttemptOutcome) -> None:
        for gate in reversed(gates):
            gate.finished(ticket, outcome)

    async def _cancel_tasks(self) -> None:
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _wind_down(self) -> None:
        await self._cancel_tasks()

    def close(self, *, cancelled: bool, not_sent: bool = False) -> None:
        self.result.lateness.stop()
        super().close(cancelled=cancelled, not_sent=not_sent)
        if self.cache is not None:
            self.cache.close()  # what finished survives an interrupt: a re-run sends only the rest

    async def _discover_model(self) -> str:
        """The first model the endpoint lists that can chat (local servers list embedding models too)."""
        try:
            models = await self.client.list_models()
        except RequestFailed as exc:
            if exc.unreachable:
                raise EndpointError(f"{exc}: check base_url / the provider, then run again") from None
            raise EndpointError(
                f"no model given, and {self.client.endpoint.host} did not list one ({exc}): "
                "pass model= (magic: -m MODEL), or check base_url"
            ) from None
        if not models:
            raise EndpointError(f"no model given and {self.client.endpoint.host} lists none: pass model= (magic: -m MODEL)")
        return next((m for m in models if not _NOT_CHAT.search(m)), models[0])

    # -- one request ---------------------------------------------------------------------------------
    async def _request(self, row: RequestResult, body: dict[str, Any], key: str | None, ticket: Ticket,
                       passed: list[Gate]) -> None:
        """``passed``: the gates that let this request through (the dispatcher's, then the rest).

        Each attempt is sent from here, not from a helper coroutine: a reply resumes every frame it awaits
        through, and at thousands of replies a second those frames are a measurable share of the CPU. What
        needs no waiting is done in the plain methods below."""
        result, client = self.result, self.client
        on_delta = (lambda delta: result.row_streamed(row, delta)) if self.options.stream else None
        if on_delta is not None and self._warming is not None and self._warming[0] is row:
            on_delta = self._warming_delta(row)
        completion = None
        replied: AttemptOutcome | None = None  # how the attempt that got a reply went
        errors = 0  # failed attempts that count against `retries` (a rate limit's waits do not)
        try:
            while True:
                gates = self._next_attempt(row, body, ticket, passed)
                if gates and not await self._pass(gates, ticket, passed):
                    row.status = CANCELLED  # a gate will never let it through
                    break
                self._sending(row, ticket, passed, on_delta is not None)
                sent = time.perf_counter()
                try:
                    completion = await client.complete(body, on_delta)
                except RequestFailed as exc:
                    errors += exc.kind not in WAIT
                    outcome, delay = self._failed(row, exc, errors, ticket, passed)
                    if outcome.final:  # the row's last attempt
                        replied = outcome
                        break
                    await asyncio.sleep(delay)
                    continue
                replied = self._replied(completion, sent)
                break
            if completion is not None:
                self._fill(row, completion)
        except asyncio.CancelledError:
            row.status = CANCELLED
            row.error_kind = row.status_code = None  # a wait it was in (a 429) is not how it ended
            replied = None
            raise
        except Exception as exc:  # a bug or an odd reply: this row's error, not a lost batch
            row.error, row.status = f"{type(exc).__name__}: {result.endpoint.redact(str(exc))}", ERROR
            completion = None
        finally:
            self._settle(row, ticket, passed, replied)
        self._done(row)
        if key is not None:
            self._share(key, row, completion)

    def _warming_delta(self, row: RequestResult) -> Callable[[str], None]:
        """The warm-up row's stream: its first token lets the other rows go."""
        def on_delta(delta: str) -> None:
            self.result.row_streamed(row, delta)
            self._begun(row)

        return on_delta

    def _next_attempt(self, row: RequestResult, body: dict[str, Any], ticket: Ticket, passed: list[Gate]) -> list[Gate]:
        """Count the attempt; the gates it still has to pass (the dispatcher waited on those up to the limiter)."""
        row.attempts += 1
        ticket.attempt = row.attempts
        # Read each time: the first reply may have turned pacing on, a number set by hand the controller off.
        ticket.tokens = self._estimate(body) if self.pacer.active or self.adaptive is not None else 0
        gates = self.gates
        if row.attempts == 1:
            return gates[gates.index(self.limiter) + 1 :]
        passed[:] = [gate for gate in passed if gate in gates]  # a gate taken out since (the controller) is not asked again
        return gates

    def _sending(self, row: RequestResult, ticket: Ticket, passed: list[Gate], streams: bool) -> None:
        if streams:
            row.begin_stream()
        for gate in passed:
            gate.started(ticket)
        row.sent = self.result.now()

    def _fill(self, row: RequestResult, completion: Completion) -> None:
        result = self.result
        fill_reply(row, completion, result.model, result.price, schema=self.options.schema)
        if self.options.schema is not None and self.client.older_schema:
            result.schema_form = JSON_OBJECT  # the server took only the older form: say so

    def _settle(self, row: RequestResult, ticket: Ticket, passed: list[Gate], replied: AttemptOutcome | None) -> None:
        """The request is over, however it ended: the gates are told, and the row leaves flight."""
        # A failed request is free; a reply without usage costs its worst case.
        cost = row.cost if row.cost is not None else ticket.worst if row.status == OK else 0.0
        outcome = replied or AttemptOutcome("cancelled")
        outcome.cost = cost
        self._finish(passed, ticket, outcome)
        self.result.row_finished(row)
        if self._warming is not None:
            self._begun(row)

    def _share(self, key: str, row: RequestResult, completion: Completion | None) -> None:
        """The reply into the cache, and to the identical requests that waited on this one (with dedupe)."""
        if completion is not None and self.cache is not None:
            try:
                self.cache.put(key, completion)
            except Exception as exc:  # a full disk or a locked file must not cost the batch its rows
                print(f"nbtools: the reply cache stopped working ({exc}); going on without it", file=sys.stderr)
                self.cache = None
        for follower in self._followers.pop(key, ()):
            self._answer(follower, completion, cached=True, failed=row)

    @staticmethod
    async def _pass(gates: list[Gate], ticket: Ticket, passed: list[Gate]) -> bool:
        """Wait on each gate in turn; remember those that let the request through."""
        for gate in gates:
            if not await gate.wait(ticket):
                return False
            if gate not in passed:
                passed.append(gate)
        return True

    def _replied(self, completion: Completion, sent: float) -> AttemptOutcome:
        """An attempt got its reply: how it went, for the gates."""
        self._answered = True
        self.policy.replied()
        used = completion.completion_tokens
        if used is not None and self.pacer.active:
            self._typical_completion = used
        return AttemptOutcome("ok", headers=completion.headers, headers_at=completion.headers_at,
                              latency=time.perf_counter() - sent,
                              tokens=None if used is None else (completion.prompt_tokens or 0) + used)

    def _failed(self, row: RequestResult, exc: RequestFailed, errors: int, ticket: Ticket,
                passed: list[Gate]) -> tuple[AttemptOutcome, float]:
        """An attempt failed: note it on the row and decide. The outcome says what comes next: to wait or retry
        (the gates are told: the slot given back or kept) after the seconds returned with it, or the row's end."""
        self._answered = self._answered or not exc.unreachable
        row.status_code, row.error_kind, row.partial = exc.status, exc.kind, exc.partial
        if exc.kind in WAIT:
            row.waits += 1
        decision = self.policy.decide(exc.kind, errors=errors, waits=row.waits, retry_after=exc.retry_after)
        status: Status = "overloaded" if exc.kind in WAIT else "failed"
        if decision.action in (WAIT_AGAIN, RETRY):
            if decision.action == WAIT_AGAIN:
                self._pushed_back(exc)
            # Waiting gives the slot back (the limit counts requests the server is handling); a retry keeps it.
            outcome = AttemptOutcome(status, "wait" if decision.action == WAIT_AGAIN else "retry", exc.headers)
            self._finish(passed, ticket, outcome)
            return outcome, decision.delay
        row.error = str(exc) + (f" (after {row.attempts} attempts)" if row.attempts > 1 else "")
        if decision.why:
            row.error += f"; {decision.why}"
        row.status = ERROR
        result = self.result
        if decision.action == STOP:
            self.stop(EndpointError(stop_message(exc, result.endpoint, result.model, self.options.api_key_env)))
        elif exc.unreachable and not self._answered:
            self.stop(EndpointError(f"{exc}: check base_url / the provider, then run again"))
        assert decision.action in (FAIL, STOP)
        return AttemptOutcome(status, headers=exc.headers), 0.0

    def _pushed_back(self, exc: RequestFailed) -> None:
        """A 429/503: note where it happened, and let a fixed limit yield until the pressure is gone."""
        if self.result.refused_at is None:
            self.result.refused_at = self.limiter.active
        if self.adaptive is None and self.options.concurrency != "auto":
            # A fixed concurrency is a ceiling, not a promise: drop and climb back, never above it.
            adaptive = AdaptiveConcurrency(self.limiter, self.pacer, self._wants_slots,
                                           ceiling=self.limiter.limit, fixed=True,
                                           windows=self.result.endpoint.rate_windows)
            self._set_adaptive(adaptive)
            first = AttemptOutcome("overloaded", "wait", exc.headers)  # what the new gates learn from
            for gate in (adaptive.budget, adaptive):
                gate.finished(Ticket(), first)

    def _worst_case(self, body: dict[str, Any]) -> float:
        price = self.result.price
        if price is None or price.free or self._prompt_tokens is None:
            return 0.0
        return price.cost(self._prompt_tokens(body), self.options.reply_bound)

    def _wants_slots(self) -> bool:
        """Would more slots be used now? Rows not dispatched yet, or rows waiting to send again."""
        return (self._left > 0 or self.limiter.waiting > 0) and not self.pacer.held_back

    def _estimate(self, body: dict[str, Any]) -> int:
        return estimate_prompt_tokens(body["messages"]) + self._typical_completion

    def _answer(self, row: RequestResult, completion: Completion | None, *, cached: bool,
                failed: RequestResult | None = None) -> None:
        """A row answered without a request of its own: from the cache or an identical request."""
        row.started = self.result.now()
        row.cached = cached
        if completion is not None:
            fill_reply(row, completion, self.result.model, self.result.price, charged=False, schema=self.options.schema)
        elif failed is not None:
            row.error, row.error_kind, row.status_code = failed.error, failed.error_kind, failed.status_code
            row.status = failed.status if failed.status == CANCELLED else ERROR
        self.result.row_finished(row)
        self._done(row)

    def _done(self, row: RequestResult) -> None:
        if self.on_result is not None:
            try:
                self.on_result(row)
            except Exception as exc:  # a broken callback stops the batch and surfaces, rows kept
                self.stop(exc)
