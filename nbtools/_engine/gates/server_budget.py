"""What the server says is left of its rate limit: x-ratelimit-remaining-* and x-ratelimit-reset-*.

With ``concurrency="auto"``, each reply's headers update the picture; every start takes its share
from it, and a start that does not fit waits until enough is back. Two ways a budget comes back:
- a known rate (x-ratelimit-limit-* over its window): it refills evenly;
- otherwise a window: all of it at the reset time, and again each window after that.
What a full budget holds is learned from the largest amount the server has reported left.

Each limit is read over its own window. The plain x-ratelimit-limit-requests is per minute at OpenAI but
per day at Groq (its RPD; tokens are per minute): the endpoint says which (``windows``). Cerebras names the
window in the header itself (x-ratelimit-remaining-requests-day, x-ratelimit-remaining-tokens-minute).
A budget that resets more than a minute away is a daily quota: the server's 429s will say when, not us.

Replies to requests sent together all report the same numbers, so a reply only counts for what
was sent up to its own request: starts since then are taken off what it says is left.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator, Mapping

from nbtools._engine.gates.gate import AttemptOutcome, Ticket

MAX_WAIT = 60.0  # seconds: a reset further away than this is a daily quota, not something to pace on
_KINDS = ("requests", "tokens")
WINDOWS = {"minute": 60.0, "hour": 3600.0, "day": 86400.0}  # header suffixes that name their window (Cerebras)
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class _Budget:
    """One kind of budget (requests or tokens) as the server last described it."""

    def __init__(self) -> None:
        self.left = 0.0  # what was left at time ``at``
        self.at = 0.0
        self.reset_at = 0.0  # when a window's budget is back in full
        self.window = 0.0  # the longest reset seen: how long a window lasts
        self.full = 0.0  # the most the server ever said was left (at least one request's worth)
        self.per_second: float | None = None  # the refill rate, when the limit is known

    def update(self, left: float, remaining: float, reset: float, limit: float | None, now: float,
               period: float = 60.0) -> None:
        """``period``: the seconds ``limit`` counts over (60 for a per-minute limit)."""
        self.left, self.at, self.reset_at = left, now, now + reset
        self.window = max(self.window, reset)
        self.full = max(self.full, remaining + 1)
        self.per_second = limit / period if limit else None

    def available(self, now: float) -> float:
        if self.per_second:
            return min(self.full, self.left + (now - self.at) * self.per_second)
        if now >= self.reset_at:  # a new window has begun since the last reply said otherwise
            return self.full
        return self.left

    def take(self, amount: float, now: float) -> None:
        left = self.available(now) - amount
        if not self.per_second and now >= self.reset_at:  # a new window: its reset is one window on
            windows = 1 + int((now - self.reset_at) // self.window) if self.window > 0 else 1
            self.reset_at += windows * self.window
        self.left, self.at = left, now

    def wait_for(self, amount: float, now: float) -> float:
        short = min(amount, self.full) - self.available(now)  # more than a full budget: wait for a full one
        if short <= 0:
            return 0.0
        wait = max(0.0, self.reset_at - now)
        if self.per_second:
            wait = min(wait, short / self.per_second) if wait > 0 else short / self.per_second
        return min(max(wait, 0.001), MAX_WAIT)


class ServerBudget:
    """A gate: every attempt takes its share before it starts; replies and push-backs say what is left.

    Underneath, ``take(tokens)`` before every start (seconds to wait first) and ``observe(headers, mark)``
    on every reply."""

    def __init__(self, windows: Mapping[str, float] | None = None) -> None:
        """``windows``: seconds the plain x-ratelimit-limit-{requests,tokens} count over (default: a minute)."""
        self._periods = {"requests": 60.0, "tokens": 60.0, **(windows or {})}
        self._budgets: dict[tuple[str, str], _Budget] = {}  # (kind, header suffix) -> its budget
        self._taken = {"requests": 0.0, "tokens": 0.0}  # everything ever started, for ``mark``
        self.limiting = False  # did the last ``take`` have to wait?

    async def wait(self, ticket: Ticket) -> bool:
        while (delay := self.take(ticket.tokens)) > 0:
            await asyncio.sleep(delay)
        ticket.mark = self.mark()
        return True

    def started(self, ticket: Ticket) -> None:
        pass

    def finished(self, ticket: Ticket, outcome: AttemptOutcome) -> None:
        if outcome.headers is not None and outcome.status in ("ok", "overloaded"):
            self.observe(outcome.headers, ticket.mark, outcome.headers_at)

    def mark(self) -> tuple[float, float]:
        """Where the count of starts stands: give it back to ``observe`` with the reply."""
        return self._taken["requests"], self._taken["tokens"]

    def observe(self, headers: Mapping[str, str], mark: tuple[float, float], at: float | None = None) -> None:
        """A reply's headers, received at monotonic time ``at`` (a stream's come long before its end);
        ``mark``: ``mark()`` as it was when that request started."""
        now = time.monotonic() if at is None else at
        for kind, since in zip(_KINDS, mark, strict=True):
            for suffix, period in self._suffixes(kind):
                remaining = header_number(headers.get(f"x-ratelimit-remaining-{kind}{suffix}"))
                reset = parse_duration(headers.get(f"x-ratelimit-reset-{kind}{suffix}"))
                if remaining is None or reset is None:
                    continue
                if reset > MAX_WAIT or period > 3600:  # a daily quota (or a timestamp): the 429s will say when
                    self._budgets.pop((kind, suffix), None)
                    continue
                left = remaining - (self._taken[kind] - since)  # the server had not seen those yet
                limit = header_number(headers.get(f"x-ratelimit-limit-{kind}{suffix}"))
                self._budgets.setdefault((kind, suffix), _Budget()).update(left, remaining, reset, limit, now, period)

    def _suffixes(self, kind: str) -> Iterator[tuple[str, float]]:
        """The header suffixes a budget of ``kind`` may come under, with the seconds each counts over."""
        yield "", self._periods[kind]
        for name, seconds in WINDOWS.items():
            yield f"-{name}", seconds

    def take(self, tokens: int) -> float:
        """Take one request and ``tokens`` from the budget if they fit now; else the seconds to wait."""
        needs = {"requests": 1.0, "tokens": float(max(tokens, 1))}
        wait = 0.0
        if self._budgets:
            now = time.monotonic()
            wait = max(b.wait_for(needs[kind], now) for (kind, _), b in self._budgets.items())
            if not wait:
                for (kind, _), budget in self._budgets.items():
                    budget.take(needs[kind], now)
        self.limiting = wait > 0
        if not wait:
            for kind in _KINDS:
                self._taken[kind] += needs[kind]
        return wait


def parse_duration(value: str | None) -> float | None:
    """Seconds from an x-ratelimit-reset-* value: OpenAI's '20ms', '1.5s', '6m0s', or a plain number."""
    if not value:
        return None
    value = value.strip()
    number = header_number(value)
    if number is not None:
        return max(0.0, number)
    parts = _DURATION_PART.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        return None
    return sum(float(n) * _UNIT[unit] for n, unit in parts)


def header_number(value: str | None) -> float | None:
    """A header's number, or None when it is missing or not a number."""
    try:
        return float(value) if value else None
    except ValueError:
        return None
