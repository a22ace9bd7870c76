"""Server-side counters, so tests can check client behaviour from the server's side."""

from __future__ import annotations

from collections import Counter, deque
from typing import Any

LOG_SIZE = 10_000


class Stats:
    """Plain attributes, bumped inline by the handlers (no per-request allocation beyond the log record)."""

    def __init__(self) -> None:
        self.in_flight = 0  # a live gauge: survives reset()
        self.reset(processing=0)

    def reset(self, processing: int) -> None:
        self.requests = 0
        self.completed = 0
        self.peak_in_flight = self.in_flight
        self.peak_processing = processing
        self.status: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.rate_limited = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.prompt_cache_hits = 0  # requests that read part of their prompt from the prompt cache
        self.cached_tokens = 0  # prompt tokens they read from it
        # Records are {"t", "key", "status", "stream"}; "status" is filled in when the reply ends.
        self.log: deque[dict[str, Any]] = deque(maxlen=LOG_SIZE)

    def arrive(self, record: dict[str, Any]) -> None:
        self.requests += 1
        self.in_flight += 1
        if self.in_flight > self.peak_in_flight:
            self.peak_in_flight = self.in_flight
        self.log.append(record)

    def finish(self, record: dict[str, Any], status: int) -> None:
        record["status"] = status
        self.status[str(status)] += 1
        if status == 200:
            self.completed += 1
        elif status == 429:
            self.rate_limited += 1

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "completed": self.completed,
            "in_flight": self.in_flight,
            "peak_in_flight": self.peak_in_flight,
            "peak_processing": self.peak_processing,
            "status": dict(self.status),
            "faults": dict(self.faults),
            "rate_limited": self.rate_limited,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "prompt_cache_hits": self.prompt_cache_hits,
            "cached_tokens": self.cached_tokens,
            "log": [dict(record) for record in self.log],
        }
