"""What users get back: a BatchResult of RequestResult rows, live while the batch runs.

A BatchResult renders itself (text and HTML), converts to pandas and JSONL, and is awaitable, so a
batch started in the background can be awaited in a later cell.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Generator, Iterator, Sequence
from typing import TYPE_CHECKING, Any, overload

from nbtools import columns, reask
from nbtools.checks import whole_number
from nbtools.engine.failures import INVALID_OUTPUT
from nbtools.engine.rows import CANCELLED, ERROR, NOT_SENT, OK, RequestResult
from nbtools.engine.state import BatchState
from nbtools.errors import ConfigError
from nbtools.summary import Summary, estimate_serial
from nbtools.views import labels, report

if TYPE_CHECKING:
    import pandas

__all__ = ["RequestResult", "BatchResult"]


class BatchResult(BatchState, Sequence[RequestResult]):
    """The results of one batch, in input order, live while the batch runs.

    ``await result`` (or, blocking, ``result.wait()``) waits for the end and raises what stopped the
    batch, as ``abatch`` does; ``result.cancel()`` stops it and keeps finished rows;
    ``result.concurrency = n`` changes the limit for requests not yet started.
    """

    _figures: Summary | None = None  # the final summary, computed once

    def rows_changed(self) -> None:
        self._figures = None

    # -- live control -------------------------------------------------------------------------
    @property
    def concurrency(self) -> int:
        """The limit in force (with concurrency="auto": the one it has found so far)."""
        if self._control is not None:
            return self._control.limit
        return self._last_limit or self.options.concurrency  # type: ignore[return-value]

    @concurrency.setter
    def concurrency(self, value: int) -> None:
        """A number set by hand also ends ``concurrency="auto"``: you take over from the controller."""
        value = whole_number("concurrency", value, 1, "e.g. result.concurrency = 16")
        if self._control is not None:
            self._control.set_limit(value)
        self.options.concurrency = value

    @property
    def in_flight(self) -> int:
        return self._control.in_flight if self._control is not None and not self.done else 0

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
        from nbtools.engine.blocking import run_blocking

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
        if self._figures is not None:
            return self._figures
        # Rows answered from the cache took no time and made no request: they would skew the figures.
        latencies = sorted(
            lat for r in self.rows if r.status != CANCELLED and not r.cached and (lat := r.latency) is not None
        )
        wall = self.elapsed()
        counts: Counter[str] = Counter()
        kinds: Counter[str] = Counter()
        finishes: Counter[str] = Counter()
        retries = waits = ptok = ctok = cached = reported = cost_unknown = thinking = 0
        cost = thinking_cost = 0.0
        price = self.price
        for r in self.rows:
            counts[r.status] += 1
            if r.cost is not None:  # a reply that did not fit the schema was paid for too
                cost += r.cost
            elif r.status == OK:
                cost_unknown += 1
            cached += r.cached
            waits += r.waits
            if r.attempts > 1:
                retries += r.attempts - 1 - r.waits
            if r.error_kind is not None and r.status == ERROR:  # a row cancelled while rate limited did not fail
                kinds[r.error_kind] += 1
            if r.finish_reason in labels.NOTABLE_FINISH:
                finishes[r.finish_reason] += 1
            if r.reasoning_tokens:
                thinking += r.reasoning_tokens
                if price is not None and r.cost:  # what those tokens cost, at the rate the row was billed
                    thinking_cost += price.cost(0, r.reasoning_tokens)
            if r.completion_tokens is not None:
                reported += 1
                ptok += r.prompt_tokens or 0
                ctok += r.completion_tokens
        peak = self._control.peak if self._control is not None else self._peak
        serial = capacity = client_late = None
        if self.done:
            late = self.lateness.worst
            estimate = estimate_serial(self.rows, peak, queue_model=self.refused_at is None, late=late)
            if estimate is not None:
                serial, capacity = estimate
                if serial is None:
                    client_late = late  # too late to tell the server's queue from its own delays: said, not guessed
                if self.failure is not None or self.refused_at is not None:
                    capacity = None  # its times are of refusals and waits: it says so itself (server_limit)
        ok, errors = counts[OK], counts[ERROR]
        summary = Summary(
            total=len(self.rows), completed=ok + errors, ok=ok, errors=errors, cancelled=counts[CANCELLED],
            retries=retries, wall=wall, sum_latency=sum(latencies), serial=serial,
            speedup=serial / wall if serial is not None and wall > 0 else None,
            p50=_quantile(latencies, 0.50), p95=_quantile(latencies, 0.95),
            prompt_tokens=ptok if reported else None, completion_tokens=ctok if reported else None,
            tokens_per_s=ctok / wall if reported and wall > 0 else None,
            max_concurrency=peak, cached=cached, waits=waits, not_sent=counts[NOT_SENT], server_capacity=capacity,
            refused_at=self.refused_at, error_kinds=dict(kinds.most_common()), finish_reasons=dict(finishes),
            cost=cost if self.price is not None else None, cost_unknown=cost_unknown, max_cost=self.options.max_cost,
            price=self.price_note, capped=self.capped, tier=self.options.tier,
            reasoning_tokens=thinking or None, reasoning_cost=thinking_cost if thinking and price is not None else None,
            invalid=kinds[INVALID_OUTPUT], schema_form=self.schema_form, client_late=client_late,
        )
        if self.done:
            self._figures = summary  # a finished batch does not change: figure it once
        return summary

    # -- export ---------------------------------------------------------------------------------
    def to_dicts(self) -> list[dict[str, Any]]:
        return [r.to_dict() for r in self.rows]

    def to_pandas(self) -> pandas.DataFrame:
        """One row per request (needs pandas: ``pip install pandas``); with schema=, a column per field."""
        try:
            import pandas as pd
        except ImportError:
            from nbtools.errors import NbtoolsError

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

    # -- structured output ----------------------------------------------------------------------
    @property
    def invalid(self) -> list[RequestResult]:
        """Rows whose reply did not match the schema (kind ``invalid_output``), their raw text kept."""
        return reask.invalid_rows(self)

    async def aretry_invalid(self, **options: Any) -> BatchResult:
        """Send only the ``invalid`` rows again, each with the validator's message added to its conversation,
        and fill them in place (their cost adds to the batch's). ``options`` override the batch's own, e.g.
        ``via="batch"`` for a new Batch API job, or ``concurrency=4``."""
        return await reask.aretry_invalid(self, **options)

    def retry_invalid(self, **options: Any) -> BatchResult:
        """Blocking ``aretry_invalid``: works in a script and in a notebook cell."""
        from nbtools.engine.blocking import run_blocking

        return run_blocking(reask.aretry_invalid(self, **options))

    def to_jsonl(self, path: str | os.PathLike[str]) -> int:
        """Write one JSON object per request to ``path``; returns the number of lines written."""
        with open(path, "w", encoding="utf-8") as f:
            for r in self.rows:
                f.write(json.dumps(r.to_dict(), ensure_ascii=False) + "\n")
        return len(self.rows)

    # -- display --------------------------------------------------------------------------------
    def __repr__(self) -> str:
        return report.batch_text(self)

    def _repr_html_(self) -> str:
        return report.batch_html(self)


def _quantile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    k = (len(sorted_values) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)
