"""The online run: a dispatcher that starts each request when the gates have room.

At most ``concurrency`` request tasks exist at once, so 100,000 prompts cost 100,000 small result
rows, not 100,000 tasks. Cancelling stops the dispatcher and every in-flight request, and keeps
the rows that finished. What to do after a failed attempt is nbtools.engine.retry's to decide.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from typing import Any, Generic

from nbtools.engine.cache import ReplyCache, SampleKeys
from nbtools.engine.cache import enabled_by_default as cache_on
from nbtools.engine.client import ChatClient, Completion, RequestFailed
from nbtools.engine.failures import WAIT
from nbtools.engine.gates.adaptive import AUTO_START, AdaptiveConcurrency
from nbtools.engine.gates.limiter import Limiter
from nbtools.engine.gates.pacing import Pacer, estimate_prompt_tokens
from nbtools.engine.gates.spending import SpendingGuard
from nbtools.engine.prepare import first_chat_model, price_batch
from nbtools.engine.prices import usd
from nbtools.engine.retry import FAIL, RETRY, STOP, WAIT_AGAIN, RetryPolicy
from nbtools.engine.rows import CANCELLED, ERROR, OK, RequestResult
from nbtools.engine.state import State
from nbtools.engine.stops import stop_message
from nbtools.engine.structured import form_for, read_output
from nbtools.engine.tokens import prompt_counter
from nbtools.errors import EndpointError
from nbtools.schemas import JSON_OBJECT

__all__ = ["OnlineRun", "OnResult"]

OnResult = Callable[[RequestResult], Any]
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
        self.adaptive = AdaptiveConcurrency(self.limiter, self.pacer, self._wants_slots) if auto else None
        self.policy = RetryPolicy(options.retries, options.max_wait)
        self._left = len(result.rows)  # rows the dispatcher has not handled yet
        self._paced = False  # did the rate budget hold back the last start?
        use_cache = options.cache if options.cache is not None else (not result.endpoint.simulated and cache_on())
        self.cache = ReplyCache() if use_cache else None
        self.client = ChatClient(result.endpoint, timeout=options.timeout)
        self.on_result = on_result
        self.tasks: set[asyncio.Task[None]] = set()
        self.main_task: asyncio.Task[State] | None = None
        self._followers: dict[str, list[RequestResult]] = {}  # with dedupe: identical requests wait on the first
        self._typical_completion = options.max_tokens or 256  # token estimate until usage is seen
        self._cancel_requested = False
        self._stop_error: BaseException | None = None
        self._answered = False  # has the endpoint answered anything yet?
        self.guard = SpendingGuard(options.max_cost) if options.max_cost is not None else None
        self._count_prompt: Callable[[list[Any]], int] | None = None
        result.attach(self)

    # -- Control: what the result asks of us ---------------------------------------------------------
    @property
    def limit(self) -> int:
        return self.limiter.limit

    def set_limit(self, value: int) -> None:
        """A number set by hand: the user takes over from any controller."""
        self.limiter.limit = value
        self.adaptive = None

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
        """Start each row's request when the limiter (and the rate budget) has room."""
        result, options, cache = self.result, self.options, self.cache
        if result.model is None:
            result.model = await self._discover_model()
        model = result.model
        price_batch(result, model)
        guard = self.guard
        if guard is not None:  # each request's worst case needs its prompt tokens
            self._count_prompt = prompt_counter(model)
        loop = asyncio.get_running_loop()
        rows, url, repeat = result.rows, result.endpoint.base_url, options.repeat
        form = result.schema_form = form_for(result.endpoint) if options.schema is not None else None
        samples = SampleKeys(url, repeat, options.dedupe) if cache is not None or options.dedupe else None
        for first in range(0, len(rows), CHUNK):
            chunk = rows[first : first + CHUNK]
            bodies = [options.request_body(options.messages(row.prompt), model, form) for row in chunk]
            keys: list[str | None] = [None] * len(chunk)
            hits: dict[str, Completion] = {}
            if samples is not None:
                keys = [samples.key(row.index, body) for row, body in zip(chunk, bodies)]
                if cache is not None:  # one query per chunk, not one per row
                    hits = cache.get_many(keys)  # type: ignore[arg-type]
            for row, body, key in zip(chunk, bodies, keys):
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
                if self.pacer.active:  # before taking a slot: the limit counts requests out, not waiting
                    self._paced = await self.pacer.wait(self._estimate(body))
                # Room under the cap first, then a slot: a request waiting for a slot to send again (after
                # a 429) must be able to settle, and let the cap admit the next one.
                worst = self._worst_case(body) if guard is not None else 0.0
                if guard is not None and not await guard.admit(worst):
                    result.capped = True
                    return  # the cap is reached: what is left is "not sent"
                try:
                    await self.limiter.acquire()
                except BaseException:  # cancelled while waiting for a slot: give the reservation back
                    if guard is not None:
                        guard.settle(worst, 0.0)
                    raise
                result.row_started(row)
                task = loop.create_task(self._request(row, body, key, worst))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)

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
    async def _request(self, row: RequestResult, body: dict[str, Any], key: str | None, worst: float = 0.0) -> None:
        result = self.result
        on_delta = (lambda delta: result.row_streamed(row, delta)) if self.options.stream else None
        completion = None
        holding = True  # the limiter slot taken for us by the dispatcher
        errors = 0  # failed attempts that count against `retries` (a rate limit's waits do not)
        try:
            while True:
                row.attempts += 1
                if on_delta is not None:
                    row.begin_stream()
                try:
                    completion = await self._attempt(row, body, on_delta)
                    break
                except RequestFailed as exc:
                    self._answered = self._answered or not exc.unreachable
                    row.status_code, row.error_kind, row.partial = exc.status, exc.kind, exc.partial
                    if exc.kind in WAIT:
                        row.waits += 1
                    else:
                        errors += 1
                    decision = self.policy.decide(exc.kind, errors=errors, waits=row.waits, retry_after=exc.retry_after)
                    if decision.action == WAIT_AGAIN:
                        self._pushed_back(exc, row)
                        # Wait without a slot: the limit counts requests the server is handling.
                        self.limiter.release()
                        holding = False
                        await asyncio.sleep(decision.delay)
                        await self.limiter.acquire()
                        holding = True
                        continue
                    if decision.action == RETRY:
                        await asyncio.sleep(decision.delay)
                        continue
                    row.error = str(exc) + (f" (after {row.attempts} attempts)" if row.attempts > 1 else "")
                    if decision.why:
                        row.error += f"; {decision.why}"
                    row.status = ERROR
                    if decision.action == STOP:
                        self._stop(EndpointError(stop_message(exc, result.endpoint, result.model, self.options.api_key_env)))
                    elif exc.unreachable and not self._answered:
                        self._stop(EndpointError(f"{exc}: check base_url / the provider, then run again"))
                    assert decision.action in (FAIL, STOP)
                    break
            if completion is not None:
                self._fill(row, completion)
        except asyncio.CancelledError:
            row.status = CANCELLED
            row.error_kind = row.status_code = None  # a wait it was in (a 429) is not how it ended
            raise
        except Exception as exc:  # a bug or an odd reply: this row's error, not a lost batch
            row.error, row.status = f"{type(exc).__name__}: {result.endpoint.redact(str(exc))}", ERROR
            completion = None
        finally:
            if holding:
                self.limiter.release()
            result.row_finished(row)
            if self.guard is not None:  # a failed request is free; a reply without usage costs its worst case
                self.guard.settle(worst, row.cost if row.cost is not None else worst if row.status == OK else 0.0)
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

    async def _attempt(self, row: RequestResult, body: dict[str, Any], on_delta: Callable[[str], None] | None) -> Completion:
        """One try: wait for the rate budgets, send, and tell the controllers how it went."""
        pacer, adaptive = self.pacer, self.adaptive  # read each time: setting a number by hand turns it off
        estimate = self._estimate(body) if pacer.active or adaptive is not None else 0
        if pacer.active and row.attempts > 1:  # the dispatcher paced the first attempt
            await pacer.wait(estimate)
        mark = (0.0, 0.0)
        if adaptive is not None:  # the server's own x-ratelimit-remaining-* budget
            while (wait := adaptive.budget.take(estimate)) > 0:
                await asyncio.sleep(wait)
            mark = adaptive.budget.mark()
        generation = adaptive.generation if adaptive is not None else 0
        row.sent = self.result.now()
        sent = time.perf_counter()
        try:
            completion = await self.client.complete(body, on_delta)
        except RequestFailed as exc:
            if adaptive is not None and exc.kind in WAIT:
                adaptive.on_overload(generation, exc.headers, mark)
            raise
        self._answered = True
        self.policy.replied()
        if adaptive is not None:
            adaptive.on_success(time.perf_counter() - sent, completion.headers, mark, completion.headers_at)
        if pacer.active and completion.completion_tokens is not None:
            self._typical_completion = completion.completion_tokens
            pacer.settle(estimate, (completion.prompt_tokens or 0) + completion.completion_tokens)
        return completion

    def _pushed_back(self, exc: RequestFailed, row: RequestResult) -> None:
        """A 429/503: note where it happened, and let a fixed limit yield until the pressure is gone."""
        if self.result.refused_at is None:
            self.result.refused_at = self.limiter.active
        if self.adaptive is None and self.options.concurrency != "auto":
            # A fixed concurrency is a ceiling, not a promise: drop and climb back, never above it.
            self.adaptive = AdaptiveConcurrency(self.limiter, self.pacer, self._wants_slots,
                                                ceiling=self.limiter.limit, fixed=True)
            self.adaptive.on_overload(0, exc.headers, (0.0, 0.0))

    def _worst_case(self, body: dict[str, Any]) -> float:
        price = self.result.price
        if price is None or price.free or self._count_prompt is None:
            return 0.0
        return price.cost(self._count_prompt(body["messages"]), self.options.reply_bound)

    def _wants_slots(self) -> bool:
        """Would more slots be used now? Rows not dispatched yet, or rows waiting to send again."""
        return (self._left > 0 or self.limiter.waiting > 0) and not self._paced

    def _estimate(self, body: dict[str, Any]) -> int:
        return estimate_prompt_tokens(body["messages"]) + self._typical_completion

    def _fill(self, row: RequestResult, completion: Completion) -> None:
        model = self.result.model
        row.text = completion.text
        # Share the batch's model string instead of keeping 100,000 equal copies.
        row.model = model if completion.model in (None, model) else completion.model
        row.prompt_tokens = completion.prompt_tokens
        row.completion_tokens = completion.completion_tokens
        row.finish_reason = completion.finish_reason
        row.error = row.error_kind = row.status_code = row.partial = None  # an earlier attempt's failure is history
        row.status = OK
        row.cached_tokens = completion.cached_tokens
        price = self.result.price  # cost from the usage the server returned
        if price is not None:
            if completion.prompt_tokens is not None and completion.completion_tokens is not None:
                row.cost = price.cost(completion.prompt_tokens, completion.completion_tokens, completion.cached_tokens)
            elif price.free:
                row.cost = 0.0  # no usage, but nothing costs anything here
        if self.options.schema is not None:
            read_output(row, self.options.schema, completion)
            if self.client.older_dialect:
                self.result.schema_form = JSON_OBJECT

    def _answer(self, row: RequestResult, completion: Completion | None, *, cached: bool,
                failed: RequestResult | None = None) -> None:
        """A row answered without a request of its own: from the cache or an identical request."""
        row.started = self.result.now()
        row.cached = cached
        if completion is not None:
            self._fill(row, completion)
            row.cost = 0.0  # no request was made for it
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
