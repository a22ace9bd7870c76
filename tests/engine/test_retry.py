"""The retry policy on its own: which failures stop the batch, wait, retry or fail the row, and how long."""

from __future__ import annotations

import random
import time

import pytest

from nbtools._engine import failures
from nbtools._engine.retry import FAIL, RETRY, STOP, WAIT_AGAIN, RetryPolicy, backoff_delay, overload_delay, parse_retry_after


@pytest.mark.parametrize("kind", sorted(failures.BATCH_WIDE))
def test_batch_wide_failures_stop_at_once(kind: str) -> None:
    assert RetryPolicy(retries=5, max_wait=300).decide(kind, errors=1, waits=0, retry_after=None).action == STOP


@pytest.mark.parametrize("kind", sorted(failures.WAIT))
def test_rate_limits_wait_as_often_as_it_takes_without_spending_retries(kind: str) -> None:
    policy = RetryPolicy(retries=0, max_wait=300)
    for waits in range(1, 50):
        decision = policy.decide(kind, errors=0, waits=waits, retry_after=0.05)
        assert decision.action == WAIT_AGAIN and decision.delay == 0.05


def test_a_wait_without_retry_after_grows_and_stays_bounded() -> None:
    delays = [overload_delay(n) for n in range(1, 30)]
    assert delays[0] < 0.1 and max(delays) <= 4.0 * 1.5


def test_waiting_ends_after_max_wait_without_any_reply() -> None:
    policy = RetryPolicy(retries=2, max_wait=0.2)
    assert policy.decide(failures.RATE_LIMIT, errors=0, waits=1, retry_after=0.05).action == WAIT_AGAIN
    time.sleep(0.2)
    decision = policy.decide(failures.RATE_LIMIT, errors=0, waits=2, retry_after=0.05)
    assert decision.action == FAIL and "max_wait=0.2 s" in decision.why
    policy.replied()  # a reply resets the clock: the server is slow, not closed
    assert policy.decide(failures.RATE_LIMIT, errors=0, waits=3, retry_after=0.05).action == WAIT_AGAIN


def test_a_retry_after_longer_than_max_wait_fails_at_once() -> None:
    decision = RetryPolicy(retries=2, max_wait=60).decide(failures.OVERLOADED, errors=0, waits=1, retry_after=3600)
    assert decision.action == FAIL and "asked to wait 3600 s" in decision.why


@pytest.mark.parametrize("kind", sorted(failures.RETRYABLE))
def test_server_errors_retry_within_the_budget(kind: str) -> None:
    policy = RetryPolicy(retries=2, max_wait=300)
    assert [policy.decide(kind, errors=n, waits=0, retry_after=None).action for n in (1, 2, 3)] == [RETRY, RETRY, FAIL]


@pytest.mark.parametrize("kind", sorted(failures.ROW_ONLY))
def test_row_errors_fail_the_row_without_a_retry(kind: str) -> None:
    assert RetryPolicy(retries=5, max_wait=300).decide(kind, errors=1, waits=0, retry_after=None).action == FAIL


def test_backoff_doubles_with_jitter_and_honours_a_sane_retry_after() -> None:
    rng = random.Random(1)
    assert [round(backoff_delay(n, None, rng) / (0.5 * 2 ** (n - 1)), 2) <= 1 for n in (1, 2, 3)] == [True] * 3
    assert backoff_delay(1, 2.5) == 2.5 and backoff_delay(6, None, rng) <= 8.0


def test_retry_after_headers_are_read_in_milliseconds_seconds_or_as_a_date() -> None:
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # in the past
    assert parse_retry_after({}) is None
