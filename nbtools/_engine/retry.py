"""What to do after a failed attempt, and how long to wait first: the one retry policy.

- A batch-wide failure (a refused key, no quota, a model that is not there) stops the batch:
  every other request would get the same answer.
- A rate limit or an overloaded server means "slower", not "fail": the request waits (without
  holding a concurrency slot) and goes again, as often as it takes, until the batch has gone
  ``max_wait`` seconds without a single reply.
- A server error, timeout, dropped connection or cut-off stream is retried ``retries`` times,
  with exponential backoff.
- Anything else (a bad request, a content filter) is this row's error: sending it again would not help.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

from nbtools._engine.failures import BATCH_WIDE, RETRYABLE, WAIT

BASE_DELAY = 0.5
MAX_DELAY = 8.0
MAX_RETRY_AFTER = 120.0  # a server asking for longer than this is not worth waiting for inline
STOP, WAIT_AGAIN, RETRY, FAIL = "stop", "wait", "retry", "fail"


@dataclass(frozen=True)
class Decision:
    action: str  # STOP, WAIT_AGAIN, RETRY or FAIL
    delay: float = 0.0
    why: str = ""  # for FAIL after waiting: why the waiting ended


class RetryPolicy:
    """Decides each failed attempt; ``replied()`` on every success resets the ``max_wait`` clock."""

    def __init__(self, retries: int, max_wait: float) -> None:
        self.retries = retries
        self.max_wait = max_wait
        self._last_reply = time.monotonic()

    def replied(self) -> None:
        self._last_reply = time.monotonic()

    def decide(self, kind: str, *, errors: int, waits: int, retry_after: float | None) -> Decision:
        """``errors``/``waits``: this row's failed attempts so far that counted as errors / as waits."""
        if kind in BATCH_WIDE:
            return Decision(STOP)
        if kind in WAIT:
            delay = retry_after if retry_after is not None else overload_delay(waits + 1)
            if delay > self.max_wait:
                return Decision(FAIL, why=f"the server asked to wait {round(delay, 3):g} s, "
                                          f"more than max_wait={self.max_wait:g} s")
            starved = time.monotonic() - self._last_reply
            if starved >= self.max_wait:
                return Decision(FAIL, why=f"no reply for {starved:.0f} s while rate limited (max_wait={self.max_wait:g} s): "
                                          "lower concurrency or rpm, or raise max_wait")
            return Decision(WAIT_AGAIN, min(delay, self.max_wait - starved))  # one last try at max_wait
        if kind in RETRYABLE and errors <= self.retries:
            return Decision(RETRY, backoff_delay(errors, retry_after))
        return Decision(FAIL)


def overload_delay(waits: int) -> float:
    """A jittered pause after a 429/503 that named no wait: short at first, up to ~4 s when it goes on."""
    return min(4.0, 0.05 * 2.0 ** (waits - 1)) * (0.5 + random.random())


def backoff_delay(attempt: int, retry_after: float | None, rng: random.Random = random._inst) -> float:
    """Seconds to wait before retry number ``attempt`` (1 = first retry).

    The server's Retry-After wins when it is sane; otherwise exponential backoff with up to 25% jitter,
    so a crowd of clients that failed together does not come back together.
    """
    if retry_after is not None and 0 <= retry_after <= MAX_RETRY_AFTER:
        return retry_after
    return min(MAX_DELAY, BASE_DELAY * 2.0 ** (attempt - 1)) * (1 - 0.25 * rng.random())


def retry_delay_in_body(body: object) -> float | None:
    """Seconds from a google.rpc.RetryInfo in an error body (Gemini's 429: ``"retryDelay": "45s"``), if any."""
    if isinstance(body, list) and len(body) == 1:  # Gemini's OpenAI-compatible endpoint wraps it in a list
        body = body[0]
    error = body.get("error") if isinstance(body, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    for detail in details if isinstance(details, list) else ():
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("RetryInfo"):
            delay = str(detail.get("retryDelay", ""))
            try:
                return float(delay.removesuffix("s"))
            except ValueError:
                return None
    return None


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date), if present."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())
