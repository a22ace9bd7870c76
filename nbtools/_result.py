"""What users get back: a BatchResult of RequestResult rows, live while the batch runs.

A BatchResult renders itself (text and HTML), converts to pandas and JSONL, and is awaitable, so a
batch started in the background can be awaited in a later cell.
"""

from __future__ import annotations

import json
import os
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from nbtools import _columns as columns
from nbtools import _manifest as manifest
from nbtools._base.checks import whole_number
from nbtools._base.errors import ConfigError, NbtoolsError
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

    def cancel(self) -> None:
        """Stop the batch: in-flight and pending requests are cancelled, finished rows stay."""
        if self._control is not None and not self.done:
            self._control.cancel()

    async def aclose(self) -> None:
        """Cancel (if still running) and wait until nothing of the batch is left running."""
        if self._control is not None and not self.done:
            self._control.cancel()
            await self._control.wait_closed()

    def __await__(self) -> Generator[Any, None, BatchResult]:
        if not self.done:
            yield from self._done.wait().__await__()
        if self.failure is not None:
            raise self.failure
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
        figures = Summary.of(self)
        if self.done:
            self._figures = figures  # a finished batch does not change: figure it once
        return figures

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
        schema = self.options.schema
        if schema is None:
            return frame
        columns.check_clash(schema, list(frame.columns), "to_pandas()")
        return pd.concat([frame, pd.DataFrame(columns.field_columns(self.rows, schema, frame.index))], axis=1)

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
        """Write one JSON object per request to ``path``; returns the number of lines written."""
        with open(path, "w", encoding="utf-8") as f:
            for r in self.rows:
                f.write(json.dumps(r.to_dict(), ensure_ascii=False) + "\n")
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
        return self

    def retry_invalid(self, **options: Any) -> BatchResult:
        """Blocking ``aretry_invalid``: works in a script and in a notebook cell."""
        run = self._retry_run(options)
        if run is not None:
            run.block()
        return self

    def _retry_run(self, options: dict[str, Any]) -> Run[Any] | None:
        if self.options.schema is None:
            raise ConfigError("retry_invalid() is for a batch run with schema=: this one had none")
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
        self.rows_changed()

    # -- display --------------------------------------------------------------------------------
    def _view(self) -> View:
        return report.BatchView(self, self.summary())

    def live_view(self) -> Live[Any, Any]:
        """How the live display shows this batch while it runs."""
        return report.live(self, self.summary)
