"""A schema's fields as DataFrame columns: one per field (``a.b`` when nested), in nullable dtypes.

Integers are Int64, numbers Float64, booleans boolean, strings string, enums and Literals category;
lists stay lists (object). A row without data (an error, or not run) has <NA> in every field.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from nbtools._base.errors import ConfigError
from nbtools._base.judging import Scale
from nbtools._base.schemas import Column, Schema
from nbtools._engine.rows import RequestResult

if TYPE_CHECKING:
    import pandas


def _get(data: dict[str, Any] | None, path: list[str]) -> Any:
    value: Any = data
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def field_columns(rows: Sequence[RequestResult], schema: Schema, index: Any, prefix: str = "") -> dict[str, pandas.Series]:
    """name -> Series for every field of ``schema``, one value per row."""
    import pandas as pd

    found: dict[str, pd.Series] = {}
    for column in schema.columns:
        path = column.name.split(".")
        values = [_get(row.data, path) for row in rows]
        found[prefix + column.name] = pd.Series(_typed(values, column), index=index, name=prefix + column.name)
    return found


def _typed(values: list[Any], column: Column) -> Any:
    import pandas as pd

    if column.dtype == "category":
        return pd.Categorical(values, categories=list(column.categories))
    if column.dtype == "object":
        return pd.array(values, dtype=object)
    return pd.array(values, dtype=column.dtype)


def graded_columns(rows: Sequence[RequestResult], expected: bool, checks: Sequence[str], judge: Scale | None,
                   index: Any) -> dict[str, pandas.Series]:
    """With expected=: ``expected``; with checks=: ``check.NAME`` per check (boolean, or Float64 when a check gave
    numbers) and ``check_error`` (which checks raised on the row); with a judge: ``judge.score`` (Float64),
    ``judge.pass`` (boolean, with pass/fail) and ``judge.reason``."""
    import pandas as pd

    found: dict[str, pd.Series] = {}
    if expected:
        found["expected"] = pd.Series([row.expected for row in rows], index=index, name="expected", dtype=object)
    for name in checks:
        values = [None if row.checks is None else row.checks.get(name) for row in rows]
        numeric = any(not isinstance(value, bool) for value in values if value is not None)
        column = f"check.{name}"
        found[column] = pd.Series(pd.array(values, dtype="Float64" if numeric else "boolean"), index=index, name=column)
    if checks:
        found["check_error"] = pd.Series(pd.array([row.check_error for row in rows], dtype="string"), index=index,
                                         name="check_error")
    if judge is not None:
        verdicts = [row.judge for row in rows]
        found["judge.score"] = pd.Series(pd.array([v and v.score for v in verdicts], dtype="Float64"), index=index)
        if judge.passfail:
            found["judge.pass"] = pd.Series(pd.array([v and v.passed for v in verdicts], dtype="boolean"), index=index)
        found["judge.reason"] = pd.Series(pd.array([v and v.reason for v in verdicts], dtype="string"), index=index)
    return found


def graded_record(row: RequestResult, expected: bool, checks: bool, judged: bool) -> dict[str, Any]:
    """A row's reference, checks and verdict for a JSONL line (only those the batch had)."""
    record: dict[str, Any] = {}
    if expected:
        record["expected"] = row.expected
    if checks:
        record["checks"], record["check_error"] = row.checks, row.check_error
    if judged:
        verdict = row.judge
        record["judge"] = None if verdict is None else {"score": verdict.score, "passed": verdict.passed,
                                                        "reason": verdict.reason}
    return record


def check_clash(schema: Schema, taken: Sequence[str], where: str) -> None:
    """A field named like a column already there: one line saying which, and the fix."""
    clash = [c.name for c in schema.columns if c.name in set(taken)]
    if clash:
        raise ConfigError(f"the schema's field {clash[0]!r} clashes with the column {clash[0]!r} of {where}: "
                          "rename the field (e.g. with a Pydantic alias), or rename that column first")


def join_frame(frame: pandas.DataFrame, rows: Sequence[RequestResult], schema: Schema) -> pandas.DataFrame:
    """``frame`` (the one the batch ran --over) with a column per field, aligned to its index."""
    if len(frame) != len(rows):
        raise ConfigError(f"join() needs the frame the batch ran over: it has {len(frame)} rows and the batch "
                          f"{len(rows)} (with repeat=n, join each sample's rows yourself from to_pandas())")
    check_clash(schema, [str(c) for c in frame.columns], "the frame")
    joined = frame.copy()
    for name, series in field_columns(rows, schema, frame.index).items():
        joined[name] = series
    return joined
