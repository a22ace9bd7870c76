"""Regressions found by review: each of these hung, overspent, leaked or mislabelled before its fix."""

from __future__ import annotations

import asyncio

from aiohttp import web

import nbtools

from .helpers import serve_app

OK_REPLY = {"id": "x", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}}
RATE_LIMITED = {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}


def _first_attempt_rate_limited() -> tuple[web.Application, dict[str, int]]:
    seen: set[str] = set()
    counts = {"requests": 0, "in_flight": 0, "peak_after_429s": 0}

    async def chat(request: web.Request) -> web.Response:
        counts["requests"] += 1
        prompt = (await request.json())["messages"][-1]["content"]
        if prompt not in seen:
            seen.add(prompt)
            return web.json_response(RATE_LIMITED, status=429, headers={"retry-after-ms": "50"})
        counts["in_flight"] += 1
        counts["peak_after_429s"] = max(counts["peak_after_429s"], counts["in_flight"])
        try:
            await asyncio.sleep(0.02)
        finally:
            counts["in_flight"] -= 1
        return web.json_response(OK_REPLY)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    return app, counts


def test_a_spending_cap_and_a_rate_limit_do_not_deadlock() -> None:
    app, counts = _first_attempt_rate_limited()
    with serve_app(app) as url:
        result = nbtools.batch([f"q{i}" for i in range(5)], base_url=url + "/v1", model="m", concurrency=1, cache=False,
                               price=(1000, 1000), max_tokens=50, max_cost=0.1, timeout=5)
    s = result.summary()
    assert result.done and s.ok >= 1 and s.ok + s.not_sent == 5 and s.cost <= 0.1 + 0.07


def test_a_fixed_concurrency_climbs_back_after_a_burst_of_rate_limits() -> None:
    app, counts = _first_attempt_rate_limited()  # every row's first attempt is refused: the limit drops, then recovers
    with serve_app(app) as url:
        result = nbtools.batch([f"q{i}" for i in range(120)], base_url=url + "/v1", model="m", concurrency=8, cache=False)
    assert result.summary().ok == 120 and result.concurrency <= 8
    assert counts["peak_after_429s"] == 8  # back at the user's number, never above it


def test_replies_without_usage_count_their_worst_case_against_the_cap() -> None:
    async def chat(request: web.Request) -> web.Response:
        return web.json_response({**OK_REPLY, "usage": None})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    with serve_app(app) as url:
        result = nbtools.batch([f"q{i}" for i in range(60)], base_url=url + "/v1", model="m", cache=False,
                               concurrency=4, price=(1000, 1000), max_tokens=50, max_cost=0.5)
    s = result.summary()
    assert 0 < s.ok < 60 and s.not_sent == 60 - s.ok and s.cost_unknown == s.ok


def test_a_key_echoed_in_a_cut_stream_is_not_kept_in_the_partial_text() -> None:
    key = "sk-FAKE-review-canary-0123456789"

    async def chat(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        chunk = {"choices": [{"index": 0, "delta": {"content": f"you sent {request.headers['Authorization']}"}}]}
        await resp.write(f"data: {__import__('json').dumps(chunk)}\n\ndata: [DONE]\n\n".encode())
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    with serve_app(app) as url:
        result = nbtools.batch(["hi"], base_url=url + "/v1", model="m", api_key=key, stream=True, retries=0, cache=False)
    row = result[0]
    assert row.error_kind == "cut" and row.partial == "you sent Bearer ***"
    assert "canary" not in repr(result.to_dicts()) + result._repr_html_()


def test_a_stream_dropped_mid_reply_is_cut_and_keeps_what_arrived(make_sim) -> None:
    server = make_sim(latency=0.05)
    result = nbtools.batch(["x [[sim:disconnect]]"], base_url=server.base_url, model="m", stream=True, retries=0,
                           cache=False)
    row = result[0]
    assert row.status == "error" and row.error_kind == "cut" and row.partial and "cut off" in row.error


def test_rate_limit_waits_are_counted_apart_from_retries() -> None:
    app, counts = _first_attempt_rate_limited()
    with serve_app(app) as url:
        result = nbtools.batch([f"q{i}" for i in range(6)], base_url=url + "/v1", model="m", concurrency=3,
                               retries=0, cache=False)
    s = result.summary()
    assert s.ok == 6 and s.retries == 0 and s.waits == 6 and all(r.waits == 1 for r in result)
    assert "6 waits for rate limits" in str(s) and "rate-limit waits" in result._repr_html_()
