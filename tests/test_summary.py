"""Figures that stay true on real servers: cut replies are never "ok", no speedup that did not happen.

Against real HTTP: a server that answers with llama.cpp's own stream bytes (tests/support/provider_errors.py), and
simulators that process 1, 4 or 16 requests at a time and queue the rest. The claimed (estimated) speedup is
checked against the one measured the way ``--compare`` measures it: serial wall time / concurrent wall time, on a
quiet machine and with load the test starts beside itself (busy processes, a callback that holds the loop): within
20%, or not claimed and said why. The estimator itself (nbtools._summary) is also checked on synthetic timelines,
with no server, with and without a client that stamps late.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import pytest
from aiohttp import web

import nbtools
from nbtools._base.prompts import Prompt
from nbtools._compare import Comparison
from nbtools._engine.lateness import INTERVAL
from nbtools._engine.rows import RequestResult
from nbtools._engine.serial import estimate_serial
from nbtools._live import run_live
from nbtools._result import BatchResult
from nbtools._summary import Summary
from nbtools._views import report as render
from nbtools.sim import SimServer
from tests.support.helpers import busy_machine, serve_app, shown_html
from tests.support.provider_errors import LLAMA_CPP_COMPLETE_STREAM, LLAMA_CPP_CUT_STREAM

# -- a server that ends streams the way llama.cpp's does ---------------------------------------------
# The cut stream (role chunk, then [DONE], no finish_reason) and the complete one come from
# tests/support/provider_errors.py. The same chunks stopped after the content ("Hello", "!") but before the final
# chunk that carries finish_reason make a cut that did deliver text.
_EVENTS = LLAMA_CPP_COMPLETE_STREAM.split(b"\n\n")
CUT_AFTER_TEXT = b"\n\n".join(_EVENTS[:3]) + b"\n\ndata: [DONE]\n\n"
MODEL = "Llama-3.2-1B-Instruct-Q4_K_M.gguf"


def _llama_models() -> dict[str, Any]:
    # GET /v1/models as llama.cpp's server answers it (ggml-org/llama.cpp tools/server/README.md, "GET /v1/models").
    return {"object": "list", "data": [{"id": MODEL, "object": "model", "created": 1735142223, "owned_by": "llamacpp",
                                        "meta": {"vocab_type": 2, "n_vocab": 128256, "n_ctx_train": 131072}}]}


@pytest.fixture
def llama() -> Iterator[tuple[str, dict[str, int]]]:
    """(base_url, arrivals by prompt). Each prompt's first arrival gets the cut stream, later ones the whole
    reply; a prompt containing "always" is cut every time ("text" in it: cut after the text arrived)."""
    arrivals: dict[str, int] = {}

    async def models(request: web.Request) -> web.Response:
        return web.json_response(_llama_models())

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        prompt = body["messages"][-1]["content"]
        arrivals[prompt] = arrivals.get(prompt, 0) + 1
        if "always" in prompt:
            payload = CUT_AFTER_TEXT if "text" in prompt else LLAMA_CPP_CUT_STREAM
        else:
            payload = LLAMA_CPP_CUT_STREAM if arrivals[prompt] == 1 else LLAMA_CPP_COMPLETE_STREAM
        # llama.cpp streams as text/event-stream (tools/server/server.cpp, the chunked content provider).
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(payload)
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat)
    with serve_app(app) as url:
        yield url + "/v1", arrivals


def _never_ok_and_empty(result: BatchResult) -> None:
    for row in result:
        assert not (row.ok and not row.text), row


def test_a_cut_stream_is_retried_and_the_retry_is_the_reply(llama: tuple[str, dict[str, int]]) -> None:
    url, arrivals = llama
    prompts = [f"question {i}" for i in range(6)]
    result = nbtools.batch(prompts, base_url=url, stream=True, concurrency=3, retries=2, cache=False)
    assert [r.status for r in result] == ["ok"] * 6
    assert [r.attempts for r in result] == [2] * 6 and arrivals == {p: 2 for p in prompts}
    assert all(r.text == "Hello!" and r.finish_reason == "stop" and r.error_kind is None and r.partial is None
               for r in result)
    s = result.summary()
    assert (s.ok, s.errors, s.retries, s.error_kinds) == (6, 0, 6, {})
    _never_ok_and_empty(result)


def test_a_stream_cut_every_time_is_an_error_of_kind_cut_with_what_arrived_kept(llama: tuple[str, dict[str, int]]) -> None:
    url, arrivals = llama
    prompts = ["fine", "always cut", "always cut after text"]
    result = nbtools.batch(prompts, base_url=url, stream=True, concurrency=3, retries=1, cache=False)
    fine, bare, texty = result
    assert fine.ok and fine.text == "Hello!" and fine.attempts == 2
    for row in (bare, texty):
        assert row.status == "error" and row.error_kind == "cut" and row.attempts == 2 and row.text is None
        assert "cut off" in row.error and "after 2 attempts" in row.error
        assert row.finish_reason is None
    assert arrivals["always cut"] == 2 and arrivals["always cut after text"] == 2
    assert bare.partial == "" and texty.partial == "Hello!"  # what arrived stays on the row, for inspection
    s = result.summary()
    assert (s.ok, s.errors, s.error_kinds) == (1, 2, {"cut": 2})
    assert "2 errors" in str(s) and "cut 2" in str(s)
    table = render.table_text(result)
    assert table.count("error: cut") == 2 and "| ok" in table
    assert "error: cut" in shown_html(result)
    _never_ok_and_empty(result)


def test_the_header_names_the_model_the_server_listed(llama: tuple[str, dict[str, int]]) -> None:
    url, _ = llama
    seen: list[str] = []

    def watch(row: RequestResult) -> None:  # while the batch runs: the live header
        seen.append(render.header_text(result) + render.header_html(result))

    async def run() -> BatchResult:
        nonlocal result
        result = nbtools.start(["a", "b"], base_url=url, stream=True, on_result=watch, cache=False)
        return await result

    result: Any = None
    asyncio.run(run())
    assert result.model == MODEL and len(seen) == 2
    assert all(MODEL in shown and "not known" not in shown for shown in seen)


@pytest.mark.parametrize("stream", [False, True])
def test_replies_stopped_by_max_tokens_are_ok_but_marked_and_counted(make_sim: Callable[..., SimServer], stream: bool) -> None:
    server = make_sim(latency=0.02)
    result = nbtools.batch(["Tell me a long story."] * 3 + ["Hi [[sim:latency=0.01]]"], base_url=server.base_url,
                           max_tokens=2, stream=stream, cache=False)
    assert all(r.ok and r.text and r.finish_reason == "length" for r in result)
    s = result.summary()
    assert s.finish_reasons == {"length": 4} and s.errors == 0
    assert "4 cut off by max_tokens (finish_reason 'length')" in str(s)
    assert render.table_text(result).count("ok, cut by max_tokens") == 4
    assert "cut by max_tokens" in render.summary_html(result, result.summary())


def test_no_usage_means_unknown_tokens_per_s_and_the_listed_model_is_named(make_sim: Callable[..., SimServer]) -> None:
    server = make_sim(latency=0.02, models=("local-model",))
    result = nbtools.batch([f"q{i} [[sim:nousage]]" for i in range(3)], base_url=server.base_url, cache=False)
    assert all(r.ok and r.completion_tokens is None for r in result)
    s = result.summary()
    assert s.tokens_per_s is None and s.completion_tokens is None
    assert "tokens/s unknown" in str(s) and "0 tokens/s" not in str(s)
    html = render.summary_html(result, result.summary())
    assert "<th>tokens/s</th>" in html and "<td class='num'>unknown</td>" in html
    assert result.model == "local-model" and render.header_text(result).startswith("local-model @")


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
    assert "not estimated" in render.summary_html(result, result.summary())
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
            assert "The server is the limit" in render.summary_html(comparison.concurrent, comparison.concurrent.summary())
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


def test_the_summary_of_a_finished_batch_uses_the_estimate(make_sim: Callable[..., SimServer]) -> None:
    """The text says what each figure is: the serial time is labelled an estimate."""
    server = _queueing(make_sim, 1)
    result = nbtools.batch([f"q{i}" for i in range(8)], base_url=server.base_url, concurrency=8)
    s = result.summary()
    assert s.serial is not None and s.serial < 0.6 * s.sum_latency  # the queue is not counted as work
    assert "(estimated; speedup" in str(s) and "serial-equivalent (estimated)" in render.summary_html(result, result.summary())


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
