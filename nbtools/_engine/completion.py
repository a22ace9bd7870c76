"""One reply as the engine keeps it, whichever wire format it came in (chat completions or responses)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class Completion:
    text: str
    model: str | None
    prompt_tokens: int | None
    completion_tokens: int | None  # all output tokens, reasoning included (as providers bill them)
    finish_reason: str | None
    cached_tokens: int | None = None  # prompt tokens read from the provider's prompt cache (billed lower)
    headers: Any = None  # the response headers (rate-limit hints); not kept in results
    headers_at: float | None = None  # when they arrived (time.monotonic): a stream ends long after
    reasoning_tokens: int | None = None  # output tokens the model spent thinking (part of completion_tokens)
    refusal: str | None = None  # message.refusal: the model declined to give the structured value


def text_of(content: Any) -> str:
    """Message content as text: some servers send a list of parts ({"type": "text", "text": ...})."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return "" if content is None else str(content)


def _count(usage: dict[str, Any], details: str, name: str) -> int | None:
    node = usage.get(details)
    value = node.get(name) if isinstance(node, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def cached_tokens_of(usage: dict[str, Any], details: str = "prompt_tokens_details") -> int | None:
    """usage.<details>.cached_tokens, where the server reports it (openai-python: types/completion_usage.py,
    PromptTokensDetails; types/responses/response_usage.py, InputTokensDetails)."""
    return _count(usage, details, "cached_tokens")


def reasoning_tokens_of(usage: dict[str, Any], details: str = "completion_tokens_details") -> int | None:
    """usage.<details>.reasoning_tokens (CompletionTokensDetails; the Responses API's OutputTokensDetails)."""
    return _count(usage, details, "reasoning_tokens")
