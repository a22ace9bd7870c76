"""Same prompts, several models: one engine run per endpoint, driven together, one result to compare.

Each endpoint (an item of ``models=[...]``) is a batch of its own (a ModelResult) with its own client,
concurrency, rate-limit state, retries, cost and stop; a MultiModelResult holds them side by side, one
row per prompt and model, and is itself a BatchResult, so every view and export works on it. What
runs each endpoint (online or through the Batch API) is nbtools.api's to choose.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from nbtools.columns import field_columns
from nbtools.engine.endpoints import PROFILES
from nbtools.engine.gates.spending import SpendingGuard
from nbtools.engine.online import OnlineRun
from nbtools.engine.prepare import prepare_batch
from nbtools.engine.rows import ERROR, NOT_SENT, OK, RequestResult
from nbtools.errors import ConfigError, EndpointError
from nbtools.options import ENDPOINT_KEYS, BatchOptions, ModelItem
from nbtools.prompts import Prompt, normalize_prompts
from nbtools.results import BatchResult
from nbtools.summary import Summary
from nbtools.views.grid import multi_html, multi_text

if TYPE_CHECKING:
    import pandas

__all__ = ["ModelResult", "MultiModelResult", "MultiRun", "prepare_models"]


class ModelResult(BatchResult):
    """One endpoint's part of a several-model batch: a batch of its own, on the batch's clock."""

    parent: MultiModelResult | None = None
    label = ""
    slot = 0  # its place among the models

    def start_clock(self) -> None:
        if self.parent is not None:  # one clock for every model: their timelines line up
            self._t0 = self.parent._t0
        else:
            super().start_clock()

    def row_started(self, row: RequestResult) -> None:
        super().row_started(row)
        if self.parent is not None:
            self.parent.active[self.parent.position(self, row)] = row

    def row_streamed(self, row: RequestResult, delta: str) -> None:
        super().row_streamed(row, delta)
        if self.parent is not None:
            self.parent.stream_chunks += 1

    def row_finished(self, row: RequestResult) -> None:
        super().row_finished(row)
        parent = self.parent
        if parent is not None:
            parent.active.pop(parent.position(self, row), None)
            if row.status in (OK, ERROR):
                parent.completed_count += 1
                parent.recent.append(row)
            parent.rows_changed()


class MultiModelResult(BatchResult):
    """The same prompts sent to several models: one row per prompt and model (prompt by prompt).

    ``by_model[label]`` is each model's own result (rows, summary, export); ``wide()`` puts the models
    side by side; ``failures`` says which endpoints stopped, and why.
    """

    def __init__(self, parts: Sequence[ModelResult], options: BatchOptions) -> None:
        count = len(parts)
        rows = [part.rows[i] for i in range(len(parts[0].rows)) for part in parts]  # prompt by prompt
        super().__init__(rows, options, parts[0].endpoint, None)
        self.by_model: dict[str, ModelResult] = {}
        for slot, part in enumerate(parts):
            part.parent, part.slot = self, slot
            self.by_model[part.label] = part
        self._count = count

    def position(self, part: ModelResult, row: RequestResult) -> int:
        """Where a part's row sits in ``rows``."""
        return row.index * self._count + part.slot

    @property
    def labels(self) -> list[str]:
        return list(self.by_model)

    @property
    def failures(self) -> dict[str, BaseException]:
        """The endpoints that stopped on their own (a refused key, a model that is not there), and why."""
        return {label: part.failure for label, part in self.by_model.items() if part.failure is not None}

    def failure_lines(self) -> list[str]:
        """One line per endpoint that stopped: which one, why, and what became of its rows."""
        failures = self.failures
        others = "; the other models went on" if len(failures) < len(self.by_model) else ""
        lines = []
        for label, error in failures.items():
            held = sum(row.status == NOT_SENT for row in self.by_model[label].rows)
            lines.append(f"{label} stopped ({held} of its requests not sent{others}): {error}")
        return lines

    def summary(self) -> Summary:
        """Figures over every model; each model's own: ``by_model[label].summary()``."""
        if self._figures is not None:
            return self._figures
        combined = super().summary()
        parts = [part.summary() for part in self.by_model.values()]
        serial = None if any(s.serial is None for s in parts) else sum(s.serial or 0.0 for s in parts)
        costs = [s.cost for s in parts]
        figures = replace(
            combined, serial=serial, speedup=serial / combined.wall if serial is not None and combined.wall > 0 else None,
            max_concurrency=sum(s.max_concurrency for s in parts), server_capacity=None, refused_at=None,
            client_late=max((s.client_late for s in parts if s.client_late is not None), default=None),
            cost=None if any(c is None for c in costs) else sum(c or 0.0 for c in costs),
            cost_unknown=sum(s.cost_unknown for s in parts), capped=any(s.capped for s in parts),
            price="each model at its own price" if all(c is not None for c in costs)
            else "unknown for " + ", ".join(label for label, s in zip(self.by_model, parts, strict=True) if s.cost is None),
        )
        if self.done:
            self._figures = figures
        return figures

    def wide(self, values: str = "text") -> pandas.DataFrame:
        """One row per prompt (and sample), a column per model: its ``values`` (a row field: text, latency, cost...).

        With ``schema=``, the default is a column per field and model instead (columns ``(field, model)``, in the
        fields' own dtypes): ``wide()["sentiment"]`` sets the models' answers side by side.
        """
        try:
            import pandas as pd
        except ImportError:
            from nbtools.errors import NbtoolsError

            raise NbtoolsError("wide() needs pandas, which is not installed: pip install pandas") from None
        field = values in RequestResult.__slots__ or isinstance(getattr(RequestResult, values, None), property)
        if values.startswith("_") or not field:
            raise ConfigError(f"wide(values={values!r}): not a row field; e.g. wide('text'), wide('latency'), wide('cost')")
        if values == "text" and self.options.schema is not None:
            return self._typed_wide(pd)
        count = self._count
        records = []
        for first in range(0, len(self.rows), count):
            group = self.rows[first : first + count]
            record: dict[str, Any] = {"index": group[0].index, "prompt": group[0].prompt_text}
            for row in group:
                record.update(_cells(row, values))
            records.append(record)
        return pd.DataFrame.from_records(records).set_index("index")

    def _typed_wide(self, pd: Any) -> pandas.DataFrame:
        schema = self.options.schema
        assert schema is not None
        parts = list(self.by_model.values())
        index = pd.Index([row.index for row in parts[0].rows], name="index")
        columns: dict[tuple[str, str], Any] = {("prompt", ""): pd.Series([r.prompt_text for r in parts[0].rows], index=index)}
        for column in schema.columns:
            for part in parts:
                series = field_columns(part.rows, schema, index)[column.name]
                columns[(column.name, part.label)] = series
        frame = pd.DataFrame(columns, index=index)
        frame.columns = pd.MultiIndex.from_tuples(list(columns), names=["field", "model"])
        return frame

    def agreement(self) -> pandas.Series:
        """With ``schema=``: per field, the share of prompts on which every model gave the same value
        (counting only prompts where every model's reply was valid); NaN for a field no prompt had from all."""
        schema = self.options.schema
        if schema is None:
            raise ConfigError("agreement() compares typed fields: run the batch with schema= (e.g. schema=Review)")
        import pandas as pd

        frame = self.wide()
        shares: dict[str, float] = {}
        for column in schema.columns:
            answers = frame[column.name]
            answered = answers[answers.notna().all(axis=1)]
            same = [len({json.dumps(v, sort_keys=True, default=str) for v in row}) == 1
                    for row in answered.itertuples(index=False)]
            shares[column.name] = sum(same) / len(same) if same else float("nan")
        return pd.Series(shares, name="agreement", dtype="Float64")

    # -- display ------------------------------------------------------------------------------------
    def __repr__(self) -> str:
        return multi_text(self)

    def _repr_html_(self) -> str:
        return multi_html(self)


def _cells(row: RequestResult, values: str) -> dict[str, Any]:
    """A row's column in ``wide()``: one per model (typed output has its own, ``_typed_wide``)."""
    return {row.label or "": getattr(row, values)}


# -- preparing -------------------------------------------------------------------------------------


def prepare_models(prompts: Prompt | Iterable[Prompt], *, api_key: str | None = None,
                   on_result: Callable[[RequestResult], Any] | None = None, **options: Any) -> MultiModelResult:
    """Check everything, then build one (not yet started) batch per item of ``models``. Raises ConfigError."""
    items = normalize_prompts(prompts)  # read once (an iterator), used per model
    parts = []
    for item, settings, key in per_model(options, api_key):
        try:
            part = prepare_batch(items, ModelResult, api_key=key, on_result=on_result, **settings)
        except ConfigError as exc:
            raise ConfigError(f"models item {item.label!r}: {exc}") from None
        part.label = item.label
        for row in part.rows:
            row.label = item.label
        parts.append(part)
    return MultiModelResult(parts, BatchOptions(**options))


def per_model(options: dict[str, Any], api_key: str | None) -> list[tuple[ModelItem, dict[str, Any], str | None]]:
    """Each item of ``options["models"]`` with the batch's options as its endpoint sees them, and its key."""
    try:
        items = BatchOptions(**options).models
    except TypeError as exc:  # an unknown keyword
        raise ConfigError(f"{exc}: see help(nbtools.batch) for the options") from None
    assert items is not None
    base = {name: value for name, value in options.items() if name != "models"}
    return [(item, *_endpoint_options(item, base, api_key)) for item in items]


def _endpoint_options(item: ModelItem, base: dict[str, Any], api_key: str | None) -> tuple[dict[str, Any], str | None]:
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


# -- running ---------------------------------------------------------------------------------------
class Run(Protocol):
    """What drives one endpoint's batch (OnlineRun or BatchJobRun)."""

    main_task: Any

    @property
    def limit(self) -> int: ...
    def set_limit(self, value: int) -> None: ...
    @property
    def in_flight(self) -> int: ...
    @property
    def peak(self) -> int: ...
    def cancel(self) -> None: ...
    async def wait_closed(self) -> None: ...
    async def main(self) -> Any: ...
    def on_main_done(self, task: asyncio.Task[Any]) -> None: ...


class MultiRun:
    """Drives every endpoint's run at once, each in a task of its own; the several-model result's Control.

    A batch-wide failure of one endpoint (an EndpointError) ends that endpoint only; any other error
    (a broken ``on_result``, a bug) ends them all. ``max_cost`` is one cap shared by every endpoint.
    """

    def __init__(self, result: MultiModelResult, runs: Sequence[Run]) -> None:
        self.result = result
        self.runs = list(runs)
        self.main_task: asyncio.Task[Any] | None = None
        self._cancel_requested = False
        if result.options.max_cost is not None:
            guard = SpendingGuard(result.options.max_cost)
            for run in self.runs:
                if isinstance(run, OnlineRun):
                    run.share_spending(guard)
        result.attach(self)

    # -- Control ------------------------------------------------------------------------------------
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

    async def wait_closed(self) -> None:
        for run in self.runs:
            run.cancel()
        await asyncio.gather(*(run.wait_closed() for run in self.runs), return_exceptions=True)
        self._close(cancelled=True)

    def on_main_done(self, task: asyncio.Task[Any]) -> None:
        """The main task ended, possibly before it ever ran (cancelled at once): close every result anyway."""
        for part in self.result.by_model.values():
            if not part.done:  # its run never started
                part.close(cancelled=True)
        self._close(cancelled=True)
        if not task.cancelled():
            task.exception()

    # -- the batch ----------------------------------------------------------------------------------
    async def main(self) -> MultiModelResult:
        result = self.result
        result.start_clock()
        loop = asyncio.get_running_loop()
        for run in self.runs:  # each endpoint its own task: its stop cancels it alone
            run.main_task = loop.create_task(run.main())
            run.main_task.add_done_callback(run.on_main_done)
        tasks = [run.main_task for run in self.runs]
        try:
            pending = set(tasks)
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    error = None if task.cancelled() else task.exception()
                    if error is not None and not isinstance(error, EndpointError):
                        raise error  # not one endpoint's trouble: stop them all
        except BaseException as exc:
            for run in self.runs:
                run.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if isinstance(exc, asyncio.CancelledError):
                self._close(cancelled=True)
                if self._cancel_requested and self.main_task is not None:
                    if sys.version_info >= (3, 11):
                        self.main_task.uncancel()  # a cancel we asked for is not the caller's cancel
                    return result
                raise
            result.failure = exc
            self._close(cancelled=False)
            raise
        for line in result.failure_lines():  # said once per endpoint, also in a script
            print(f"nbtools: {line}", file=sys.stderr)
        cancelled = self._cancel_requested or all(part.cancelled for part in result.by_model.values())
        if len(result.failures) == len(self.runs):  # nothing worked anywhere: that is the batch's failure
            failure = EndpointError("every model stopped: " + "; ".join(result.failure_lines()))
            failure.result = result
            result.failure = failure
            self._close(cancelled=False)
            raise failure
        self._close(cancelled=cancelled)
        return result

    def _close(self, *, cancelled: bool) -> None:
        if not self.result.done:
            self.result.close(cancelled=cancelled, not_sent=True)
