"""What users get back: a BatchResult of RequestResult rows, live while the batch runs.

A BatchResult renders itself (text and HTML), converts to pandas and JSONL, and is awaitable, so a
batch started in the background can be awaited in a later cell.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Generator, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from nbtools import _columns as columns
from nbtools import _judge
from nbtools import _manifest as manifest
from nbtools._agreement import Agreement, agreement
from nbtools._base.checks import whole_number
from nbtools._base.errors import BatchInterrupted, ConfigError, NbtoolsError
from nbtools._engine import resend
from nbtools._engine.blocking import run_blocking
from nbtools._engine.lifecycle import Run
from nbtools._engine.rows import ERROR, RequestResult, copy_outcome
from nbtools._engine.state import BatchState
from nbtools._manifest import Manifest
from nbtools._summary import Summary
from nbtools._views import report
from nbtools._views.live_view import Live
from nbtools._views.rich import Shown, View

if TYPE_CHECKING:
    import pandas


class BatchResult(Shown, BatchState, Sequence[RequestResult]):
    """The results of one batch, in input order, live while the batch runs.

    ``await result`` (or, blocking, ``result.wait()``) waits for the end and raises what stopped the
    batch, as ``abatch`` does; ``result.cancel()`` stops it and keeps finished rows;
    ``result.concurrency = n`` changes the limit for requests not yet started.
    """

    _figures: Summary | None = None  # the final summary, computed once
    template: str | None = None  # the magic cell's text the prompts were filled from, for the manifest's hash
    _judging: _judge.Judging | None = None  # with judge=: the judge's batch over this one's replies
    _judge_pass: asyncio.Task[None] | None = None  # start(judge=...): the judge's pass, run once the batch ends
    _judge_begun: asyncio.Event | None = None  # set once that pass has its batch (or will have none)
    _judge_stopped = False  # cancelled: no judge pass starts after this

    @property
    def judged(self) -> BatchResult | None:
        """With judge=: the judge's own batch (its requests, figures and cost), or None before it ran."""
        return None if self._judging is None else self._judging.batch  # type: ignore[return-value]

    def rows_changed(self) -> None:
        self._figures = None

    # -- live control -------------------------------------------------------------------------
    @property
    def concurrency(self) -> int:
        """The limit in force (with concurrency="auto": the one it has found so far)."""
        return self.current_limit()

    @concurrency.setter
    def concurrency(self, value: int) -> None:
        """A number set by hand also ends ``concurrency="auto"``: you take over from the controller."""
        value = whole_number("concurrency", value, 1, "e.g. result.concurrency = 16")
        if self._control is not None:
            self._control.set_limit(value)
        self.options.concurrency = value

    @property
    def busy(self) -> bool:
        """The batch, or the judge's pass over it, is still running."""
        return not self.done or (self._judge_pass is not None and not self._judge_pass.done())

    def cancel(self) -> None:
        """Stop the batch and its judge's pass: in-flight and pending requests are cancelled, finished rows (and
        the verdicts back) stay."""
        self._judge_stopped = True
        if self._control is not None and not self.done:
            self._control.cancel()
        if self.judged is not None:
            self.judged.cancel()

    async def aclose(self) -> None:
        """Cancel (if still running) and wait until nothing of the batch, or of its judge's pass, is left running."""
        self._judge_stopped = True
        if self._control is not None and not self.done:
            self._control.cancel()
            await self._control.wait_closed()
        if self.judged is not None:
            await self.judged.aclose()

    def __await__(self) -> Generator[Any, None, BatchResult]:
        if not self.done:
            yield from self._done.wait().__await__()
        if self.failure is not None:
            raise self.failure
        if self._judge_pass is not None:  # shielded: who stops waiting does not stop the judge (cancel() does)
            yield from asyncio.shield(self._judge_pass).__await__()
        return self

    def wait(self) -> BatchResult:
        """Block until the batch ends (e.g. a via="batch" job updating in the background); raises what
        stopped it, as ``await result`` does. Works in a script and in a notebook cell."""

        async def until_done() -> BatchResult:
            return await self

        return run_blocking(until_done())

    # -- sequence -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.rows)

    @overload
    def __getitem__(self, i: int) -> RequestResult: ...
    @overload
    def __getitem__(self, i: slice) -> list[RequestResult]: ...
    def __getitem__(self, i: int | slice) -> RequestResult | list[RequestResult]:
        return self.rows[i]

    def __iter__(self) -> Iterator[RequestResult]:
        return iter(self.rows)

    @property
    def texts(self) -> list[str | None]:
        """The reply texts in input order (None where a request failed or did not run)."""
        return [r.text for r in self.rows]

    @property
    def errors(self) -> list[RequestResult]:
        return [r for r in self.rows if r.status == ERROR]

    # -- figures --------------------------------------------------------------------------------
    def summary(self) -> Summary:
        """The batch's figures, live while it runs; figured once when it is done."""
        if self._figures is not None:
            return self._figures
        figures = self._with_judge(Summary.of(self))
        if self.done and (self._judging is None or self._judging.batch.done):
            self._figures = figures  # a finished batch does not change: figure it once
        return figures

    def _with_judge(self, figures: Summary, rows: Sequence[RequestResult] | None = None) -> Summary:
        """The figures with the judge's line (over ``rows``: default all), when a judge ran."""
        return figures if self._judging is None else replace(figures, judge=self._judging.figure(rows))

    # -- export ---------------------------------------------------------------------------------
    def to_dicts(self) -> list[dict[str, Any]]:
        return [r.to_dict() for r in self.rows]

    def to_pandas(self) -> pandas.DataFrame:
        """One row per request (needs pandas: ``pip install pandas``); with schema=, a column per field."""
        try:
            import pandas as pd
        except ImportError:
            raise NbtoolsError("to_pandas() needs pandas, which is not installed: pip install pandas") from None
        frame = pd.DataFrame.from_records(self.to_dicts()).set_index("index").drop(columns="data")
        checks = list(self.options.checks or ())
        scale = None if self._judging is None else self._judging.scale
        graded = columns.graded_columns(self.rows, self.options.expected is not None, checks, scale, frame.index)
        schema = self.options.schema
        if schema is not None:
            columns.check_clash(schema, list(frame.columns) + list(graded), "to_pandas()")
            graded.update(columns.field_columns(self.rows, schema, frame.index))
        return pd.concat([frame, pd.DataFrame(graded, index=frame.index)], axis=1) if graded else frame

    def join(self, frame: pandas.DataFrame) -> pandas.DataFrame:
        """``frame`` (the DataFrame the batch ran ``--over``) with a column per schema field, on its own index."""
        if self.options.schema is None:
            raise ConfigError("join() adds the schema's fields as columns: run the batch with schema= "
                              "(magic: --schema NAME)")
        return columns.join_frame(frame, self.rows, self.options.schema)

    def manifest(self) -> Manifest:
        """What this run was: nbtools, Python and price-data versions, endpoint (never a key), the model asked
        for and the models, fingerprints and request ids that answered, prompt hashes, every option, the
        concurrency used, times and totals. ``manifest().diff(other)`` lists what differs from another run."""
        return Manifest(manifest.build(self, self.template))

    def save_manifest(self, path: str | os.PathLike[str]) -> Path:
        """Write ``manifest()`` as JSON to ``path`` (readable by its owner only); ``Manifest.load`` reads it back,
        and ``result.manifest().diff(path)`` compares this run with the saved one."""
        return self.manifest().save(path)

    def to_jsonl(self, path: str | os.PathLike[str]) -> int:
        """Write one JSON object per request to ``path``; returns the number of lines written. With expected=,
        checks= or a judge, each line has its reference, its checks and the judge's verdict too."""
        graded = self.options.expected is not None, self.options.checks is not None, self._judging is not None
        with open(path, "w", encoding="utf-8") as f:
            for r in self.rows:
                f.write(json.dumps({**r.to_dict(), **columns.graded_record(r, *graded)}, ensure_ascii=False,
                                   default=str) + "\n")
        return len(self.rows)

    # -- structured output ----------------------------------------------------------------------
    @property
    def invalid(self) -> list[RequestResult]:
        """Rows whose reply did not match the schema (kind ``invalid_output``), their raw text kept."""
        return resend.invalid(self)

    async def aretry_invalid(self, **options: Any) -> BatchResult:
        """Send only the ``invalid`` rows again, each with the validator's message added to its conversation,
        and fill them in place (their cost adds to the batch's). ``options`` override the batch's own, e.g.
        ``via="batch"`` for a new Batch API job, or ``concurrency=4``."""
        run = self._retry_run(options)
        if run is not None:
            await run.run()
            self._refill()
        return self

    def retry_invalid(self, **options: Any) -> BatchResult:
        """Blocking ``aretry_invalid``: works in a script and in a notebook cell."""
        run = self._retry_run(options)
        if run is not None:
            run.block()
            self._refill()
        return self

    def _refill(self) -> None:
        """The verdicts again, after the judge's invalid replies were asked again."""
        if self._judging is not None:
            self._judging.refill()
            self.rows_changed()

    def _retry_run(self, options: dict[str, Any]) -> Run[Any] | None:
        judged = self.judged
        if judged is not None and judged.invalid:  # the judge's replies that did not parse, asked again
            return judged._retry_run(options)
        if self.options.schema is None:
            raise ConfigError("retry_invalid() is for a batch run with schema= (or a judge's invalid verdicts): "
                              "this one had none")
        rows = resend.invalid(self)
        via = options.pop("via", self.options.via)  # the same engine as the batch, unless asked otherwise
        return resend.again(self, rows, [resend.reask(row) for row in rows], self._retried, via=via,
                            what="retry_invalid()", **options)

    def _retried(self, row: RequestResult, original: RequestResult) -> None:
        """A re-asked row's answer, in place of its invalid one; attempts and cost add up."""
        cost = None if original.cost is None or row.cost is None else original.cost + row.cost
        cost = cost if cost is not None else (row.cost if original.cost is None else original.cost)
        attempts, waits = original.attempts + row.attempts, original.waits + row.waits
        copy_outcome(row, original)  # the retry's times are on its own batch's clock: its last request's latency
        original.attempts, original.waits, original.cost = attempts, waits, cost
        self.grade(original)
        self.rows_changed()

    # -- the judge ------------------------------------------------------------------------------------
    async def ajudge(self, judge: Any = None, rubric: str | None = None, judge_scale: Any = None,
                     **options: Any) -> BatchResult:
        """Judge this batch's replies (judge=, rubric=, judge_scale= default to the batch's own): a batch of the
        judge's own (``result.judged``), whose verdicts land in ``row.judge``. ``options`` are the judge batch's
        (e.g. concurrency=4)."""
        prepared = self._judge_run(judge, rubric, judge_scale, options)
        if prepared is not None:
            await prepared.run()
        return self

    def _judge_after(self) -> None:
        """Judge this batch's replies once it ends, in a task of the running loop (``start(judge=...)``): ``await
        result`` waits for the verdicts too, ``cancel()`` stops the judge's pass as well."""
        self._judge_begun = asyncio.Event()
        self._judge_pass = asyncio.get_running_loop().create_task(self._judge_when_done(self._judge_begun))
        self._judge_pass.add_done_callback(lambda task: task.cancelled() or task.exception())  # kept; not logged

    async def _judge_when_done(self, begun: asyncio.Event) -> None:
        try:
            await self._done.wait()
            run = self._judge_run(None, None, None, {}) if _judge.wanted(self) and not self._judge_stopped else None
        finally:
            begun.set()
        if run is not None:
            await run.run()

    async def _judge_pass_batch(self) -> BatchResult | None:
        """Once the batch is done: the judge's batch its pass runs (``start(judge=...)``), or None when none runs."""
        if self._judge_begun is None:
            return None
        await self._judge_begun.wait()
        return self.judged

    def judge(self, judge: Any = None, rubric: str | None = None, judge_scale: Any = None,
              **options: Any) -> BatchResult:
        """Blocking ``ajudge``: works in a script and in a notebook cell."""
        prepared = self._judge_run(judge, rubric, judge_scale, options)
        if prepared is not None:
            try:
                prepared.block()
            except BatchInterrupted:  # the judged batch, with the verdicts that came, is what the caller holds
                raise BatchInterrupted(self) from None
        return self

    def _judge_run(self, judge: Any, rubric: str | None, scale: Any, options: dict[str, Any]) -> Run[Any] | None:
        if not self.done:
            raise ConfigError("this batch is still running: await it (or result.wait()) before judging it")
        if judge is None and self.options.judge is None:
            raise ConfigError("judge() needs a judge: e.g. result.judge('sim:sim-judge'), or run with judge=")
        prepared = _judge.prepare(self, BatchResult, self.summary().cost, judge, rubric, scale, **options)
        if prepared is None:
            return None
        self._judging, run = prepared
        self.rows_changed()
        return run

    def judge_agreement(self, labels: Any) -> Agreement:
        """The judge's verdicts against people's ``labels`` (one per row, None where there is none; pass/fail as
        True/False, a scale as numbers): Cohen's kappa, the confusion matrix and the disagreeing rows."""
        if self._judging is None:
            raise ConfigError("judge_agreement() compares the judge's verdicts: run the batch with judge= "
                              "(or result.judge('sim:sim-judge')) first")
        return agreement(self.rows, labels, self._judging.scale, self._judging.label)

    # -- display --------------------------------------------------------------------------------
    def _view(self) -> View:
        return report.BatchView(self, self.summary())

    def live_view(self) -> Live[Any, Any]:
        """How the live display shows this batch while it runs."""
        return report.live(self, self.summary)
