"""Rate limits (requests/tokens per minute) and the capacity gate."""

from __future__ import annotations

import asyncio
import math
from collections import deque

WINDOW = 60.0  # seconds; rpm/tpm are counted over any sliding window this long


class RateLimiter:
    """Sliding 60 s windows: never more than ``rpm`` requests or ``tpm`` tokens in any window.

    A sliding window (rather than a full token bucket) means no initial burst
    beyond the limit: a client that respects "N per minute" never sees a 429.
    """

    def __init__(self, rpm: float | None, tpm: float | None) -> None:
        self.rpm, self.tpm = rpm, tpm
        self._requests: deque[float] = deque()  # admission times
        self._tokens: deque[tuple[float, int]] = deque()  # (admission time, cost)
        self._token_sum = 0

    def admit(self, now: float, cost: int) -> tuple[str, float] | None:
        """Record and return None if the request fits; else (limit kind, seconds until it would)."""
        self._expire(now)
        if self.rpm is not None and len(self._requests) >= self.rpm:
            # The request fits once enough of the oldest admissions leave the window.
            oldest_needed = self._requests[math.floor(len(self._requests) - self.rpm)]
            return "requests", oldest_needed + WINDOW - now
        if self.tpm is not None and self._token_sum + cost > self.tpm:
            return "tokens", self._token_wait(now, cost)
        if self.rpm is not None:
            self._requests.append(now)
        if self.tpm is not None:
            self._tokens.append((now, cost))
            self._token_sum += cost
        return None

    def headers(self, now: float) -> dict[str, str]:
        """OpenAI's x-ratelimit-* headers for the limits that are set."""
        self._expire(now)
        out = {}
        if self.rpm is not None:
            out["x-ratelimit-limit-requests"] = _number(self.rpm)
            out["x-ratelimit-remaining-requests"] = str(max(0, math.ceil(self.rpm - len(self._requests))))
            newest = self._requests[-1] if self._requests else now - WINDOW
            out["x-ratelimit-reset-requests"] = duration(newest + WINDOW - now)
        if self.tpm is not None:
            out["x-ratelimit-limit-tokens"] = _number(self.tpm)
            out["x-ratelimit-remaining-tokens"] = str(max(0, math.floor(self.tpm - self._token_sum)))
            newest = self._tokens[-1][0] if self._tokens else now - WINDOW
            out["x-ratelimit-reset-tokens"] = duration(newest + WINDOW - now)
        return out

    def _expire(self, now: float) -> None:
        cutoff = now - WINDOW
        requests, tokens = self._requests, self._tokens
        while requests and requests[0] <= cutoff:
            requests.popleft()
        while tokens and tokens[0][0] <= cutoff:
            self._token_sum -= tokens.popleft()[1]

    def _token_wait(self, now: float, cost: int) -> float:
        if cost > self.tpm:  # type: ignore[operator]  # can never fit; ask for a full window
            return WINDOW
        used = self._token_sum
        for t, spent in self._tokens:
            used -= spent
            if used + cost <= self.tpm:  # type: ignore[operator]
                return t + WINDOW - now
        return WINDOW


def duration(seconds: float) -> str:
    """Durations as OpenAI writes them: '120ms', '1.2s', '1m3.5s'."""
    seconds = max(0.0, seconds)
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    return f"{int(seconds // 60)}m{seconds % 60:.1f}s"


def retry_headers(wait: float) -> dict[str, str]:
    """retry-after in seconds (rounded up to the millisecond: '1', '0.25') and retry-after-ms."""
    ms = math.ceil(max(0.0, wait) * 1000)
    return {"retry-after": _number(ms / 1000), "retry-after-ms": str(ms)}


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


class CapacityGate:
    """Counts requests being processed; past ``capacity`` callers queue in FIFO order."""

    def __init__(self) -> None:
        self.capacity: int | None = None  # set live from the config
        self.processing = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    def try_enter(self) -> bool:
        if self._has_room() and not self._waiters:
            self.processing += 1
            return True
        return False

    async def enter(self) -> None:
        """Wait for a slot (the releaser hands it over, so waiters cannot be overtaken)."""
        if self.try_enter():
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # a slot was handed over just before
                self.leave()
            raise

    def leave(self) -> None:
        self.processing -= 1
        self.wake()

    def wake(self) -> None:
        """Hand free slots to waiters; also called when capacity is raised live."""
        while self._waiters and self._has_room():
            waiter = self._waiters.popleft()
            if not waiter.done():  # cancelled waiters are skipped
                self.processing += 1
                waiter.set_result(None)

    def _has_room(self) -> bool:
        return self.capacity is None or self.processing < self.capacity
