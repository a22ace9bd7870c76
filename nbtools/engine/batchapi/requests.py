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

from nbtools.engine.rows import RequestResult
from nbtools.options import BatchOptions

__all__ = ["Part", "Protocol", "build_parts", "custom_id", "row_index", "ANTHROPIC_MAX_TOKENS"]

CHAT_URL = "/v1/chat/completions"
ANTHROPIC_MAX_TOKENS = 1024  # the Messages API requires max_tokens; used when none is given


@dataclass(frozen=True)
class Protocol:
    """What one provider's Batch API accepts per job."""

    name: str  # "openai" (also xAI and our simulator) or "anthropic"
    max_requests: int
    max_bytes: int


OPENAI = Protocol("openai", 50_000, 200 * 2**20)
ANTHROPIC = Protocol("anthropic", 100_000, 256 * 2**20)


@dataclass
class Part:
    """One job's worth of rows: its index range, its request bytes and its share of the key."""

    first: int  # row index of its first line
    count: int
    lines: list[bytes] = field(repr=False)
    digest: str  # sha256 of the lines: what this part asks

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


def request_line(protocol: Protocol, cid: str, body: dict[str, Any]) -> bytes:
    if protocol.name == "anthropic":
        record: dict[str, Any] = {"custom_id": cid, "params": anthropic_params(body)}
    else:
        record = {"custom_id": cid, "method": "POST", "url": CHAT_URL, "body": body}
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def _lines(rows: list[RequestResult], options: BatchOptions, model: str, protocol: Protocol,
           form: str | None) -> Iterator[bytes]:
    # Rows of one prompt (repeat=n) share a body: build it once per prompt, not once per row.
    last_prompt: object = None
    body: dict[str, Any] = {}
    for row in rows:
        if row.prompt is not last_prompt:
            last_prompt = row.prompt
            body = options.request_body(options.messages(row.prompt), model, form)
        yield request_line(protocol, custom_id(row.index), body)


def build_parts(rows: list[RequestResult], options: BatchOptions, model: str, protocol: Protocol,
                max_requests: int | None = None, max_bytes: int | None = None, form: str | None = None) -> list[Part]:
    """The rows as request lines, cut wherever a part would pass the provider's limits."""
    limit_n = min(max_requests or protocol.max_requests, protocol.max_requests)
    limit_b = min(max_bytes or protocol.max_bytes, protocol.max_bytes)
    parts: list[Part] = []
    lines: list[bytes] = []
    size, first = 0, 0
    digest = hashlib.sha256()

    def close() -> None:
        parts.append(Part(first, len(lines), lines, digest.hexdigest()))

    for i, line in enumerate(_lines(rows, options, model, protocol, form)):
        if lines and (len(lines) >= limit_n or size + len(line) > limit_b):
            close()
            lines, size, first, digest = [], 0, i, hashlib.sha256()
        lines.append(line)
        size += len(line)
        digest.update(line)
    if lines:
        close()
    return parts


def job_key(protocol: Protocol, base_url: str, model: str, parts: list[Part]) -> str:
    """What was asked: the endpoint, the model and every request line. The API key is never part of it."""
    blob = json.dumps([protocol.name, base_url, CHAT_URL, model, [p.digest for p in parts]])
    return hashlib.sha256(blob.encode()).hexdigest()
