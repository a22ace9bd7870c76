"""Rate limits: requests and tokens per minute."""

from __future__ import annotations

import math


class _Bucket:
    """A token bucket: refills at ``rate`` per second up to ``capacity``; may run into debt."""

    def __init__(self, per_minute: float, burst_seconds: float) -> None:
        self.limit = per_minute
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * burst_seconds)
        self.level = self.capacity
        self.updated: float | None = None

    def refill(self, now: float) -> None:
        if self.updated is not None:
            self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
        self.updated = now

    def wait_for(self, cost: float) -> float:
        """Seconds until ``cost`` fits (a cost above the capacity needs a full bucket)."""
        need = min(cost, self.capacity)
        return 0.0 if self.level >= need else (need - self.level) / self.rate

    def headers(self, kind: str) -> dict[str, str]:
        return {
            f"x-ratelimit-limit-{kind}": _number(self.limit),
            f"x-ratelimit-remaining-{kind}": str(max(0, math.floor(self.level))),
            f"x-ratelimit-reset-{kind}": duration((self.capacity - self.level) / self.rate),
        }


class RateLimiter:
    """Requests and tokens per minute, enforced as providers do: over short windows.

    Each limit is a token bucket that refills at limit/60 per second and holds ``burst_seconds``
    of budget (at least one request), so "600 per minute" means about 10 a second, not 600 at
    once: a client that sends evenly never sees a 429, one that bursts sees them within a second.
    """

    def __init__(self, rpm: float | None, tpm: float | None, burst_seconds: float = 1.0) -> None:
        self.rpm, self.tpm = rpm, tpm
        self._requests = _Bucket(rpm, burst_seconds) if rpm is not None else None
        self._tokens = _Bucket(tpm, burst_seconds) if tpm is not None else None

    def admit(self, now: float, cost: int) -> tuple[str, float] | None:
        """Take the budget and return None if the request fits; else (limit kind, seconds until it would)."""
        for kind, bucket, amount in (("requests", self._requests, 1), ("tokens", self._tokens, cost)):
            if bucket is not None:
                bucket.refill(now)
                wait = bucket.wait_for(amount)
                if wait > 0:
                    return kind, wait
        if self._requests is not None:
            self._requests.level -= 1
        if self._tokens is not None:
            self._tokens.level -= cost
        return None

    def headers(self, now: float) -> dict[str, str]:
        """OpenAI's x-ratelimit-* headers for the limits that are set."""
        out: dict[str, str] = {}
        for kind, bucket in (("requests", self._requests), ("tokens", self._tokens)):
            if bucket is not None:
                bucket.refill(now)
                out.update(bucket.headers(kind))
        return out


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
