"""Same prompts, several models: one result to compare them, whose parts are each model's own batch.

Each endpoint (an item of ``models=[...]``) is a batch of its own (a ModelResult) with its own client,
concurrency, rate-limit state, retries, cost and stop; a MultiModelResult holds them side by side, one
row per prompt and model, and is itself a BatchResult, so every view and export works on it. What
runs them is nbtools._engine.launch's to choose.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from nbtools import _pairwise
from nbtools._base.errors import ConfigError, NbtoolsError
from nbtools._columns import field_columns
from nbtools._engine.rows import RequestResult
from nbtools._engine.state import PartState, SeveralState
from nbtools._pairwise import Pairwise
from nbtools._result import BatchResult
from nbtools._summary import Summary
from nbtools._tradeoff import Tradeoff, for_result
from nbtools._views import grid
from nbtools._views.live_view import Live
from nbtools._views.rich import View

if TYPE_CHECKING:
    import pandas


class ModelResult(PartState, BatchResult):
    """One endpoint's part of a several-model batch: a batch of its own, on the batch's clock."""


class MultiModelResult(SeveralState[ModelResult], BatchResult):
    """The same prompts sent to several models: one row per prompt and model (prompt by prompt).

    ``by_model[label]`` is each model's own result (rows, summary, export); ``wide()`` puts the models
    side by side; ``failures`` says which endpoints stopped, and why.
    """

    def summary(self) -> Summary:
        """Figures over every model; each model's own: ``by_model[label].summary()``."""
        if self._figures is not None:
            return self._figures
        figures = self._with_judge(Summary.combine(Summary.of(self), self._by_model_figures()))
        if self.done and (self._judging is None or self._judging.batch.done):
            self._figures = figures
        return figures

    def _by_model_figures(self) -> dict[str, Summary]:
        """Each model's own figures (with the judge's verdicts on its replies, when a judge ran)."""
        return {label: self._with_judge(part.summary(), part.rows) for label, part in self.by_model.items()}

    def wide(self, values: str = "text") -> pandas.DataFrame:
        """One row per prompt (and sample), a column per model: its ``values`` (a row field: text, latency, cost...).

        With ``schema=``, the default is a column per field and model instead (columns ``(field, model)``, in the
        fields' own dtypes): ``wide()["sentiment"]`` sets the models' answers side by side.
        """
        try:
            import pandas as pd
        except ImportError:
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

    # -- verdicts ----------------------------------------------------------------------------------------
    async def apairwise(self, judge: Any = None, rubric: str | None = None, **options: Any) -> Pairwise:
        """Which model's reply is better, prompt by prompt and pair by pair, asked twice with the order swapped (a
        disagreement is a tie). ``judge`` defaults to the batch's judge=; ``rubric`` says what "better" means;
        ``options`` are the judge batch's (e.g. concurrency=8)."""
        outcome, run = _pairwise.prepare(self, self.summary().cost, judge, rubric, options)
        if run is not None:
            await run.run()
        return outcome

    def pairwise(self, judge: Any = None, rubric: str | None = None, **options: Any) -> Pairwise:
        """Blocking ``apairwise``: works in a script and in a notebook cell."""
        outcome, run = _pairwise.prepare(self, self.summary().cost, judge, rubric, options)
        if run is not None:
            run.block()
        return outcome

    def tradeoff(self, quality: str | None = None) -> Tradeoff:
        """One row per model: quality (``quality``: a check's name, or "judge"; default the judge's mean score, else
        the first check's pass rate), p50 and p95 latency, cost per 1,000 prompts and errors; a table, a chart of
        quality against latency (the dot's area: the cost) and ``to_pandas()``."""
        return for_result(self, quality)

    # -- display ------------------------------------------------------------------------------------
    def _view(self) -> View:
        return grid.SeveralView(self, self._by_model_figures(), judge=self.summary().judge)

    def live_view(self) -> Live[Any, Any]:
        return grid.live(self, self._by_model_figures)


def _cells(row: RequestResult, values: str) -> dict[str, Any]:
    """A row's column in ``wide()``: one per model (typed output has its own, ``_typed_wide``)."""
    return {row.label or "": getattr(row, values)}
