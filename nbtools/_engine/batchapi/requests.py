"""The request file of a batch job: one line per row, split into parts the provider accepts.

The lines are written by nbtools._engine.wire (the same bodies as an online run, from the same plan); here they
are cut where a part would pass the provider's limits: OpenAI and xAI take at most 50,000 requests and 200 MB
per file (https://platform.openai.com/docs/api-reference/batch/create), Anthropic's Message Batches 100,000
requests and 256 MB per batch (https://docs.claude.com/en/api/creating-message-batches).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from nbtools._base.options import BatchOptions
from nbtools._engine import wire
from nbtools._engine.plan import plan
from nbtools._engine.rows import RequestResult
from nbtools._engine.wire import BATCH_CHAT_URL, BATCH_RESPONSES_URL, Dialect


@dataclass(frozen=True)
class BatchFormat:
    """One provider's Batch API request format, and what it accepts per job."""

    name: str  # "openai" (also xAI and our simulator) or "anthropic"
    max_requests: int
    max_bytes: int


OPENAI = BatchFormat("openai", 50_000, 200 * 2**20)
ANTHROPIC = BatchFormat("anthropic", 100_000, 256 * 2**20)


@dataclass
class Part:
    """One job's worth of rows: its index range, its request bytes and its share of the key."""

    first: int  # row index of its first line
    count: int  # rows from first (a row refused before the batch has no line, so there may be fewer lines)
    lines: list[bytes] = field(repr=False)
    digest: str  # sha256 of the lines: what this part asks
    url: str = BATCH_CHAT_URL  # the one endpoint every line of the job goes to

    @property
    def size(self) -> int:
        return sum(len(line) for line in self.lines)


def custom_id(index: int) -> str:
    # Anthropic allows ^[a-zA-Z0-9_-]{1,64}$; OpenAI any string: one form fits both.
    return f"r{index}"


def row_index(cid: str) -> int | None:
    if cid[:1] == "r" and cid[1:].isdigit():
        return int(cid[1:])
    return None


def _lines(rows: list[RequestResult], options: BatchOptions, model: str, batch_format: BatchFormat, dialect: Dialect,
           url: str, form: str | None, fields: dict[str, Any] | None, cache_system: bool) -> Iterator[tuple[int, bytes]]:
    """Each row's position and request line (rows refused before the batch have none)."""
    on_responses = url == BATCH_RESPONSES_URL
    last: object = None
    sent: dict[str, Any] = {}
    for i, (row, body, _, _) in enumerate(plan(rows, options, model, form, fields=fields)):
        if row.done:  # refused before the batch began (on_bad_input="skip"): no line, its error stays
            continue
        if body is not last:  # the rows of one prompt share a body: encode it once
            last, sent = body, dialect.encode(body, on_responses)
        yield i, wire.batch_line(batch_format.name, custom_id(row.index), sent, url, cache_system=cache_system)


def build_parts(rows: list[RequestResult], options: BatchOptions, model: str, batch_format: BatchFormat,
                dialect: Dialect, *, max_requests: int | None = None, max_bytes: int | None = None,
                form: str | None = None, fields: dict[str, Any] | None = None, cache_system: bool = False) -> list[Part]:
    """The rows as request lines, as ``dialect`` takes them (the reply bound under its name there; the Responses
    API's format for a model that answers only there), cut wherever a part would pass the provider's limits;
    ``form``: how a schema is asked for (wire.schema_form); ``fields``: what every line adds (plan.cache_fields);
    ``cache_system``: mark the system text the lines share for the provider's prompt cache (Anthropic's format)."""
    limit_n = min(max_requests or batch_format.max_requests, batch_format.max_requests)
    limit_b = min(max_bytes or batch_format.max_bytes, batch_format.max_bytes)
    responses = batch_format.name != "anthropic" and dialect.on_responses(model)
    url = BATCH_RESPONSES_URL if responses else BATCH_CHAT_URL
    parts: list[Part] = []
    lines: list[bytes] = []
    size, first = 0, 0
    digest = hashlib.sha256()

    end = 0  # the position after the part's last row

    def close() -> None:
        parts.append(Part(first, end - first, lines, digest.hexdigest(), url))

    for i, line in _lines(rows, options, model, batch_format, dialect, url, form, fields, cache_system):
        if lines and (len(lines) >= limit_n or size + len(line) > limit_b):
            close()
            lines, size, first, digest = [], 0, i, hashlib.sha256()
        lines.append(line)
        size += len(line)
        digest.update(line)
        end = i + 1
    if lines:
        close()
    return parts


def run_key(batch_format: BatchFormat, base_url: str, model: str, parts: list[Part]) -> str:
    """What was asked: the endpoint, the model and every request line. The API key is never part of it."""
    blob = json.dumps([batch_format.name, base_url, BATCH_CHAT_URL, model, [p.digest for p in parts]])
    return hashlib.sha256(blob.encode()).hexdigest()
