"""A schema's fields in the views: one table column per field, and the line saying how the schema was asked.

Plain text only (the table escapes every cell): a field's value is model output, so untrusted.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from nbtools._base.schemas import Schema
from nbtools._engine.rows import ERROR

if TYPE_CHECKING:
    from nbtools._engine.rows import RequestResult
    from nbtools._engine.state import BatchState

MAX_COLUMNS = 6  # more fields than this: the rest are summed up in one "…" column


def headers(schema: Schema) -> list[str]:
    names = [c.name for c in schema.columns]
    return names if len(names) <= MAX_COLUMNS else [*names[: MAX_COLUMNS - 1], "…"]


def _shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _get(data: dict[str, Any], name: str) -> Any:
    value: Any = data
    for key in name.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


def cells(row: RequestResult, schema: Schema, partial: str) -> list[str]:
    """The row's field values; an error (or a reply still arriving) in the first cell, the rest empty."""
    n = len(headers(schema))
    if row.data is None:
        first = row.error if row.status == ERROR and row.error else partial
        return [first or "", *([""] * (n - 1))]
    names = [c.name for c in schema.columns]
    values = [_shown(_get(row.data, name)) for name in names[: n if len(names) <= MAX_COLUMNS else n - 1]]
    if len(names) > MAX_COLUMNS:
        values.append(f"+{len(names) - len(values)} fields")
    return values


def schema_line(result: BatchState) -> str | None:
    """"schema Review (4 fields) asked as json_schema strict", with the invalid rows so far."""
    schema = result.options.schema
    if schema is None:
        return None
    line = f"schema {schema.name} ({len(schema.columns)} fields)"
    if result.schema_form is not None:
        line += f" asked as {result.schema_form}"
    return line
