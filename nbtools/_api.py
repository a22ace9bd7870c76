"""What users call to run a batch: batch, abatch, start and models.

How a batch runs (online, through the provider's Batch API, several models side by side, or a dry run) is
nbtools._engine.launch's to choose; here the batch is built from the types users get back, started, and
awaited or blocked on.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable
from typing import Any, Literal, overload

from nbtools._base.errors import ConfigError, EndpointError, NbtoolsError
from nbtools._base.options import options_doc
from nbtools._base.prompts import Prompt
from nbtools._dry_run import DryRun, DryRuns, dry_run
from nbtools._engine import launch
from nbtools._engine.blocking import run_blocking
from nbtools._engine.client import ChatClient
from nbtools._engine.endpoints import PROFILES, Profile, resolve_endpoint
from nbtools._engine.failures import RequestFailed
from nbtools._engine.lifecycle import Run
from nbtools._engine.online import OnResult
from nbtools._judge import judge_item
from nbtools._judge import wanted as wants_judge
from nbtools._result import BatchResult
from nbtools._several import ModelResult, MultiModelResult

_announced_sim = False


def prepare(prompts: Prompt | Iterable[Prompt], *, api_key: str | None = None, on_result: OnResult | None = None,
            **options: Any) -> BatchResult:
    """Validate everything and build the (not yet started) result. Raises ConfigError on bad input."""
    if options.get("judge") is not None:
        judge_item(options["judge"])  # a judge nobody can reach fails before the batch is sent
    return launch.prepare(prompts, BatchResult, ModelResult, MultiModelResult, api_key=api_key, on_result=on_result,
                          **options)


def _announce(result: BatchResult) -> None:
    """Say once that replies are simulated; the magic and the panel say it in their header instead."""
    global _announced_sim
    for part in result.by_model.values() if isinstance(result, MultiModelResult) else (result,):
        endpoint = part.endpoint
        fallback = part.options.provider is None and part.options.base_url is None
        if endpoint.simulated and fallback and not _announced_sim:
            _announced_sim = True
            print(f"nbtools: {endpoint.note}", file=sys.stderr)


def _run(prompts: Prompt | Iterable[Prompt], on_result: OnResult | None, options: dict[str, Any]) -> Run[Any]:
    return launch.run_for(prepare(prompts, on_result=on_result, **options), on_result)


def start(prompts: Prompt | Iterable[Prompt], *, on_result: OnResult | None = None, **options: Any) -> BatchResult:
    """Start a batch on the running event loop and return its live BatchResult at once.

    ``await result`` waits for the end (and raises what stopped the batch); ``result.cancel()``
    stops it. Same options as ``batch``; with judge=, the judge's pass runs once the batch ends,
    ``await result`` waits for it too and ``result.cancel()`` stops it too.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        raise NbtoolsError("start() needs a running event loop (a notebook cell): in a script, use batch()") from None
    if options.get("dry_run"):
        raise ConfigError("start() runs the batch: for a dry run use nbtools.dry_run(...) or batch(..., dry_run=True)")
    run = _run(prompts, on_result, options)
    run.start()
    result: BatchResult = run.result
    if result.options.judge is not None:
        result._judge_after()
    return result


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
    run = _run(prompts, on_result, options)
    _announce(run.result)
    result: BatchResult = await run.start()  # awaiting the run's own task: cancelling us cancels the batch
    if wants_judge(result):  # then the judge's batch over its replies
        await result.ajudge()
    return result


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
    run = _run(prompts, on_result, options)
    _announce(run.result)
    result: BatchResult = run.block()
    if wants_judge(result):  # then the judge's batch over its replies
        result.judge()
    return result


async def amodels(provider: str | None = None, base_url: str | None = None, api_key_env: str | None = None) -> list[str]:
    """The model names an endpoint lists (``GET /models``)."""
    endpoint = resolve_endpoint(provider, base_url, None, api_key_env)
    async with ChatClient(endpoint, timeout=10) as client:
        try:
            return await client.list_models()
        except RequestFailed as exc:
            raise EndpointError(str(exc)) from None


def providers() -> dict[str, Profile]:
    """The providers nbtools knows by name (``provider=``), each with its base URL (``base_url_env`` points it
    elsewhere), the environment variable its key is read from (``key_env``), its default model and service tiers."""
    return dict(PROFILES)


def models(provider: str | None = None, base_url: str | None = None, api_key_env: str | None = None) -> list[str]:
    """Blocking ``amodels``: e.g. ``nbtools.models(provider="openai")``."""
    return run_blocking(amodels(provider, base_url, api_key_env))


for _entry in (abatch, batch, start):
    _entry.__doc__ = (_entry.__doc__ or "") + options_doc()
