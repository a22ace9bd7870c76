"""The serial-equivalent time (nbtools/_engine/serial.py): no speedup that did not happen.

Against simulators that process 1, 4 or 16 requests at a time and queue the rest, the claimed (estimated) speedup is
checked against the one measured the way ``--compare`` measures it: serial wall time / concurrent wall time, on a
quiet machine and with load the test starts beside itself (busy processes, a callback that holds the loop): within
20%, or not claimed and said why. The estimator itself is also checked on synthetic timelines, with no server, with
and without a client that stamps late.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import pytest

import nbtools
from nbtools._base.prompts import Prompt
from nbtools._compare import Comparison
from nbtools._engine.lateness import INTERVAL
from nbtools._engine.rows import RequestResult
from nbtools._engine.serial import estimate_serial
from nbtools._live import run_live
from nbtools._result import BatchResult
from nbtools._summary import Summary
from nbtools.sim import SimServer
from tests.support.helpers import busy_machine, shown_html


# -- servers that queue: the claimed speedup against the measured one --------------------------------
def _compare(server: SimServer, prompts: list[Prompt], concurrency: int, **options: Any) -> Comparison:
    """What ``%%llm_batch --compare`` does: the prompts serially, then at ``concurrency``, no views."""
    options = {"base_url": server.base_url, "concurrency": concurrency, **options}
    comparison = asyncio.run(run_live(prompts, options, view_for=lambda result, title: None, compare=True))
    assert isinstance(comparison, Comparison)
    return comparison


def _queueing(make_sim: Callable[..., SimServer], capacity: int) -> SimServer:
    return make_sim(capacity=capacity, over_capacity="queue", latency=0.15, latency_spread=0.1, seed=capacity)


def _load(load: str) -> AbstractContextManager[object]:
    """"busy machine": processes spinning beside the test, more than the CPUs; else nothing beside it."""
    return busy_machine() if load == "busy machine" else nullcontext()


def _slow_callback(at: int, seconds: float) -> Callable[[RequestResult], None]:
    """An ``on_result`` that holds the loop ``seconds`` at the ``at``-th reply it sees (a slow user callback)."""
    seen = 0

    def on_result(row: RequestResult) -> None:
        nonlocal seen
        seen += 1
        if seen == at:
            time.sleep(seconds)

    return on_result


def _withheld(s: Summary, result: BatchResult) -> bool:
    """Whether no speedup was claimed; then checks that the summary says why, and claims no capacity either."""
    if s.speedup is not None:
        return False
    late = result.lateness.worst
    assert s.serial is None and s.client_late == late and late > INTERVAL, (s, late)
    assert f"speedup not estimated: this process ran up to {late:.2f} s late" in str(s)
    assert s.server_capacity is None and "The server is the limit" not in str(s)
    assert "not estimated" in shown_html(result)
    return True


@pytest.mark.parametrize("load", ["quiet", "busy machine"])
def test_one_at_a_time_server_claims_no_speedup_and_says_it_is_the_limit(make_sim: Callable[..., SimServer],
                                                                         load: str) -> None:
    server = _queueing(make_sim, 1)
    prompts: list[Prompt] = [f"question {i}" for i in range(16)]
    for concurrency in (4, 16):
        with _load(load):
            comparison = _compare(server, prompts, concurrency)
        s = comparison.concurrent.summary()
        assert s.max_concurrency == concurrency and s.ok == 16
        assert comparison.speedup <= 1.3  # measured: the wall time did not improve
        if not _withheld(s, comparison.concurrent):
            assert s.speedup is not None and s.speedup <= 1.3, (concurrency, s)
            assert s.server_capacity == 1
            assert "The server is the limit: it processed about 1 request at a time" in str(s)
            assert "The server is the limit" in shown_html(comparison.concurrent)
        serial = comparison.serial.summary()  # one at a time on our side: each request from when it was sent
        sent = sum(r.finished - r.sent for r in comparison.serial if r.finished is not None and r.sent is not None)
        assert serial.server_capacity is None and serial.serial == pytest.approx(sent)
        assert serial.speedup is not None and serial.speedup <= 1.0  # one after another: never more than the wall


@pytest.mark.parametrize(("capacity", "load"), [(4, "quiet"), (4, "busy machine"), (4, "slow callback"),
                                                (16, "quiet"), (16, "busy machine")])
def test_claimed_speedup_is_within_20_percent_of_the_measured_one(make_sim: Callable[..., SimServer], capacity: int,
                                                                  load: str) -> None:
    """The promise, quiet or busy: a claimed speedup within 20% of the measured one, or none, saying why.

    "slow callback": an ``on_result`` holds the loop 0.2 s (more than a request takes) at the second reply of the
    concurrent run, so replies that came meanwhile are stamped late: read as they are, the times looked like a
    server of 8 slots, and 9x was claimed where 4x was measured."""
    server = _queueing(make_sim, capacity)
    options = {"on_result": _slow_callback(48 + 2, 0.2)} if load == "slow callback" else {}
    with _load(load):
        comparison = _compare(server, [f"question {i}" for i in range(48)], 16, **options)
    s = comparison.concurrent.summary()
    late = comparison.concurrent.lateness.worst
    assert s.ok == 48 and s.max_concurrency == 16
    if load == "slow callback":  # the loop was held: the tick due during the hold came that late, less a tick
        assert late >= 0.2 - INTERVAL
    if _withheld(s, comparison.concurrent):
        return
    assert s.speedup is not None and 0.8 <= s.speedup / comparison.speedup <= 1.2, (s.speedup, comparison.speedup, late)
    if capacity == 4:  # fewer than were in flight: said in one line, with the capacity seen
        if late <= INTERVAL:  # on time: the capacity is named
            assert s.server_capacity == 4
        if s.server_capacity is not None:  # a late client may leave it unnamed (between two readings), never wrong
            assert s.server_capacity == 4 and "about 4 requests at a time" in str(s)
    else:  # as many as were in flight: the server was not the limit
        assert s.server_capacity is None and "The server is the limit" not in str(s)


# -- the estimator on synthetic timelines (no server) ------------------------------------------------
def _timeline(services: list[float], client: int, server: int, overhead: float = 0.0,
              setup: float = 0.0, stall: tuple[float, float] | None = None) -> list[RequestResult]:
    """Rows as a client with ``client`` slots sees them against a FIFO server with ``server`` slots.

    Each request is sent when a client slot frees (at once, in input order), reaches the server ``setup``
    seconds later if it is among the first ``client`` (they open the connections), begins service when a
    server slot frees, and is seen finished ``overhead`` seconds after its service ends. ``stall``: (from, to)
    when the client's loop could not run: a reply that came meanwhile is seen at ``to``, a request leaves then.
    """
    def seen(t: float) -> float:
        return stall[1] if stall is not None and stall[0] <= t < stall[1] else t

    rows: list[RequestResult] = []
    client_free = [0.0] * client
    server_free = [0.0] * server
    for i, service in enumerate(services):
        start = min(client_free)
        slot = min(range(server), key=server_free.__getitem__)
        begin = max(seen(start) + (setup if i < client else 0.0), server_free[slot])
        server_free[slot] = begin + service
        finish = seen(begin + service + overhead)
        client_free[client_free.index(start)] = finish
        row = RequestResult(i, f"p{i}")
        row.started, row.finished, row.status = start, finish, "ok"
        rows.append(row)
    return rows


def _lognormal(n: int, mean: float, sigma: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [mean * rng.lognormvariate(-sigma * sigma / 2, sigma) for _ in range(n)]


@pytest.mark.parametrize("capacity", [1, 2, 4, 8])
@pytest.mark.parametrize("sigma", [0.0, 0.1, 0.35])
@pytest.mark.parametrize("seed", range(3))
def test_a_queueing_server_is_found_and_its_queue_taken_out(capacity: int, sigma: float, seed: int) -> None:
    services = _lognormal(64, 0.2, sigma, seed)
    rows = _timeline(services, client=16, server=capacity, overhead=0.002, setup=0.03)
    estimate = estimate_serial(rows, peak=16)
    assert estimate is not None
    serial, found = estimate
    assert sum(r.latency for r in rows) > 1.5 * sum(services)  # what the sum of latencies would have claimed
    if capacity == 1:  # no speedup that did not happen
        assert found == 1 and serial == pytest.approx(sum(services), rel=0.05)
    else:
        assert found is not None and abs(found - capacity) <= 1, found
        assert serial == pytest.approx(sum(services), rel=0.2)
    assert estimate_serial(rows, peak=16, late=INTERVAL) == estimate  # a client late by a tick: the same figures


@pytest.mark.parametrize("sigma", [0.35, 0.6, 1.0])
@pytest.mark.parametrize("seed", range(5))
def test_a_server_that_never_queues_is_never_called_the_limit(sigma: float, seed: int) -> None:
    services = _lognormal(80, 0.5, sigma, seed)
    rows = _timeline(services, client=16, server=16, overhead=0.01)
    estimate = estimate_serial(rows, peak=16)
    assert estimate is not None
    serial, found = estimate
    assert found is None
    latencies = sum(r.latency for r in rows)  # nothing queued: about what the latencies add up to
    assert 0.8 * latencies <= serial <= latencies
    assert estimate_serial(rows, peak=16, late=INTERVAL) == estimate  # a client late by a tick: the same figures


@pytest.mark.parametrize("capacity", [1, 4, 16])
def test_a_client_that_stalled_is_not_taken_for_the_servers_queue(capacity: int) -> None:
    """The client's loop stalls 0.2 s as the first replies come (0.15 s requests): they are stamped at its end."""
    services = _lognormal(48, 0.15, 0.1, seed=capacity)
    rows = _timeline(services, client=16, server=capacity, overhead=0.002, setup=0.03, stall=(0.15, 0.35))
    assert sum(r.finished == 0.35 for r in rows) >= 1
    unknowing = estimate_serial(rows, peak=16)  # read as if on time: queueing taken for service
    assert unknowing is not None and unknowing[0] is not None and unknowing[0] > 1.3 * sum(services), unknowing
    assert estimate_serial(rows, peak=16, late=0.2) == (None, None)  # knowing how late: no figure claimed


def test_serial_rows_and_rows_that_made_no_request_are_left_as_they_are() -> None:
    rows = _timeline([0.1, 0.2, 0.3], client=1, server=1)
    assert estimate_serial(rows, peak=1) == (pytest.approx(0.6), None)
    cached = RequestResult(3, "c")
    cached.started = cached.finished = 0.0
    cached.cached, cached.status = True, "ok"
    cancelled = RequestResult(4, "x")
    cancelled.started, cancelled.finished, cancelled.status = 0.0, 5.0, "cancelled"
    assert estimate_serial([*rows, cached, cancelled, RequestResult(5, "never sent")], peak=1) == (pytest.approx(0.6), None)
    assert estimate_serial([RequestResult(0, "never sent")], peak=4) is None


def test_time_spent_waiting_out_429s_is_not_service(make_sim: Callable[..., SimServer]) -> None:
    """A rate limit is the server's limit too, but not a queue: the rows that waited count at the others' mean."""
    server = make_sim(rpm=300, latency=0.2, latency_spread=0.0)
    result = nbtools.batch([f"q{i}" for i in range(10)], base_url=server.base_url, concurrency=10, cache=False)
    s = result.summary()
    waited = [r for r in result if r.attempts > 1]
    assert s.ok == 10 and waited and server.stats()["status"].get("429")
    assert s.serial == pytest.approx(10 * 0.2, rel=0.25) and s.serial < 0.8 * s.sum_latency
    assert s.server_capacity is None and s.refused_at == 10
    assert "The server is the limit: it turned requests away (429/503) at about 10 in flight" in str(s)

    server.reset()  # max_wait bounds the waiting: a Retry-After longer than it fails the row, and says why
    result = nbtools.batch([f"q{i}" for i in range(10)], base_url=server.base_url, concurrency=10, max_wait=0.1, cache=False)
    failed = [r for r in result if r.status == "error"]
    assert failed and all(r.error_kind == "rate_limit" and "more than max_wait=0.1 s" in r.error for r in failed)
    assert all("wait 0 s" not in r.error for r in failed)


def test_rows_sent_more_than_once_count_at_the_mean_of_the_rest() -> None:
    rows = _timeline([0.2] * 8, client=8, server=8)
    for row in rows[4:]:  # these waited 1 s for a Retry-After, then took 0.2 s
        row.attempts, row.finished = 2, row.finished + 1.0  # type: ignore[operator]
    assert estimate_serial(rows, peak=8) == (pytest.approx(1.6), None)
    for row in rows:  # all of them: nothing else to go by, so they are all used
        row.attempts = 2
    assert estimate_serial(rows, peak=1) == (pytest.approx(0.8 + 4 * 1.2), None)


def test_the_summary_of_a_finished_batch_uses_the_estimate(make_sim: Callable[..., SimServer]) -> None:
    """The text says what each figure is: the serial time is labelled an estimate."""
    server = _queueing(make_sim, 1)
    result = nbtools.batch([f"q{i}" for i in range(8)], base_url=server.base_url, concurrency=8)
    s = result.summary()
    assert s.serial is not None and s.serial < 0.6 * s.sum_latency  # the queue is not counted as work
    assert "(estimated; speedup" in str(s) and "serial-equivalent (estimated)" in shown_html(result)
