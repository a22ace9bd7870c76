"""The providers' prompt caches, from the client's side: the prefix a batch's rows share, measured before
anything is sent; whether the provider caches it; the layout that keeps it from caching; the cache key.

Providers cache a repeated prompt prefix, exact prefixes only, from a minimum length:
- OpenAI: automatically from 1,024 prompt tokens (platform.openai.com/docs/guides/prompt-caching);
  ``prompt_cache_key`` routes requests sharing a prefix together, ``prompt_cache_retention`` keeps it longer.
- Anthropic: where ``cache_control`` marks the end of the cached part, from 1,024 tokens (4,096 on Haiku 4.5),
  silently skipped below (docs.claude.com/en/docs/build-with-claude/prompt-caching). Its OpenAI-compatible
  endpoint ignores ``cache_control`` (docs.claude.com/en/api/openai-sdk): only its native Batch API caches here.
- OpenRouter passes ``cache_control`` on and its OpenAI models cache as OpenAI's do (openrouter.ai/docs/features/
  prompt-caching); DeepSeek caches every prompt on disk (api-docs.deepseek.com/guides/kv_cache).
- The simulator caches as OpenAI does (nbtools/sim/prefix_cache.py), from its ``prompt_cache_min`` knob (1,024).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from nbtools._base.prompts import Message
from nbtools._engine.endpoints import Endpoint

OPENAI_MINIMUM = 1024
# Fewest prompt tokens a provider caches, by profile (online requests). A provider not listed does not cache,
# or not in a way nbtools can count on.
_ONLINE_MINIMUM = {"openai": OPENAI_MINIMUM, "openrouter": OPENAI_MINIMUM, "deepseek": 64, "sim": OPENAI_MINIMUM}
ANTHROPIC_MINIMUM, ANTHROPIC_HAIKU_45_MINIMUM = 1024, 4096
ANTHROPIC_NOTE = ("Anthropic's OpenAI-compatible endpoint does not cache prompts (it ignores cache_control); "
                  "via='batch' (its Message Batches API) caches the shared system text")
KEY_PREFIX = "nbtools-"


def minimum_tokens(endpoint: Endpoint, model: str | None, *, batch_api: bool = False) -> int | None:
    """The fewest prompt tokens ``endpoint``'s provider caches a prefix of, for ``model``; None: it does not here."""
    provider = "sim" if endpoint.simulated else endpoint.provider
    if provider == "anthropic":
        if not batch_api:
            return None
        return ANTHROPIC_HAIKU_45_MINIMUM if model and "haiku-4-5" in model else ANTHROPIC_MINIMUM
    return _ONLINE_MINIMUM.get(provider)


@dataclass(frozen=True)
class SharedPrefix:
    """What every row of a batch sends first: ``tokens`` of it (the system message, identical leading messages,
    then the start every row's first differing message has in common, e.g. a template's text before its first
    placeholder), and ``after``: the tokens every row sends after the part that varies."""

    tokens: int
    after: int
    parts: tuple[str, ...]  # what it is made of, for the dry run and the summary
    digest: str  # a hash of it (never its text): what a cache key is made from

    @property
    def cache_key(self) -> str:
        """A ``prompt_cache_key`` for it: stable across re-runs of the same template, no prompt text in it (and
        within OpenAI's 64 characters)."""
        return KEY_PREFIX + self.digest[:32]

    def describe(self) -> str:
        return f"{self.tokens:,} tokens ({' + '.join(self.parts)})" if self.parts else "none"

    def layout_note(self, minimum: int | None) -> str | None:
        """One line when a long static part comes after a varying one: it cannot be cached where it is."""
        if minimum is None or self.after < minimum or self.tokens >= minimum:
            return None
        return (f"the rows share {self.after:,} tokens after the part that varies, where the prompt cache cannot "
                f"reuse them (caching needs {minimum:,} shared leading tokens): put the varying part last "
                "(e.g. {item} at the end of the template)")


def _head(a: str, b: str) -> str:
    """The longest start ``a`` and ``b`` share (startswith is C-fast; a binary search only when it fails)."""
    return a[:_longest(a, b, lambda n: b.startswith(a[:n]))]


def _tail(a: str, b: str) -> str:
    """The longest end ``a`` and ``b`` share."""
    n = _longest(a, b, lambda n: b.endswith(a[len(a) - n:]))
    return a[len(a) - n:] if n else ""


def _longest(a: str, b: str, shares: Callable[[int], bool]) -> int:
    """The largest n <= len(a), len(b) for which ``shares(n)`` holds (it holds for every smaller n too)."""
    low, high = 0, min(len(a), len(b))
    if high == len(a) and shares(high):  # the usual case, one C-fast call
        return high
    while low < high:
        mid = (low + high + 1) // 2
        if shares(mid):
            low = mid
        else:
            high = mid - 1
    return low


def _text(message: Message) -> str | None:
    content = message.get("content")
    return content if isinstance(content, str) else None


def _identical_lead(conversations: Sequence[Sequence[Message]]) -> int:
    """How many leading messages every conversation has, identical."""
    first = conversations[0]
    same = len(first)
    for conversation in conversations[1:]:
        if conversation is first:
            continue
        k = 0
        limit = min(same, len(conversation))
        while k < limit and (conversation[k] is first[k] or conversation[k] == first[k]):
            k += 1
        same = k
        if same == 0:
            break
    return same


def _shared_text(conversations: Sequence[Sequence[Message]], at: int) -> tuple[str, str, str] | None:
    """(role, the start and the end every conversation's message ``at`` shares), where all have one of one role
    with text content; else None."""
    first = conversations[0]
    if at >= len(first) or (text := _text(first[at])) is None:
        return None
    role, head, tail = first[at].get("role"), text, text
    for conversation in conversations[1:]:
        if at >= len(conversation) or conversation[at].get("role") != role:
            return None
        other = _text(conversation[at])
        if other is None:
            return None
        head, tail = _head(head, other), _tail(tail, other)
    return str(role), head, tail


def measure(conversations: Sequence[Sequence[Message]], count: Callable[[list[Message]], int]) -> SharedPrefix:
    """The prefix the rows' messages (``conversations``, one per row) share, counted with ``count`` (a body's
    prompt tokens)."""
    if not conversations:
        return SharedPrefix(0, 0, (), "")
    same = _identical_lead(conversations)
    first = list(conversations[0])
    shared = _shared_text(conversations, same) if same < len(first) else None
    return _assembled(first, same, shared, count)


def measure_texts(system: str | None, texts: Sequence[str], count: Callable[[list[Message]], int]) -> SharedPrefix:
    """``measure`` for prompts that are plain strings after one system message (or none): the strings compared as
    they are, with no message list built per row (a batch of 100,000 rows measures in milliseconds)."""
    first: list[Message] = [*([{"role": "system", "content": system}] if system else []),
                            {"role": "user", "content": texts[0]}]
    head = tail = texts[0]
    for text in texts:
        if not text.startswith(head):
            head = _head(head, text)
        if not text.endswith(tail):
            tail = _tail(tail, text)
    if head == texts[0] and all(len(text) == len(head) for text in texts):  # every prompt the same
        return _assembled(first, len(first), None, count)
    return _assembled(first, len(first) - 1, ("user", head, tail), count)


def _assembled(first: list[Message], same: int, shared: tuple[str, str, str] | None,
               count: Callable[[list[Message]], int]) -> SharedPrefix:
    """The SharedPrefix of conversations like ``first`` whose first ``same`` messages are identical, then share the
    start and end ``shared`` gives (role, head, tail) of the next one."""
    lead: list[Message] = first[:same]
    parts = []
    if lead and lead[0].get("role") == "system":
        parts.append("the system message")
    if len(lead) - len(parts) > 0:
        parts.append(f"{len(lead) - len(parts)} identical leading message{'s' if len(lead) - len(parts) > 1 else ''}")
    after = 0
    if shared is not None:
        role, head, tail = shared
        if head.strip():
            lead = [*lead, {"role": role, "content": head}]
            parts.append("the text before the part that varies")
        if tail.strip():
            after = count([{"role": role, "content": tail}])
    tokens = count(lead) if lead else 0
    digest = hashlib.sha256(json.dumps(lead, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()
    return SharedPrefix(tokens, after, tuple(parts), digest)


def openai_fields(prefix: SharedPrefix | None, minimum: int | None, retention: str | None) -> dict[str, Any]:
    """What an OpenAI request adds for its prompt cache: the key of the shared prefix, where it is long enough to be
    cached (requests with one key are routed together), and the retention asked."""
    fields: dict[str, Any] = {}
    if prefix is not None and minimum is not None and prefix.tokens >= minimum:
        fields["prompt_cache_key"] = prefix.cache_key
    if retention is not None:
        fields["prompt_cache_retention"] = retention
    return fields
