"""Reply text: a pure function of the seed and the request's messages.

Tokens are whitespace-separated words (with their trailing whitespace) so that
streamed chunks concatenate back to exactly the non-streamed text.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass

from nbtools.sim.config import REPLY_MODES

# A reply = one opener + some middles + one closer, 20-60 words in all.
_OPENERS = (
    "Good question.",
    "Sure, happy to help with that.",
    "Thanks for asking.",
    "Here is a short answer.",
    "Let me think about that for a moment.",
    "That is an interesting one.",
    "Of course.",
    "I am doing well, thank you for asking.",
)
# A greeting gets a greeting back, so the classic "Hello, how are you?" lesson reads naturally.
_GREETING = re.compile(r"^\W*(hello|hi|hey|good (morning|afternoon|evening))\b|how are you", re.IGNORECASE)
_GREETING_OPENERS = (
    "Hello! I am doing well, thank you for asking.",
    "Hi there, I am doing great, thanks.",
    "Hello! All good here, thank you.",
)
_MIDDLES = (
    "The short version is that it depends on what you are trying to achieve.",
    "Most people start with the simplest approach and refine it later.",
    "A small example usually makes the idea much clearer.",
    "It helps to break the problem into smaller steps first.",
    "The main trade-off is between speed and simplicity.",
    "In practice the details matter less than getting started.",
    "You can usually test this quickly with a few lines of code.",
    "Many tools already handle the hard parts for you.",
    "Keep in mind that real data is often messier than examples.",
    "Measuring before optimising saves a lot of wasted effort.",
    "Running several requests at once hides most of the waiting time.",
    "Latency comes mostly from the model generating tokens one by one.",
    "Caching repeated work is an easy win in many programs.",
    "Writing down your assumptions makes mistakes easier to spot.",
    "A good first step is to read the documentation carefully.",
    "There are a few common patterns worth knowing here.",
    "The answer changes a little depending on the context.",
    "Errors are normal, so plan for retries from the beginning.",
    "Clear names make code much easier to read later.",
    "Try the simplest thing that could possibly work.",
    "Rate limits exist so that one user cannot overwhelm a shared service.",
    "Small experiments teach more than long discussions.",
    "It is worth checking the result against a known answer.",
    "Notebooks are great for exploring ideas step by step.",
    "Concurrency is about waiting on many things at the same time.",
    "The same idea applies to many other kinds of problems.",
)
_CLOSERS = (
    "I hope that helps.",
    "Let me know if you would like more detail.",
    "Feel free to ask a follow-up question.",
    "Good luck with your project.",
    "Happy to go deeper on any part of this.",
    "Does that answer your question?",
    "Thanks again for the question.",
)
_MIN_WORDS, _MAX_WORDS = 20, 60
_CACHE_LIMIT = 10_000

_BOUNDARY = re.compile(r"(?<=\s)(?=\S)")


def tokenize(text: str) -> tuple[str, ...]:
    """Word pieces whose concatenation is ``text``; one streamed chunk each."""
    return tuple(piece for piece in _BOUNDARY.split(text) if piece)


def count_words(text: str) -> int:
    return len(text.split())


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    tokens: tuple[str, ...]

    @classmethod
    def of(cls, text: str) -> Reply:
        return cls(text, tokenize(text))

    def truncated(self, max_tokens: int) -> Reply:
        pieces = list(self.tokens[:max_tokens])
        pieces[-1] = pieces[-1].rstrip()
        return Reply("".join(pieces), tuple(pieces))


class ReplyMaker:
    """Chooses the reply for a request under one (seed, mode) pair; caches by content."""

    def __init__(self, seed: int, mode: str) -> None:
        self._seed = seed.to_bytes(16, "little", signed=True)
        self._mode = mode
        self._fixed = None if mode in REPLY_MODES else Reply.of(mode)
        self._cache: dict[bytes | str, Reply] = {}

    def make(self, messages: list[tuple[str, str]], last_user: str) -> Reply:
        if self._fixed is not None:
            return self._fixed
        key: bytes | str = last_user if self._mode == "echo" else self._digest(messages)
        reply = self._cache.get(key)
        if reply is None:
            reply = Reply.of(last_user if self._mode == "echo" else self._varied(key, bool(_GREETING.search(last_user))))
            if len(self._cache) >= _CACHE_LIMIT:  # bound memory under ever-new prompts
                self._cache.clear()
            self._cache[key] = reply
        return reply

    def _digest(self, messages: list[tuple[str, str]]) -> bytes:
        h = hashlib.blake2b(self._seed, digest_size=16)
        for role, content in messages:
            h.update(role.encode())
            h.update(b"\0")
            h.update(content.encode())
            h.update(b"\0")
        return h.digest()

    @staticmethod
    def _varied(digest: bytes | str, greeting: bool) -> str:
        rng = random.Random(digest)
        opener, closer = rng.choice(_GREETING_OPENERS if greeting else _OPENERS), rng.choice(_CLOSERS)
        target = rng.randint(_MIN_WORDS, _MAX_WORDS)
        words = count_words(opener) + count_words(closer)
        middles = []
        for sentence in rng.sample(_MIDDLES, len(_MIDDLES)):
            if words >= target:
                break
            n = count_words(sentence)
            if words + n <= _MAX_WORDS:
                middles.append(sentence)
                words += n
        return " ".join([opener, *middles, closer])
