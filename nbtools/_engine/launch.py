"""How a batch runs: the one place that chooses between online, a provider's Batch API, several models and a
dry run, and the run that drives several endpoints at once.

``prepare`` checks everything and builds the (not yet started) batch: one endpoint's, or with ``models=[...]``
one part per endpoint side by side. ``run_for`` picks what drives it: an OnlineRun, a BatchAPIRun
(``via="batch"``) or, for several endpoints, a MultiRun over one run per endpoint, each chosen the same way.
``dry_run`` prices the same batch instead, with nothing sent. The caller says what its results are made of
(``make`` arguments), so the engine never imports the types users get back.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from nbtools._base.errors import ConfigError, EndpointError
from nbtools._base.options import ENDPOINT_KEYS, BatchOptions, ModelItem, options_from
from nbtools._base.prompts import Prompt, normalize_prompts
from nbtools._engine.attach import attach
from nbtools._engine.endpoints import PROFILES, Endpoint, resolve_endpoint
from nbtools._engine.failures import BAD_INPUT
from nbtools._engine.gates.spending import SpendingGuard
from nbtools._engine.image_tokens import rule_for
from nbtools._engine.lifecycle import Run
from nbtools._engine.online import OnlineRun, OnResult
from nbtools._engine.plan import CostEstimate, estimate, measure_prefix, price_batch
from nbtools._engine.rows import RequestResult
from nbtools._engine.state import BatchState, PartState, SeveralState

One = TypeVar("One", bound=BatchState)
Part = TypeVar("Part", bound=PartState)
Whole = TypeVar("Whole", bound=SeveralState[Any])
Estimate = TypeVar("Estimate", bound=CostEstimate)
Estimates = TypeVar("Estimates")
MakeOne = Callable[[list[RequestResult], BatchOptions, Endpoint, "str | None"], One]

NO_KEY = "(dry run: no key needed)"


# -- preparing -------------------------------------------------------------------------------------
def prepare(prompts: Prompt | Iterable[Prompt], one: MakeOne[One], part: MakeOne[Part],
            whole: Callable[[list[Part], BatchOptions], Whole], *, api_key: str | None = None,
            on_result: OnResult | None = None, **options: Any) -> One | Whole:
    """Validate everything and build the (not yet started) batch: ``one(rows, options, endpoint, model)`` for
    one endpoint; with ``models=[...]`` a ``part`` per endpoint, held side by side by ``whole(parts, options)``.
    Raises ConfigError on bad input."""
    if on_result is not None and not callable(on_result):
        raise ConfigError(f"on_result={on_result!r} must be a function taking one finished row: e.g. on_result=print")
    if options.get("models") is None:
        return prepare_one(prompts, one, api_key=api_key, **options)
    items = normalize_prompts(prompts)  # read once (an iterator), used per model
    parts = []
    for item, settings, key in per_model(options, api_key):
        try:
            state = prepare_one(items, part, api_key=key, **settings)
        except ConfigError as exc:
            raise ConfigError(f"models item {item.label!r}: {exc}") from None
        state.label = item.label
        for row in state.rows:
            row.label = item.label
        parts.append(state)
    return whole(parts, options_from(options))


def prepare_one(prompts: Prompt | Iterable[Prompt], make: MakeOne[One], *, api_key: str | None = None,
                **options: Any) -> One:
    """One endpoint's batch, checked and built by ``make``; priced now if its model is known."""
    opts = options_from(options)
    items = normalize_prompts(prompts)
    endpoint = resolve_endpoint(opts.provider, opts.base_url, api_key, opts.api_key_env, opts.transport)
    profile = PROFILES.get(endpoint.provider)
    if opts.tier is not None and profile is not None and not endpoint.simulated and opts.tier not in profile.tiers:
        offered = f"it offers {', '.join(map(repr, profile.tiers))}" if profile.tiers else "it has no service tiers"
        raise ConfigError(f"tier={opts.tier!r} is not offered by provider {endpoint.provider!r} ({offered}): "
                          "leave tier out (magic: --tier)")
    items, bad = attach(items, opts, endpoint)
    repeat = opts.repeat
    rows = [RequestResult(i, items[i // repeat]) for i in range(len(items) * repeat)]
    for row in rows:
        if row.index // repeat in bad:
            row.refuse(BAD_INPUT, bad[row.index // repeat])
    if opts.expected is not None:
        _give_expected(rows, opts.expected, len(items), repeat)
    state = make(rows, opts, endpoint, opts.model or endpoint.default_model)
    if state.model is not None:
        price_batch(state, state.model)  # a cap that cannot work fails before anything is shown
        if opts.max_cost is not None and opts.images is not None:
            _images_priced(endpoint, state.model)
        measure_prefix(state, state.model)
    return state


def _images_priced(endpoint: Endpoint, model: str) -> None:
    """max_cost counts image tokens: refused where no rule says how many an image is."""
    if rule_for("sim" if endpoint.simulated else endpoint.provider, model) is None:
        raise ConfigError(f"max_cost with images= needs each image's tokens, and no published rule for {model}'s is "
                          "known here: drop max_cost (see the cost first with dry_run=True)")


def _give_expected(rows: list[RequestResult], expected: tuple[Any, ...], prompts: int, repeat: int) -> None:
    """Each row its prompt's reference answer (every sample of a prompt the same one)."""
    if len(expected) != prompts:
        raise ConfigError(f"expected= has {len(expected)} values for {prompts} prompts: give one reference answer "
                          "per prompt (None where there is none), in the prompts' order")
    for row in rows:
        row.expected = expected[row.index // repeat]


def per_model(options: dict[str, Any], api_key: str | None) -> list[tuple[ModelItem, dict[str, Any], str | None]]:
    """Each item of ``options["models"]`` with the batch's options as its endpoint sees them, and its key."""
    items = options_from(options).models
    assert items is not None
    base = {name: value for name, value in options.items() if name != "models"}
    return [(item, *endpoint_options(item, base, api_key)) for item in items]


def endpoint_options(item: ModelItem, base: dict[str, Any], api_key: str | None) -> tuple[dict[str, Any], str | None]:
    """The batch's options as this item's endpoint sees them, and its key."""
    settings = dict(base)
    if item.new_endpoint:  # another endpoint: the batch's provider, URL and key are not its own
        for name in ENDPOINT_KEYS:  # api_key is not an option: it comes apart
            settings.pop(name, None)
        api_key = None
    provider = item.settings.get("provider")
    if provider is not None and provider not in PROFILES:
        raise ConfigError(f"models item {item.label!r}: unknown provider {provider!r}: choose one of "
                          f"{', '.join(PROFILES)} (e.g. 'sim:sim-small'), or give a dict with base_url=")
    for name, value in item.settings.items():
        if name == "api_key":
            api_key = value
        else:
            settings[name] = value
    return settings, api_key


# -- choosing what runs it -------------------------------------------------------------------------
def run_for(state: BatchState, on_result: OnResult | None) -> Run[Any]:
    """What drives the batch: via="batch" through the provider's Batch API, else online; several endpoints,
    one run each (each chosen the same way), driven together."""
    if isinstance(state, SeveralState):
        return MultiRun(state, [run_for(part, on_result) for part in state.by_model.values()])
    if state.options.via == "batch":
        from nbtools._engine.batchapi.run import BatchAPIRun  # on aiohttp: not imported where it cannot run

        return BatchAPIRun(state, on_result)
    return OnlineRun(state, on_result)


def dry_run(prompts: Prompt | Iterable[Prompt], make: Callable[..., Estimate],
            several: Callable[[dict[str, Estimate]], Estimates], *, api_key: str | None = None,
            **options: Any) -> Estimate | Estimates:
    """What the batch would cost, with nothing sent: an estimate built by ``make`` (nbtools._engine.plan), or with
    ``models=[...]`` one per model, held by ``several``. The same checks and rows as a run."""
    if options.get("models") is not None:
        items = normalize_prompts(prompts)  # read once (an iterator), used per model
        by_model: dict[str, Estimate] = {}
        for item, settings, key in per_model(options, api_key):
            try:
                by_model[item.label] = estimate(_dry_state(items, key, settings), make)
            except ConfigError as exc:
                raise ConfigError(f"models item {item.label!r}: {exc}") from None
        return several(by_model)
    return estimate(_dry_state(prompts, api_key, options), make)


def _dry_state(prompts: Prompt | Iterable[Prompt], api_key: str | None, options: dict[str, Any]) -> BatchState:
    if api_key is None and options.get("api_key_env") is None:
        api_key = NO_KEY  # nothing is sent, so a provider's key need not be set to see its prices
    return prepare_one(prompts, BatchState, api_key=api_key, **options)


# -- several endpoints at once ---------------------------------------------------------------------
class MultiRun(Run[SeveralState[Any]]):
    """Drives every endpoint's run at once, each in a task of its own.

    A batch-wide failure of one endpoint (an EndpointError) ends that endpoint only; any other error
    (a broken ``on_result``, a bug) ends them all. ``max_cost`` is one cap shared by every endpoint.
    """

    def __init__(self, result: SeveralState[Any], runs: Sequence[Run[Any]]) -> None:
        super().__init__(result)
        self.runs = list(runs)
        if result.options.max_cost is not None:
            guard = SpendingGuard(result.options.max_cost)
            for run in self.runs:
                if isinstance(run, OnlineRun):
                    run.share_spending(guard)

    @property
    def limit(self) -> int:
        """The most requests in flight over every endpoint."""
        return sum(run.limit for run in self.runs)

    def set_limit(self, value: int) -> None:
        """Each endpoint's own limit (``by_model[label].concurrency = n`` sets one)."""
        for run in self.runs:
            run.set_limit(value)

    @property
    def in_flight(self) -> int:
        return sum(run.in_flight for run in self.runs)

    @property
    def peak(self) -> int:
        return sum(run.peak for run in self.runs)

    def cancel(self) -> None:
        self._cancel_requested = True
        for run in self.runs:
            run.cancel()

    async def go(self) -> None:
        tasks = [run.start() for run in self.runs]  # each endpoint its own task: its stop cancels it alone
        pending = set(tasks)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                error = None if task.cancelled() else task.exception()
                if error is not None and not isinstance(error, EndpointError):
                    raise error  # not one endpoint's trouble: stop them all

    async def _wind_down(self) -> None:
        for run in self.runs:
            run.cancel()
        await asyncio.gather(*(run.wait_closed() for run in self.runs), return_exceptions=True)

    def _ended(self) -> None:
        result = self.result
        for line in result.failure_lines():  # said once per endpoint, also in a script
            print(f"nbtools: {line}", file=sys.stderr)
        cancelled = self._cancel_requested or all(part.cancelled for part in result.by_model.values())
        if len(result.failures) == len(self.runs):  # nothing worked anywhere: that is the batch's failure
            failure = EndpointError("every model stopped: " + "; ".join(result.failure_lines()))
            self._fail(failure)
            raise failure
        self.close(cancelled=cancelled)

    def close(self, *, cancelled: bool, not_sent: bool = True) -> None:
        for part in self.result.by_model.values():
            if not part.done:  # its run never started
                part.close(cancelled=True)
        super().close(cancelled=cancelled, not_sent=True)
