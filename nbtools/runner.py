"""Running a batch: a dispatcher that starts each request when the limiter has room.

At most ``concurrency`` request tasks exist at once, so 100,000 prompts cost 100,000 small result
rows, not 100,000 tasks. Cancelling stops the dispatcher and every in-flight request, and keeps
the rows that finished.
"""

from __future__ import annotations

import asyncio
import random
import re
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from .adaptive import AUTO_START, AdaptiveConcurrency
from .blocking import run_blocking
from .cache import ReplyCache, cache_key
from .cache import enabled_by_default as cache_on
from .client import ChatClient, Completion, RequestFailed
from .endpoints import resolve_endpoint
from .errors import BatchInterrupted, ConfigError, EndpointError, NbtoolsError
from .limiter import Limiter
from .options import BatchOptions, Prompt, normalize_prompts
from .pacing import Pacer, estimate_prompt_tokens
from .results import CANCELLED, ERROR, OK, RUNNING, BatchResult, RequestResult
from .retry import MAX_RETRY_AFTER, backoff_delay

__all__ = ["abatch", "batch", "start"]

OnResult = Callable[[RequestResult], Any]
CHUNK = 500  # rows prepared (bodies, cache keys, one cache query) at a time
OVERLOAD_RETRIES = 10  # with concurrency="auto": how many 429/503 a request may meet before it fails
_announced_sim = False
_NOT_CHAT = re.compile(r"embed|rerank|whisper|tts|dall-e|moderation|bge-|minilm", re.IGNORECASE)


class _Run:
    """One running batch. Its BatchResult is the public face; this is the machinery behind it."""

    def __init__(self, result: BatchResult, on_result: OnResult | None) -> None:
        self.result = result
        self.options = options = result.options
        auto = options.concurrency == "auto"
        self.limiter = Limiter(AUTO_START if auto else options.concurrency)  # type: ignore[arg-type]
        self.pacer = Pacer(options.rpm, options.tpm)
        self.adaptive = AdaptiveConcurrency(self.limiter, self.pacer, self._wants_slots) if auto else None
        self._left = len(result.rows)  # rows the dispatcher has not handled yet
        self._paced = False  # did the rate budget hold back the last start?
        use_cache = options.cache if options.cache is not None else (not result.endpoint.simulated and cache_on())
        self.cache = ReplyCache() if use_cache else None
        self.client = ChatClient(result.endpoint, timeout=options.timeout)
        self.on_result = on_result
        self.tasks: set[asyncio.Task[None]] = set()
        self.main_task: asyncio.Task[BatchResult] | None = None
        self._followers: dict[str, list[RequestResult]] = {}  # identical requests waiting on the first
        self._typical_completion = options.max_tokens or 256  # token estimate until usage is seen
        self._cancel_requested = False
        self._stop_error: BaseException | None = None
        self._answered = False  # has the endpoint answered anything yet?
        result._controller = self

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

    async def main(self) -> BatchResult:
        result = self.result
        result._t0 = time.perf_counter()  # the clock starts now: setting up a display is not queueing
        try:
            async with self.client:
                try:
                    await self._dispatch()
                    while self.tasks:
                        await asyncio.wait(list(self.tasks))
                finally:
                    await self._cancel_tasks()  # while the session is still open
        except asyncio.CancelledError:
            stop = self._stop_error
            if stop is not None:  # we stopped it: an endpoint that is not there, a broken callback
                result.failure = stop
                if isinstance(stop, EndpointError):
                    stop.result = result  # what finished is not lost with the batch
                self._close(cancelled=False)
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
        self._close(cancelled=False)
        return result

    async def _dispatch(self) -> None:
        """Start each row's request when the limiter (and the rate budget) has room."""
        result, options, cache = self.result, self.options, self.cache
        if result.model is None:
            result.model = await self._discover_model()
        model = result.model
        loop = asyncio.get_running_loop()
        rows, url, repeat = result.rows, result.endpoint.base_url, options.repeat
        for first in range(0, len(rows), CHUNK):
            chunk = rows[first : first + CHUNK]
            bodies = [options.request_body(options.messages(row.prompt), model) for row in chunk]
            keys: list[str | None] = [None] * len(chunk)
            hits: dict[str, Completion] = {}
            if cache is not None:  # one query per chunk, not one per row
                keys = [cache_key(url, body, row.index % repeat) for row, body in zip(chunk, bodies)]
                hits = cache.get_many(keys)  # type: ignore[arg-type]
            for row, body, key in zip(chunk, bodies, keys):
                self._left -= 1
                if key is not None:
                    if key in hits:
                        self._finish_row(row, hits[key], cached=True)
                        continue
                    if key in self._followers:  # an identical request is already on its way
                        self._followers[key].append(row)
                        continue
                    self._followers[key] = []
                if self.pacer.active:  # before taking a slot: the limit counts requests out, not waiting
                    self._paced = await self.pacer.wait(self._estimate(body))
                await self.limiter.acquire()
                row.started = result._now()
                row.status = RUNNING
                result.active[row.index] = row
                task = loop.create_task(self._request(row, body, key))
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

    def _close(self, *, cancelled: bool) -> None:
        """Mark the result finished (rows not done: cancelled) and flush the cache. Idempotent."""
        if not self.result.done:
            self.result._finish(cancelled=cancelled)
        if self.cache is not None:
            self.cache.close()  # what finished survives an interrupt: a re-run sends only the rest

    def on_main_done(self, task: asyncio.Task[BatchResult]) -> None:
        """The main task ended, possibly before it ever ran (cancelled at once): close the result anyway."""
        self._close(cancelled=True)
        if not task.cancelled():
            task.exception()  # a failed background batch keeps its error on result.failure; don't log it

    async def _discover_model(self) -> str:
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
        # Local servers list embedding and speech models too: take the first that can chat.
        return next((m for m in models if not _NOT_CHAT.search(m)), models[0])

    async def _request(self, row: RequestResult, body: dict[str, Any], key: str | None) -> None:
        options, result, client, pacer = self.options, self.result, self.client, self.pacer
        on_delta = _streamer(row, result) if options.stream else None
        estimate = self._estimate(body) if pacer.active or self.adaptive is not None else 0
        overloads = 0  # with concurrency="auto", 429/503 are signals to slow down, not failures
        completion = None
        holding = True  # the limiter slot taken for us by the dispatcher
        try:
            while True:
                row.attempts += 1
                if on_delta is not None:
                    row._parts, row.first_token = [], None
                if pacer.active and row.attempts > 1:  # the dispatcher paced the first attempt
                    await pacer.wait(estimate)
                adaptive = self.adaptive  # read each time: setting a number by hand turns it off
                mark = (0.0, 0.0)
                if adaptive is not None:  # the server's own x-ratelimit-remaining-* budget
                    while (wait := adaptive.budget.take(estimate)) > 0:
                        await asyncio.sleep(wait)
                    mark = adaptive.budget.mark()
                generation = adaptive.generation if adaptive is not None else 0
                sent = time.perf_counter()
                try:
                    completion = await client.complete(body, on_delta)
                except RequestFailed as exc:
                    self._answered = self._answered or not exc.unreachable
                    wait_ok = exc.retry_after is None or exc.retry_after <= MAX_RETRY_AFTER
                    if adaptive is not None and exc.status in (429, 503) and overloads < OVERLOAD_RETRIES and wait_ok:
                        overloads += 1
                        adaptive.on_overload(generation, exc.headers, mark)
                        # Wait without a slot: the limit counts requests the server is handling.
                        self.limiter.release()
                        holding = False
                        await asyncio.sleep(exc.retry_after if exc.retry_after is not None else overload_delay(overloads))
                        await self.limiter.acquire()
                        holding = True
                        continue
                    if exc.retryable and row.attempts - overloads <= options.retries:
                        await asyncio.sleep(backoff_delay(row.attempts - overloads, exc.retry_after))
                        continue
                    row.error = str(exc) + (f" (after {row.attempts} attempts)" if row.attempts > 1 else "")
                    if not wait_ok:
                        row.error += f" (the server asked to wait {exc.retry_after:.0f} s)"
                    row.status = ERROR
                    if exc.unreachable and not self._answered:
                        self._stop(EndpointError(f"{exc}: check base_url / the provider, then run again"))
                    break
                self._answered = True
                if (adaptive := self.adaptive) is not None:
                    adaptive.on_success(time.perf_counter() - sent, completion.headers, mark, completion.headers_at)
                if pacer.active and completion.completion_tokens is not None:
                    self._typical_completion = completion.completion_tokens
                    pacer.settle(estimate, (completion.prompt_tokens or 0) + completion.completion_tokens)
                self._fill(row, completion)
                break
        except asyncio.CancelledError:
            row.status = CANCELLED
            raise
        except Exception as exc:  # a bug or an odd reply: this row's error, not a lost batch
            row.error, row.status = f"{type(exc).__name__}: {self.result.endpoint.redact(str(exc))}", ERROR
            completion = None
        finally:
            row._parts = None
            row.finished = result._now()
            if holding:
                self.limiter.release()
            del result.active[row.index]
        self._done(row)
        if key is not None:
            if completion is not None and self.cache is not None:
                try:
                    self.cache.put(key, completion)
                except Exception as exc:  # a full disk or a locked file must not cost the batch its rows
                    print(f"nbtools: the reply cache stopped working ({exc}); going on without it", file=sys.stderr)
                    self.cache = None
            for follower in self._followers.pop(key, ()):
                self._finish_row(follower, completion, cached=True, error=row.error)

    def _wants_slots(self) -> bool:
        return self._left > 0 and not self._paced

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
        row.status = OK

    def _finish_row(self, row: RequestResult, completion: Completion | None, *, cached: bool, error: str | None = None) -> None:
        """A row answered without a request of its own: from the cache or an identical request."""
        row.started = row.finished = self.result._now()
        row.cached = cached
        if completion is not None:
            self._fill(row, completion)
        else:
            row.error, row.status = error, ERROR
        self._done(row)

    def _done(self, row: RequestResult) -> None:
        result = self.result
        result.completed_count += 1
        result.recent.append(row)
        if self.on_result is not None:
            try:
                self.on_result(row)
            except Exception as exc:  # a broken callback stops the batch and surfaces, rows kept
                self._stop(exc)

    def _stop(self, error: BaseException) -> None:
        """End the whole batch with ``error`` (a broken callback, an endpoint that is not there)."""
        if self._stop_error is None:
            self._stop_error = error
            if self.main_task is not None:
                self.main_task.cancel()


def overload_delay(attempt: int) -> float:
    """A short, jittered pause after a 429/503 without Retry-After: the limit has already dropped."""
    return min(1.0, 0.05 * 2 ** (attempt - 1)) * (0.5 + random.random())


def _streamer(row: RequestResult, result: BatchResult) -> Callable[[str], None]:
    now = result._now

    def on_delta(delta: str) -> None:
        result.stream_chunks += 1
        if row.first_token is None:
            row.first_token = now()
        assert row._parts is not None
        row._parts.append(delta)

    return on_delta


def prepare(prompts: Prompt | Iterable[Prompt], *, api_key: str | None = None, on_result: OnResult | None = None,
            **options: Any) -> BatchResult:
    """Validate everything and build the (not yet started) result. Raises ConfigError on bad input."""
    if on_result is not None and not callable(on_result):
        raise ConfigError(f"on_result={on_result!r} must be a function taking one finished row: e.g. on_result=print")
    try:
        opts = BatchOptions(**options)
    except TypeError as exc:  # an unknown keyword
        raise ConfigError(f"{exc}: see help(nbtools.batch) for the options") from None
    items = normalize_prompts(prompts)
    endpoint = resolve_endpoint(opts.provider, opts.base_url, api_key, opts.api_key_env)
    repeat = opts.repeat
    rows = [RequestResult(i, items[i // repeat]) for i in range(len(items) * repeat)]
    return BatchResult(rows, opts, endpoint, opts.model or endpoint.default_model)


def _make_run(result: BatchResult, on_result: OnResult | None) -> Any:
    """Issue 15: via="batch" runs through the provider's Batch API, with the same controller interface."""
    if result.options.via == "batch":
        from .batchapi import BatchJobRun

        return BatchJobRun(result, on_result)
    return _Run(result, on_result)


def _announce(result: BatchResult) -> None:
    """Say once that replies are simulated; the magic and the panel say it in their header instead."""
    global _announced_sim
    endpoint = result.endpoint
    fallback = result.options.provider is None and result.options.base_url is None
    if endpoint.simulated and fallback and not _announced_sim:
        _announced_sim = True
        print(f"nbtools: {endpoint.note}", file=sys.stderr)


def start(prompts: Prompt | Iterable[Prompt], *, on_result: OnResult | None = None, **options: Any) -> BatchResult:
    """Start a batch on the running event loop and return its live BatchResult at once.

    ``await`` the result for the end; ``result.cancel()`` stops it. Same options as ``batch``.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        raise NbtoolsError("start() needs a running event loop (a notebook cell): in a script, use batch()") from None
    result = prepare(prompts, on_result=on_result, **options)
    run = _make_run(result, on_result)
    run.main_task = loop.create_task(run.main())
    run.main_task.add_done_callback(run.on_main_done)
    return result


async def abatch(prompts: Prompt | Iterable[Prompt], *, on_result: OnResult | None = None, **options: Any) -> BatchResult:
    """Send every prompt concurrently (at most ``concurrency`` at once) and return the results in order.

    Options: model, concurrency, repeat, system, temperature, max_tokens, stream, timeout, retries,
    params (extra request fields), provider, base_url, api_key_env (or api_key), on_result (called
    with each finished row). Cancelling the awaiting task cancels the batch within a second.
    """
    result = start(prompts, on_result=on_result, **options)
    _announce(result)
    assert result._controller is not None
    return await result._controller.main_task


def batch(prompts: Prompt | Iterable[Prompt], *, on_result: OnResult | None = None, **options: Any) -> BatchResult:
    """Blocking ``abatch``: works in a script and inside a running loop (a notebook cell).

    Ctrl-C / the kernel's stop button cancels the batch and raises BatchInterrupted, whose
    ``.result`` holds the finished rows.
    """
    result = prepare(prompts, on_result=on_result, **options)
    _announce(result)
    run = _make_run(result, on_result)

    async def main() -> BatchResult:
        run.main_task = asyncio.current_task()  # type: ignore[assignment]
        run.main_task.add_done_callback(run.on_main_done)  # type: ignore[union-attr]
        return await run.main()

    try:
        return run_blocking(main(), cleanup=run.wait_closed)
    except BatchInterrupted:
        raise
    except KeyboardInterrupt:
        raise BatchInterrupted(result) from None
