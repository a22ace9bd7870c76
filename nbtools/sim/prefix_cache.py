"""The simulator's prompt cache: the prefixes of answered requests, read back as cached prompt tokens.

As OpenAI's automatic prompt caching does (platform.openai.com/docs/guides/prompt-caching): a prompt of at least
``minimum`` tokens has its prefix cached once it has been processed, in steps of 128 tokens past the minimum; a
later request whose prompt starts with a cached prefix reports those tokens as
``usage.prompt_tokens_details.cached_tokens``; an entry lasts ``ttl`` seconds from its last use. Exact prefixes only:
a single differing word early in the prompt leaves nothing to read. Each model has its own cache. Tokens are the
simulator's words.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

STEP = 128  # past the minimum, a cached prefix grows in steps of this many tokens (OpenAI's increments)


def _prefix_digests(model: str, messages: Sequence[tuple[str, str]], minimum: int) -> list[tuple[int, str]]:
    """(length, digest) of each prefix of the prompt that could be cached: ``minimum`` tokens, then every STEP.
    Each model has a cache of its own."""
    digests: list[tuple[int, str]] = []
    running = hashlib.blake2b(model.encode(), digest_size=16)
    count, next_cut = 0, minimum
    for role, text in messages:
        running.update(f"\x1e{role}\x1e".encode())  # a role boundary is part of the prefix, not a token
        for word in text.split():
            running.update(word.encode() + b"\x1f")
            count += 1
            if count == next_cut:
                digests.append((count, running.copy().hexdigest()))
                next_cut += STEP
    return digests


class PrefixCache:
    """Which prompt prefixes are cached, until when (monotonic seconds)."""

    def __init__(self) -> None:
        self._until: dict[str, float] = {}

    def read(self, model: str, messages: Sequence[tuple[str, str]], minimum: int, ttl: float,
             now: float) -> tuple[int, list[tuple[int, str]]]:
        """(the tokens this prompt to ``model`` reads from the cache, its prefixes to store once it is answered)."""
        if minimum <= 0:
            return 0, []
        prefixes = _prefix_digests(model, messages, minimum)
        cached = 0
        for length, digest in prefixes:
            until = self._until.get(digest)
            if until is None or until < now:
                break
            cached = length
            self._until[digest] = now + ttl  # a hit keeps the entry alive
        return cached, prefixes

    def write(self, prefixes: list[tuple[int, str]], ttl: float, now: float) -> None:
        """The prompt has been processed: its prefixes are cached for ``ttl`` seconds."""
        for _, digest in prefixes:
            self._until[digest] = now + ttl
        if len(self._until) > 100_000:  # forget what has expired, now and then
            self._until = {d: t for d, t in self._until.items() if t >= now}
