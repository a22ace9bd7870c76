"""The request file of a batch job: one line per row, split into parts the provider accepts.

OpenAI / xAI input lines (https://platform.openai.com/docs/api-reference/batch/request-input):
``{"custom_id": ..., "method": "POST", "url": "/v1/chat/completions", "body": {...}}``; one file holds at
most 50,000 requests and 200 MB (https://platform.openai.com/docs/api-reference/batch/create).
Anthropic Message Batches (https://docs.claude.com/en/api/creating-message-batches): ``{"custom_id": ...,
"params": {...}}`` per request, at most 100,000 requests and 256 MB per batch; ``params`` are the native
Messages API fields (``system`` apart from ``messages``, ``max_tokens`` required).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from nbtools._base.options import BatchOptions
from nbtools._engine.responses import to_responses
from nbtools._engine.rows import RequestResult

CHAT_URL = "/v1/chat/completions"
RESPONSES_URL = "/v1/responses"  # lines in the Responses API's format (platform.openai.com/docs/api-reference/batch)
ANTHROPIC_MAX_TOKENS = 1024  # the Messages API requires max_tokens; used when none is given


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
    count: int
    lines: list[bytes] = field(repr=False)
    digest: str  # sha256 of the lines: what this part asks
    url: str = CHAT_URL  # the one endpoint every line of the job goes to

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


def anthropic_params(body: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI chat body as native Messages API params: system messages move to ``system``."""
    params = {k: v for k, v in body.items() if k not in ("messages",)}
    system = [str(m["content"]) for m in body["messages"] if m.get("role") == "system"]
    params["messages"] = [dict(m) for m in body["messages"] if m.get("role") != "system"]
    if system:
        params["system"] = "\n\n".join(system)
    params.setdefault("max_tokens", ANTHROPIC_MAX_TOKENS)
    return params


def request_line(batch_format: BatchFormat, cid: str, body: dict[str, Any], url: str = CHAT_URL) -> bytes:
    if batch_format.name == "anthropic":
        record: dict[str, Any] = {"custom_id": cid, "params": anthropic_params(body)}
    else:
        record = {"custom_id": cid, "method": "POST", "url": url, "body": body}
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def _lines(rows: list[RequestResult], options: BatchOptions, model: str, batch_format: BatchFormat,
           tokens_field: str, url: str, form: str | None) -> Iterator[bytes]:
    # Rows of one prompt (repeat=n) share a body: build it once per prompt, not once per row.
    last_prompt: object = None
    body: dict[str, Any] = {}
    for row in rows:
        if row.prompt is not last_prompt:
            last_prompt = row.prompt
            body = options.request_body(options.messages(row.prompt), model, form)
            if tokens_field != "max_tokens" and "max_tokens" in body and tokens_field not in body:
                body[tokens_field] = body.pop("max_tokens")  # as the online path sends it to this provider
            if url == RESPONSES_URL:
                body = to_responses(body)
        yield request_line(batch_format, custom_id(row.index), body, url)


def build_parts(rows: list[RequestResult], options: BatchOptions, model: str, batch_format: BatchFormat,
                max_requests: int | None = None, max_bytes: int | None = None,
                tokens_field: str = "max_tokens", on_responses: bool = False, form: str | None = None) -> list[Part]:
    """The rows as request lines, cut wherever a part would pass the provider's limits; ``max_tokens`` is sent
    as ``tokens_field`` (OpenAI's own API: max_completion_tokens); ``on_responses``: in the Responses API's format;
    ``form``: how a schema is asked for (nbtools._base.schemas.FORMS)."""
    limit_n = min(max_requests or batch_format.max_requests, batch_format.max_requests)
    limit_b = min(max_bytes or batch_format.max_bytes, batch_format.max_bytes)
    url = RESPONSES_URL if on_responses and batch_format.name != "anthropic" else CHAT_URL
    parts: list[Part] = []
    lines: list[bytes] = []
    size, first = 0, 0
    digest = hashlib.sha256()

    def close() -> None:
        parts.append(Part(first, len(lines), lines, digest.hexdigest(), url))

    for i, line in enumerate(_lines(rows, options, model, batch_format, tokens_field, url, form)):
        if lines and (len(lines) >= limit_n or size + len(line) > limit_b):
            close()
            lines, size, first, digest = [], 0, i, hashlib.sha256()
        lines.append(line)
        size += len(line)
        digest.update(line)
    if lines:
        close()
    return parts


def run_key(batch_format: BatchFormat, base_url: str, model: str, parts: list[Part]) -> str:
    """What was asked: the endpoint, the model and every request line. The API key is never part of it."""
    blob = json.dumps([batch_format.name, base_url, CHAT_URL, model, [p.digest for p in parts]])
    return hashlib.sha256(blob.encode()).hexdigest()
