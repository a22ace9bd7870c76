"""What users call to run a batch: batch, abatch, start and models.

This is the one place that chooses how a batch runs: online (nbtools._engine.online), through the
provider's Batch API (nbtools._engine.batchapi) or as a dry run (nbtools._dry_run); with ``models=[...]``,
each endpoint is chosen for on its own and nbtools._several drives them together.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable
from typing import Any, Literal, overload

from nbtools._base.errors import BatchInterrupted, ConfigError, EndpointError, NbtoolsError
from nbtools._base.options import options_doc
from nbtools._base.prompts import Prompt
from nbtools._dry_run import DryRun, DryRuns, dry_run
from nbtools._engine.batchapi.run import BatchAPIRun
from nbtools._engine.blocking import run_blocking
from nbtools._engine.client import ChatClient, RequestFailed
from nbtools._engine.endpoints import Endpoint, resolve_endpoint
from nbtools._engine.online import OnlineRun, OnResult
from nbtools._engine.prepare import prepare_batch
from nbtools._reask import use_sender
from nbtools._result import BatchResult
from nbtools._several import MultiModelResult, MultiRun, prepare_models

_announced_sim = False


def prepare(prompts: Prompt | Iterable[Prompt], *, api_key: str | None = None, on_result: OnResult | None = None,
            **options: Any) -> BatchResult:
    """Validate everything and build the (not yet started) result. Raises ConfigError on bad input."""
    if options.get("models") is not None:
        return prepare_models(prompts, api_key=api_key, on_result=on_result, **options)
    return prepare_batch(prompts, BatchResult, api_key=api_key, on_result=on_result, **options)


def _announce(result: BatchResult) -> None:
    """Say once that replies are simulated; the magic and the panel say it in their header instead."""
    global _announced_sim
    for part in result.by_model.values() if isinstance(result, MultiModelResult) else (result,):
        endpoint = part.endpoint
        fallback = part.options.provider is None and part.options.base_url is None
        if endpoint.simulated and fallback and not _announced_sim:
            _announced_sim = True
            print(f"nbtools: {endpoint.note}", file=sys.stderr)


Run = OnlineRun[BatchResult] | BatchAPIRun[BatchResult] | MultiRun


def _make_run(result: BatchResult, on_result: OnResult | None) -> Run:
    """via="batch" runs through the provider's Batch API, behind the same Control; several models, one run each."""
    if isinstance(result, MultiModelResult):
        return MultiRun(result, [_make_run(part, on_result) for part in result.by_model.values()])
    if result.options.via == "batch":
        return BatchAPIRun(result, on_result)
    return OnlineRun(result, on_result)


def _launch(prompts: Prompt | Iterable[Prompt], on_result: OnResult | None, options: dict[str, Any]) -> Run:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        raise NbtoolsError("start() needs a running event loop (a notebook cell): in a script, use batch()") from None
    if options.get("dry_run"):
        raise ConfigError("start() runs the batch: for a dry run use nbtools.dry_run(...) or batch(..., dry_run=True)")
    run = _make_run(prepare(prompts, on_result=on_result, **options), on_result)
    run.main_task = loop.create_task(run.main())
    run.main_task.add_done_callback(run.on_main_done)
    return run


def start(prompts: Prompt | Iterable[Prompt], *, on_result: OnResult | None = None, **options: Any) -> BatchResult:
    """Start a batch on the running event loop and return its live BatchResult at once.

    ``await result`` waits for the end (and raises what stopped the batch); ``result.cancel()``
    stops it. Same options as ``batch``.
    """
    return _launch(prompts, on_result, options).result


@overload
async def abatch(prompts: Prompt | Iterable[Prompt], *, dry_run: Literal[True], **options: Any) -> DryRun | DryRuns: ...
@overload
async def abatch(prompts: Prompt | Iterable[Prompt], *, on_result: OnResult | None = None, **options: Any) -> BatchResult: ...
async def abatch(prompts: Prompt | Iterable[Prompt], *, on_result: OnResult | None = None,
                 **options: Any) -> BatchResult | DryRun | DryRuns:
    """Send every prompt concurrently (at most ``concurrency`` at once) and return the results in order.

    ``on_result`` is called with each finished row; ``api_key=`` is accepted, ``api_key_env=`` is
    better. Cancelling the awaiting task cancels the batch within a second. With ``dry_run=True``
    nothing is sent: a DryRun says what the batch would cost.
    """
    if options.get("dry_run"):
        return dry_run(prompts, **options)
    run = _launch(prompts, on_result, options)
    _announce(run.result)
    assert run.main_task is not None
    return await run.main_task  # awaiting the task itself: cancelling us cancels the batch


@overload
def batch(prompts: Prompt | Iterable[Prompt], *, dry_run: Literal[True], **options: Any) -> DryRun | DryRuns: ...
@overload
def batch(prompts: Prompt | Iterable[Prompt], *, on_result: OnResult | None = None, **options: Any) -> BatchResult: ...
def batch(prompts: Prompt | Iterable[Prompt], *, on_result: OnResult | None = None,
          **options: Any) -> BatchResult | DryRun | DryRuns:
    """Blocking ``abatch``: works in a script and inside a running loop (a notebook cell).

    Ctrl-C / the kernel's stop button cancels the batch and raises BatchInterrupted, whose
    ``.result`` holds the finished rows. A batch-wide failure (a refused key, a model that is not
    there) raises EndpointError, whose ``.result`` holds the rows.
    """
    if options.get("dry_run"):
        return dry_run(prompts, **options)
    result = prepare(prompts, on_result=on_result, **options)
    _announce(result)
    run = _make_run(result, on_result)

    async def main() -> BatchResult:
        run.main_task = asyncio.current_task()
        run.main_task.add_done_callback(run.on_main_done)  # type: ignore[union-attr]
        return await run.main()

    try:
        return run_blocking(main(), cleanup=run.wait_closed)
    except BatchInterrupted:
        raise
    except KeyboardInterrupt:
        raise BatchInterrupted(result) from None


async def amodels(provider: str | None = None, base_url: str | None = None, api_key_env: str | None = None) -> list[str]:
    """The model names an endpoint lists (``GET /models``)."""
    endpoint: Endpoint = resolve_endpoint(provider, base_url, None, api_key_env)
    async with ChatClient(endpoint, timeout=10) as client:
        try:
            return await client.list_models()
        except RequestFailed as exc:
            raise EndpointError(str(exc)) from None


def models(provider: str | None = None, base_url: str | None = None, api_key_env: str | None = None) -> list[str]:
    """Blocking ``amodels``: e.g. ``nbtools.models(provider="openai")``."""
    return run_blocking(amodels(provider, base_url, api_key_env))


async def _send_again(prompts: list[Any], on_result: OnResult, options: dict[str, Any]) -> BatchResult:
    """How retry_invalid() sends: the same choice (online or Batch API) as any batch."""
    result = await abatch(prompts, on_result=on_result, **options)
    assert isinstance(result, BatchResult)  # a dry run never resends
    return result


use_sender(_send_again)

for _entry in (abatch, batch, start):
    _entry.__doc__ = (_entry.__doc__ or "") + options_doc()
