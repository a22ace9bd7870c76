"""A batch's serial-equivalent time, estimated without the time requests waited in the server's queue.

A latency measured under concurrency includes any time the request sat in the server's own queue:
against a server that runs one request at a time, 16 requests sent at once take 0.1, 0.2, ... 1.6 s,
and their sum (13.6 s) would claim an 8.5x speedup that never happened. So each request's service
time is estimated with the simplest model that explains the observed times: a first-come,
first-served server with ``k`` slots. Replaying the batch through it (start times and finish times
as observed) gives when each request could have begun service, and so its service time. Too few
slots make service times collapse towards zero (requests "begin" after they have already finished)
or make queued requests look faster than the rest; the smallest ``k`` free of both is the server's
capacity. When it is the client's own peak concurrency, no queueing was seen and the latencies
stand as measured.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Iterable, Sequence

from nbtools._engine.rows import OK, RequestResult

MODEL_ROWS = 2000  # the first requests, in start order, are enough to find the capacity
COLLAPSED = 0.3  # a service time below this share of the typical one is one a wrong model made up
COLLAPSED_ONE = 0.1  # ... when only one request began at once (it may have been a slow one)
MOST_COLLAPSED = 0.02  # ... and more than this share of them rejects the model
QUEUED_SHORTER = 0.7  # queued requests served this much faster than unqueued ones: a wrong model
CLAIM_BELOW = 0.6  # say "the server is the limit" only when it ran well below the client's peak


def service_times(spans: Sequence[tuple[float, float]], slots: int) -> tuple[list[float], list[bool]]:
    """Each (start, finish)'s service time through a FIFO server with ``slots``, and whether it queued."""
    free = [float("-inf")] * slots  # when each slot frees up
    services, queued = [], []
    for start, finish in spans:
        begin = max(start, heapq.heapreplace(free, finish))
        services.append(finish - begin)
        queued.append(begin > start)
    return services, queued


def _plausible(spans: Sequence[tuple[float, float]], slots: int) -> bool:
    # service_times, split as it goes (this runs for every candidate: up to ~80 replays of 2,000 rows)
    free = [float("-inf")] * slots
    waited: list[float] = []  # service times of the requests that queued
    direct: list[float] = []  # ... and of those that began at once
    for start, finish in spans:
        begin = heapq.heapreplace(free, finish)
        if begin > start:
            waited.append(finish - begin)
        else:
            direct.append(finish - start)
    if not waited:
        return True  # nothing queued: the latencies as measured
    waited.sort()
    direct.sort()
    # The yardstick: requests that began at once (the first always does; their lower median, as they also
    # set up the connections). They queued under no smaller model either, so a wrong model cannot shrink
    # it, as it shrinks all services. One alone may be a slow one: then a smaller share of it.
    typical = direct[(len(direct) - 1) // 2]
    share = COLLAPSED if len(direct) >= 2 else COLLAPSED_ONE
    if typical <= 0:
        return False
    collapsed = bisect.bisect_left(waited, share * typical)  # how many are below it: waited is sorted
    if collapsed > MOST_COLLAPSED * len(spans):
        return False
    # Too few slots also shorten every queued request a little: their median against the yardstick.
    return len(direct) < 2 or waited[len(waited) // 2] >= QUEUED_SHORTER * typical


def _candidates(peak: int) -> list[int]:
    """Slot counts to try, smallest first: each one up to 64, then steps of an eighth."""
    slots, k = [], 1
    while k < peak:
        slots.append(k)
        k = k + 1 if k < 64 else k + k // 8
    return slots + [peak]


def estimate_serial(rows: Iterable[RequestResult], peak: int, *, queue_model: bool = True) -> tuple[float, int | None] | None:
    """(serial-equivalent seconds, the server's apparent capacity or None), or None with nothing timed.

    Only answered requests count, each from when its last attempt went out (a wait after a 429, or a
    retry's backoff, is not service); a row sent more than once with no record of when is left out and
    counts at the mean of the rest. Rows from the cache, failed or cancelled say nothing of service.
    ``queue_model=False`` (e.g. after 429s, when the client's own waits shaped the times) keeps the
    latencies as measured.
    """
    done = [r for r in rows if r.status == OK and not r.cached and r.started is not None and r.finished is not None]
    if not done:
        return None
    timed_rows = [r for r in done if r.sent is not None or r.attempts <= 1] or done
    # In the order they were sent (ties: input order, as dispatched): the server serves in that order.
    timed = sorted((r.sent if r.sent is not None else r.started, r.index, r.finished) for r in timed_rows)
    spans: list[tuple[float, float]] = [(start, finish) for start, _, finish in timed]  # type: ignore[misc]
    scale = len(done) / len(spans)  # the rows left out, at the same mean
    latencies = sum(finish - start for start, finish in spans)
    if peak <= 1 or not queue_model:
        return latencies * scale, None
    model = spans[:MODEL_ROWS]
    low = next((k for k in _candidates(peak) if _plausible(model, k)), peak)
    services, queued = service_times(model, low)
    if low >= peak or not any(queued):  # no queueing seen: no capacity to claim (e.g. only the first wave was timed)
        return latencies * scale, None
    served = sum(max(0.0, s) for s in services)
    serial = (served / len(model)) * len(done)  # the rest at the same mean
    return serial, (low if low <= CLAIM_BELOW * peak else None)
