"""The online run: a dispatcher that starts each request when the gates have room.

Every start passes the run's gates (nbtools.engine.gates: pacing, the spending cap, the concurrency
limiter, the server's budget, the adaptive controller), all asked the same three things; adding a
gate is adding it to ``gates``. Requests run in worker tasks, each taking the next request the
dispatcher lets through once its own is done: never more tasks than requests under way, and no task
created per request (aiohttp's body writer is then the one task a request costs). Cancelling stops
the dispatcher and every in-flight request, and keeps the rows that finished. What to do after a
failed attempt is nbtools.engine.retry's to decide.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Generic

from nbtools.engine.cache import ReplyCache, SampleKeys, cache_is_on
from nbtools.engine.client import ChatClient, Completion, RequestFailed
from nbtools.engine.failures import WAIT
from nbtools.engine.gates.adaptive import AUTO_START, AdaptiveConcurrency
from nbtools.engine.gates.gate import AttemptOutcome, Gate, Status, Ticket
from nbtools.engine.gates.limiter import Limiter
from nbtools.engine.gates.pacing import Pacer, estimate_prompt_tokens
from nbtools.engine.gates.spending import SpendingGuard
from nbtools.engine.prepare import first_chat_model, price_batch
from nbtools.engine.prices import usd
from nbtools.engine.retry import FAIL, RETRY, STOP, WAIT_AGAIN, RetryPolicy
from nbtools.engine.rows import CANCELLED, ERROR, OK, RequestResult, fill_reply
from nbtools.engine.state import State
from nbtools.engine.stops import stop_message
from nbtools.engine.structured import form_for
from nbtools.engine.tokens import prompt_counter
from nbtools.errors import EndpointError
from nbtools.schemas import JSON_OBJECT

__all__ = ["OnlineRun", "OnResult"]

OnResult = Callable[[RequestResult], Any]
Admitted = tuple[RequestResult, dict[str, Any], "str | None", Ticket, list[Gate]]  # a row let through, for a worker
CHUNK = 500  # rows prepared (bodies, cache keys, one cache query) at a time


class OnlineRun(Generic[State]):
    """One batch sent online, request by request: the machinery behind its result (and its ``Control``)."""

    def __init__(self, result: State, on_result: OnResult | None) -> None:
        self.result = result
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
        self.main_task: asyncio.Task[State] | None = None
        self._followers: dict[str, list[RequestResult]] = {}  # with dedupe: identical requests wait on the first
        self._typical_completion = options.max_tokens or 256  # token estimate until usage is seen
        self._cancel_requested = False
        self._stop_error: BaseException | None = None
        self._answered = False  # has the endpoint answered anything yet?
        self.guard = SpendingGuard(options.max_cost) if options.max_cost is not None else None
        self._count_prompt: Callable[[list[Any]], int] | None = None
        # In the order a start passes them. The dispatcher waits on those up to the limiter, in row order
        # and without a slot (the limit counts requests out, not waiting); each request, on the rest.
        self.gates: list[Gate] = [self.pacer, *([self.guard] if self.guard is not None else []), self.limiter]
        if self.adaptive is not None:
            self.gates += [self.adaptive.budget, self.adaptive]
        result.attach(self)

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

    def cancel(self) -> None:
        self._cancel_requested = True
        if self.main_task is not None and not self.main_task.done():
            self.main_task.cancel()
        else:
            for task in self.tasks:
                task.cancel()

    async def wait_closed(self) -> None:
        """Wait until nothing of this batch is left running (after ``cancel()``)."""
        if self.main_task is not None and not self.main_task.done():
            await asyncio.wait([self.main_task])
        await self._shutdown()

    # -- the batch ----------------------------------------------------------------------------------
    async def main(self) -> State:
        result = self.result
        result.start_clock()
        result.lateness.start(asyncio.get_running_loop())  # how far its stamps may be off: the serial estimate asks
        try:
            async with self.client:
                try:
                    await self._dispatch()
                    while self.tasks:
                        await asyncio.wait(list(self.tasks))
                finally:
                    await self._cancel_tasks()  # while the session is still open
            if self.guard is not None and self.guard.stopped:  # say so, also in a script
                held = sum(row.started is None and not row.done for row in result.rows)
                print(f"nbtools: max_cost {usd(self.guard.max_cost)} reached: {held} requests not sent "
                      f"(spent {usd(self.guard.spent)}); raise max_cost and run again to send them", file=sys.stderr)
        except asyncio.CancelledError:
            stop = self._stop_error
            if stop is not None:  # we stopped it: a refused key, an endpoint that is not there, a broken callback
                result.failure = stop
                if isinstance(stop, EndpointError):
                    stop.result = result  # what finished is not lost with the batch
                self._close(cancelled=False, not_sent=True)
                raise stop from None
            self._close(cancelled=True)
            if self._cancel_requested and self.main_task is not None:
                if sys.version_info >= (3, 11):
                    self.main_task.uncancel()  # a cancel we asked for is not the caller's cancel
                return result
            raise
        except BaseException as exc:
            result.failure = exc
            self._close(cancelled=False)
            raise
        self._close(cancelled=False, not_sent=True)  # rows never started: held back by max_cost
        return result

    async def _dispatch(self) -> None:
        """Start each row's request when the gates let it through."""
        result = self.result
        if result.model is None:
            result.model = await self._discover_model()
        model = result.model
        price_batch(result, model)
        if self.guard is not None:  # each request's worst case needs its prompt tokens
            self._count_prompt = prompt_counter(model)
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
        result, options, cache, guard = self.result, self.options, self.cache, self.guard
        model = result.model
        assert model is not None
        rows, url, repeat = result.rows, result.endpoint.base_url, options.repeat
        form = result.schema_form = form_for(result.endpoint) if options.schema is not None else None
        samples = SampleKeys(url, repeat, options.dedupe) if cache is not None or options.dedupe else None
        for first in range(0, len(rows), CHUNK):
            chunk = rows[first : first + CHUNK]
            bodies = [options.request_body(options.messages(row.prompt), model, form) for row in chunk]
            keys: list[str | None] = [None] * len(chunk)
            hits: dict[str, Completion] = {}
            if samples is not None:
                keys = [samples.key(row.index, body) for row, body in zip(chunk, bodies, strict=True)]
                if cache is not None:  # one query per chunk, not one per row
                    hits = cache.get_many(keys)  # type: ignore[arg-type]
            for row, body, key in zip(chunk, bodies, keys, strict=True):
                self._left -= 1
                if key is not None:
                    if key in hits:
                        self._answer(row, hits[key], cached=True)
                        continue
                    if options.dedupe:
                        if key in self._followers:  # an identical request is already on its way
                            self._followers[key].append(row)
                            continue
                        self._followers[key] = []
                # Pacing, then room under the cap, then a slot: a request waiting for a slot to send again
                # (after a 429) must be able to settle, and let the cap admit the next one.
                ticket = Ticket(self._estimate(body) if self.pacer.active else 0,
                                self._worst_case(body) if guard is not None else 0.0)
                passed: list[Gate] = []
                for gate in self._admission():
                    try:
                        let_through = await gate.wait(ticket)
                    except BaseException:  # cancelled while waiting: give back what the others reserved
                        self._finish(passed, ticket, AttemptOutcome("cancelled"))
                        raise
                    if not let_through:
                        self._finish(passed, ticket, AttemptOutcome("cancelled"))
                        result.capped = True
                        return  # the cap is reached: what is left is "not sent"
                    passed.append(gate)
                result.row_started(row)
                self._hand_over((row, body, key, ticket, passed), loop)

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

    async def _shutdown(self) -> None:
        """After an interrupt that bypassed ``main``: stop what is left and close the result."""
        try:
            await self._cancel_tasks()
        finally:
            self._close(cancelled=True)

    def _close(self, *, cancelled: bool, not_sent: bool = False) -> None:
        """Mark the result finished and flush the cache. Idempotent."""
        self.result.lateness.stop()
        if not self.result.done:
            self.result.close(cancelled=cancelled, not_sent=not_sent)
        if self.cache is not None:
            self.cache.close()  # what finished survives an interrupt: a re-run sends only the rest

    def on_main_done(self, task: asyncio.Task[State]) -> None:
        """The main task ended, possibly before it ever ran (cancelled at once): close the result anyway."""
        self._close(cancelled=True)
        if not task.cancelled():
            task.exception()  # a failed background batch keeps its error on result.failure; don't log it

    async def _discover_model(self) -> str:
        try:
            return await first_chat_model(self.client)
        except RequestFailed as exc:
            if exc.unreachable:
                raise EndpointError(f"{exc}: check base_url / the provider, then run again") from None
            raise EndpointError(
                f"no model given, and {self.client.endpoint.host} did not list one ({exc}): "
                "pass model= (magic: -m MODEL), or check base_url"
            ) from None

    # -- one request ---------------------------------------------------------------------------------
    async def _request(self, row: RequestResult, body: dict[str, Any], key: str | None, ticket: Ticket,
                       passed: list[Gate]) -> None:
        """``passed``: the gates that let this request through (the dispatcher's, then the rest).

        Each attempt is sent from here, not from a helper coroutine: a reply resumes every frame it awaits
        through, and at thousands of replies a second those frames are a measurable share of the CPU."""
        result, client = self.result, self.client
        on_delta = (lambda delta: result.row_streamed(row, delta)) if self.options.stream else None
        completion = None
        replied: AttemptOutcome | None = None  # how the attempt that got a reply went
        errors = 0  # failed attempts that count against `retries` (a rate limit's waits do not)
        try:
            while True:
                row.attempts += 1
                ticket.attempt = row.attempts
                # Read each time: the first reply may have turned pacing on, a number set by hand the controller off.
                ticket.tokens = self._estimate(body) if self.pacer.active or self.adaptive is not None else 0
                gates = self.gates
                if row.attempts == 1:  # the dispatcher waited on those up to the limiter
                    gates = gates[gates.index(self.limiter) + 1 :]
                else:  # a gate taken out of the list since (the controller) is not asked again
                    passed[:] = [gate for gate in passed if gate in gates]
                if gates and not await self._pass(gates, ticket, passed):
                    row.status = CANCELLED  # a gate will never let it through
                    break
                if on_delta is not None:
                    row.begin_stream()
                for gate in passed:
                    gate.started(ticket)
                row.sent = result.now()
                sent = time.perf_counter()
                try:
                    completion = await client.complete(body, on_delta)
                except RequestFailed as exc:
                    if exc.kind not in WAIT:
                        errors += 1
                    outcome, delay = self._failed(row, exc, errors, ticket, passed)
                    if outcome.final:  # the row's last attempt
                        replied = outcome
                        break
                    await asyncio.sleep(delay)
                    continue
                replied = self._replied(completion, sent)
                break
            if completion is not None:
                fill_reply(row, completion, result.model, result.price, schema=self.options.schema)
                if self.options.schema is not None and client.older_dialect:
                    result.schema_form = JSON_OBJECT  # the server took only the older form: say so
        except asyncio.CancelledError:
            row.status = CANCELLED
            row.error_kind = row.status_code = None  # a wait it was in (a 429) is not how it ended
            replied = None
            raise
        except Exception as exc:  # a bug or an odd reply: this row's error, not a lost batch
            row.error, row.status = f"{type(exc).__name__}: {result.endpoint.redact(str(exc))}", ERROR
            completion = None
        finally:
            # A failed request is free; a reply without usage costs its worst case.
            cost = row.cost if row.cost is not None else ticket.worst if row.status == OK else 0.0
            outcome = replied or AttemptOutcome("cancelled")
            outcome.cost = cost
            self._finish(passed, ticket, outcome)
            result.row_finished(row)
        self._done(row)
        if key is not None:
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
            self._stop(EndpointError(stop_message(exc, result.endpoint, result.model, self.options.api_key_env)))
        elif exc.unreachable and not self._answered:
            self._stop(EndpointError(f"{exc}: check base_url / the provider, then run again"))
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
        if price is None or price.free or self._count_prompt is None:
            return 0.0
        return price.cost(self._count_prompt(body["messages"]), self.options.reply_bound)

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
                self._stop(exc)

    def _stop(self, error: BaseException) -> None:
        """End the whole batch with ``error`` (a refused key, an endpoint that is not there, a broken callback)."""
        if self._stop_error is None:
            self._stop_error = error
            if self.main_task is not None:
                self.main_task.cancel()
