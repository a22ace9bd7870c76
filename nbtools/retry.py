"""When to retry a failed request, and how long to wait first."""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

__all__ = ["RETRYABLE_STATUS", "backoff_delay", "parse_retry_after"]

RETRYABLE_STATUS = frozenset({408, 409, 429}) | frozenset(range(500, 600))
BASE_DELAY = 0.5
MAX_DELAY = 8.0
MAX_RETRY_AFTER = 120.0  # a server asking for longer than this is not worth waiting for inline


def backoff_delay(attempt: int, retry_after: float | None, rng: random.Random = random._inst) -> float:  # type: ignore[attr-defined]
    """Seconds to wait before retry number ``attempt`` (1 = first retry).

    The server's Retry-After wins when it is sane; otherwise exponential backoff with up to 25% jitter,
    so a crowd of clients that failed together does not come back together.
    """
    if retry_after is not None and 0 <= retry_after <= MAX_RETRY_AFTER:
        return retry_after
    return min(MAX_DELAY, BASE_DELAY * 2 ** (attempt - 1)) * (1 - 0.25 * rng.random())


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
