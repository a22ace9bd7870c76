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

The times are the client's own stamps, and a busy client stamps late: a reply that came while its loop could not
run (a slow callback, a busy machine) is stamped when the loop gets to it, a request stamped as sent leaves when
the loop gets on. Such a stall makes a service look shorter than it was (the one queued behind a reply stamped
late) or longer (the yardstick below), so the right ``k`` can look wrong, and a larger one, counting queueing as
service, is chosen: one 0.2 s stall in a batch of 0.15 s requests made a server of 4 slots look like 8 and
claimed 9x where 4x was measured. So the run measures how late its loop ran (nbtools._engine.lateness), and the
model is also read allowing each stamp to be off by that much: the fewest slots that reading allows. When the two
readings' serial times differ by more than ``AGREE``, the client's lateness, not the server, may have shaped the
times, and no figure is claimed (the summary says why); when they agree, the first stands, but a capacity is named
only when both readings find the same one.
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
AGREE = 1.2  # a busy client: claim only when the readings its lateness allows give serial times within this ratio


def service_times(spans: Sequence[tuple[float, float]], slots: int) -> tuple[list[float], list[bool]]:
    """Each (start, finish)'s service time through a FIFO server with ``slots``, and whether it queued."""
    free = [float("-inf")] * slots  # when each slot frees up
    services, queued = [], []
    for start, finish in spans:
        begin = max(start, heapq.heapreplace(free, finish))
        services.append(finish - begin)
        queued.append(begin > start)
    return services, queued


def _plausible(spans: Sequence[tuple[float, float]], slots: int, late: float = 0.0) -> bool:
    """Whether ``slots`` explain the times; ``late``: how far each stamp may be off (the client's own lateness)."""
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
    if late:  # a service may be up to `late` longer than it looks (the stamp it began from was late), and the
        typical -= late  # yardstick's true value up to `late` shorter (a request stamped sent before it left)
        if typical <= 0:
            return True  # nothing left to measure against: no number of slots can be ruled out
    collapsed = bisect.bisect_left(waited, share * typical - late)  # how many are below it: waited is sorted
    if collapsed > MOST_COLLAPSED * len(spans):
        return False
    # Too few slots also shorten every queued request a little: their median against the yardstick.
    return len(direct) < 2 or waited[len(waited) // 2] + late >= QUEUED_SHORTER * typical


def _candidates(peak: int) -> list[int]:
    """Slot counts to try, smallest first: each one up to 64, then steps of an eighth."""
    slots, k = [], 1
    while k < peak:
        slots.append(k)
        k = k + 1 if k < 64 else k + k // 8
    return slots + [peak]


def _fewest(spans: Sequence[tuple[float, float]], peak: int, late: float = 0.0) -> int:
    """The fewest slots that explain the times (``peak``: none fewer did)."""
    return next((k for k in _candidates(peak) if _plausible(spans, k, late)), peak)


def _served(spans: Sequence[tuple[float, float]], slots: int, measured: float, count: int) -> tuple[float, bool]:
    """(serial seconds for ``count`` rows through ``slots``, whether any queued); none queued: ``measured``."""
    services, queued = service_times(spans, slots)
    if not any(queued):  # no queueing seen: no capacity to claim (e.g. only the first wave was timed)
        return measured, False
    return sum(max(0.0, s) for s in services) / len(spans) * count, True  # the rest at the same mean


def estimate_serial(rows: Iterable[RequestResult], peak: int, *, queue_model: bool = True,
                    late: float = 0.0) -> tuple[float | None, int | None] | None:
    """(serial-equivalent seconds, the server's apparent capacity or None), or None with nothing timed.

    Only answered requests count, each from when its last attempt went out (a wait after a 429, or a
    retry's backoff, is not service); a row sent more than once with no record of when is left out and
    counts at the mean of the rest. Rows from the cache, failed or cancelled say nothing of service.
    ``queue_model=False`` (e.g. after 429s, when the client's own waits shaped the times) keeps the
    latencies as measured. ``late``: how late the client's loop ran (seconds); when the times read with that
    much slack give a serial time more than ``AGREE`` below the one read without, the serial time is None:
    the client's own delays may have shaped the times, and no figure is claimed.
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
    low = _fewest(model, peak)
    serial, queued = _served(model, low, latencies * scale, len(done)) if low < peak else (latencies * scale, False)
    capacity = low if queued and low <= CLAIM_BELOW * peak else None
    if late > 0:
        fewest = _fewest(model, low, late)  # the client's lateness allows no more slots than the times without it
        if fewest < low:
            least, _ = _served(model, fewest, latencies * scale, len(done))
            if serial > AGREE * least:
                return None, None  # the client's delays, not the server, may have shaped the times
            capacity = None  # somewhere between fewest and low: no one number to name
    return serial, capacity

