"""Running a batch: a dispatcher that starts each request when the limiter has room.

At most ``concurrency`` request tasks exist at once, so 100,000 prompts cost 100,000 small result
rows, not 100,000 tasks. Cancelling stops the dispatcher and every in-flight request, and keeps
the rows that finished.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterable
from typing import Any

from .client import ChatClient, RequestFailed
from .endpoints import Endpoint, resolve_endpoint
from .blocking import run_blocking
from .errors import BatchInterrupted, ConfigError, EndpointError
from .limiter import Limiter
from .options import BatchOptions, Prompt, normalize_prompts
from .results import CANCELLED, ERROR, OK, RUNNING, BatchResult, RequestResult
from .retry import backoff_delay

__all__ = ["abatch", "batch", "start"]

OnResult = Callable[[RequestResult], Any]
_announced_sim = False


class _Run:
    """One running batch. Its BatchResult is the public face; this is the machinery behind it."""

    def __init__(self, result: BatchResult, on_result: OnResult | None) -> None:
        self.result = result
        self.options = result.options
        self.limiter = Limiter(self.options.concurrency)
        self.client = ChatClient(result.endpoint, timeout=self.options.timeout)
        self.on_result = on_result
        self.tasks: set[asyncio.Task[None]] = set()
        self.main_task: asyncio.Task[BatchResult] | None = None
        self._cancel_requested = False
        self._callback_error: BaseException | None = None
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
        try:
            async with self.client:
                if result.model is None:
                    result.model = await self._discover_model()
                for row in result.rows:
                    await self.limiter.acquire()
                    row.started = result._now()
                    row.status = RUNNING
                    result.active[row.index] = row
                    task = asyncio.get_running_loop().create_task(self._request(row))
                    self.tasks.add(task)
                    task.add_done_callback(self.tasks.discard)
                while self.tasks:
                    await asyncio.wait(list(self.tasks))
        except asyncio.CancelledError:
            await self._shutdown()
            if self._callback_error is not None:
                raise self._callback_error
            if self._cancel_requested and self.main_task is not None:
                if sys.version_info >= (3, 11):
                    self.main_task.uncancel()  # a cancel we asked for is not the caller's cancel
                return result
            raise
        except BaseException as exc:
            result.failure = exc
            await self._shutdown()
            raise
        result._finish()
        return result

    async def _shutdown(self) -> None:
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if not self.result.done:
            self.result._finish(cancelled=True)

    async def _discover_model(self) -> str:
        try:
            models = await self.client.list_models()
        except RequestFailed as exc:
            raise EndpointError(f"no model given and {exc}: pass model= (magic: -m MODEL)") from None
        if not models:
            raise EndpointError(f"no model given and {self.client.endpoint.host} lists none: pass model= (magic: -m MODEL)")
        return models[0]

    async def _request(self, row: RequestResult) -> None:
        options, result, client = self.options, self.result, self.client
        body = options.request_body(options.messages(row.prompt), result.model or "")
        on_delta = _streamer(row, result) if options.stream else None
        try:
            while True:
                row.attempts += 1
                if on_delta is not None:
                    row._parts, row.first_token = [], None
                try:
                    completion = await client.complete(body, on_delta)
                except RequestFailed as exc:
                    if exc.retryable and row.attempts <= options.retries:
                        await asyncio.sleep(backoff_delay(row.attempts, exc.retry_after))
                        continue
                    row.error = str(exc) + (f" (after {row.attempts} attempts)" if row.attempts > 1 else "")
                    row.status = ERROR
                    break
                row.text = completion.text
                # Share the batch's model string instead of keeping 100,000 equal copies.
                row.model = result.model if completion.model in (None, result.model) else completion.model
                row.prompt_tokens = completion.prompt_tokens
                row.completion_tokens = completion.completion_tokens
                row.finish_reason = completion.finish_reason
                row.status = OK
                break
        except asyncio.CancelledError:
            row.status = CANCELLED
            raise
        finally:
            row._parts = None
            row.finished = result._now()
            self.limiter.release()
            del result.active[row.index]
        result.completed_count += 1
        result.recent.append(row)
        if self.on_result is not None:
            try:
                self.on_result(row)
            except Exception as exc:  # a broken callback stops the batch and surfaces, rows kept
                if self._callback_error is None:
                    self._callback_error = exc
                    if self.main_task is not None:
                        self.main_task.cancel()


def _streamer(row: RequestResult, result: BatchResult) -> Callable[[str], None]:
    now = result._now

    def on_delta(delta: str) -> None:
        result.stream_chunks += 1
        if row.first_token is None:
            row.first_token = now()
        assert row._parts is not None
        row._parts.append(delta)

    return on_delta


def prepare(prompts: Prompt | Iterable[Prompt], *, api_key: str | None = None, **options: Any) -> BatchResult:
    """Validate everything and build the (not yet started) result. Raises ConfigError on bad input."""
    try:
        opts = BatchOptions(**options)
    except TypeError as exc:  # an unknown keyword
        raise ConfigError(f"{exc}: see help(nbtools.batch) for the options") from None
    items = normalize_prompts(prompts)
    endpoint = resolve_endpoint(opts.provider, opts.base_url, api_key, opts.api_key_env)
    _announce(endpoint, opts)
    repeat = opts.repeat
    rows = [RequestResult(i, items[i // repeat]) for i in range(len(items) * repeat)]
    return BatchResult(rows, opts, endpoint, opts.model or endpoint.default_model)


def _announce(endpoint: Endpoint, options: BatchOptions) -> None:
    global _announced_sim
    if endpoint.simulated and options.provider is None and not _announced_sim:
        _announced_sim = True
        print(f"nbtools: {endpoint.note}", file=sys.stderr)


def start(prompts: Prompt | Iterable[Prompt], *, on_result: OnResult | None = None, **options: Any) -> BatchResult:
    """Start a batch on the running event loop and return its live BatchResult at once.

    ``await`` the result for the end; ``result.cancel()`` stops it. Same options as ``batch``.
    """
    loop = asyncio.get_running_loop()
    result = prepare(prompts, **options)
    run = _Run(result, on_result)
    run.main_task = loop.create_task(run.main())
    run.main_task.add_done_callback(_consume_exception)
    return result


async def abatch(prompts: Prompt | Iterable[Prompt], *, on_result: OnResult | None = None, **options: Any) -> BatchResult:
    """Send every prompt concurrently (at most ``concurrency`` at once) and return the results in order.

    Options: model, concurrency, repeat, system, temperature, max_tokens, stream, timeout, retries,
    params (extra request fields), provider, base_url, api_key_env (or api_key), on_result (called
    with each finished row). Cancelling the awaiting task cancels the batch within a second.
    """
    result = start(prompts, on_result=on_result, **options)
    assert result._controller is not None
    return await result._controller.main_task


def batch(prompts: Prompt | Iterable[Prompt], *, on_result: OnResult | None = None, **options: Any) -> BatchResult:
    """Blocking ``abatch``: works in a script and inside a running loop (a notebook cell).

    Ctrl-C / the kernel's stop button cancels the batch and raises BatchInterrupted, whose
    ``.result`` holds the finished rows.
    """
    result = prepare(prompts, **options)
    run = _Run(result, on_result)

    async def main() -> BatchResult:
        run.main_task = asyncio.current_task()  # type: ignore[assignment]
        return await run.main()

    try:
        return run_blocking(main(), cleanup=run.wait_closed)
    except KeyboardInterrupt:
        raise BatchInterrupted(result) from None


def _consume_exception(task: asyncio.Task[BatchResult]) -> None:
    # A background batch that failed keeps its error on result.failure; don't log "never retrieved".
    if not task.cancelled():
        task.exception()


