"""What a batch costs: prices, per-row and total cost, the dry run and the spending cap, against a
real local server that answers every request with a known usage."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
from aiohttp import web

import nbtools
from nbtools._dry_run import DryRun
from nbtools._engine.rows import NOT_SENT, OK
from tests.support.helpers import one_line_usage_error, serve_app, serve_post, shown_html
from tests.support.rate_limits import OK_REPLY, first_attempt_rate_limited

# genai-prices needs Python >= 3.11: without it, only user prices and local servers are priced.
needs_prices = pytest.mark.skipif(importlib.util.find_spec("genai_prices") is None, reason="genai-prices not installed")


@dataclass
class Usage:
    """What the server reports for every reply."""

    prompt: int = 1000
    completion: int = 500
    cached: int | None = None
    seen: list[str] = field(default_factory=list)  # "METHOD /path" of every request received

    def body(self) -> dict:
        # OpenAI's documented chat.completion usage (openai-python src/openai/types/completion_usage.py:
        # prompt_tokens, completion_tokens, total_tokens, prompt_tokens_details.cached_tokens).
        usage: dict = {"prompt_tokens": self.prompt, "completion_tokens": self.completion,
                       "total_tokens": self.prompt + self.completion}
        if self.cached is not None:
            usage["prompt_tokens_details"] = {"cached_tokens": self.cached, "audio_tokens": 0}
        return usage


@contextmanager
def known_usage_server(usage: Usage, delay: float = 0.02, gate: threading.Event | None = None) -> Iterator[str]:
    """A chat-completions server whose every reply reports ``usage``; yields its base URL (…/v1).
    With ``gate``, every request after the first waits until the gate is set."""

    @web.middleware
    async def count(request: web.Request, handler):  # type: ignore[no-untyped-def]
        usage.seen.append(f"{request.method} {request.path}")
        return await handler(request)

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        await asyncio.sleep(delay)  # so that requests overlap
        if gate is not None and posts(usage) > 1:
            await asyncio.get_running_loop().run_in_executor(None, gate.wait)
        text = "ok"
        if not body.get("stream"):
            return web.json_response({
                "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": usage.body(),
            })
        # Streaming with stream_options.include_usage: the last chunk has empty choices and the usage
        # (OpenAI API reference, "The chat completion chunk object").
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": body["model"]}
        chunks = [
            {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": text}, "finish_reason": None}]},
            {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
            {**base, "choices": [], "usage": usage.body()},
        ]
        for chunk in chunks:
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "m", "object": "model"}]})

    app = web.Application(middlewares=[count])
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    with serve_app(app) as url:
        yield url + "/v1"


def posts(usage: Usage) -> int:
    return sum(1 for s in usage.seen if s.startswith("POST"))


# -- cost --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("stream", [False, True])
def test_summary_cost_is_tokens_times_price_to_the_cent(stream: bool, tmp_path) -> None:
    usage = Usage(prompt=120_000, completion=30_000)
    with known_usage_server(usage) as url:
        result = nbtools.batch([f"q{i}" for i in range(20)], base_url=url, model="m", price=(2.5, 10.0),
                               stream=stream, cache=False)
    per_row = (120_000 * 2.5 + 30_000 * 10.0) / 1e6  # $0.60
    s = result.summary()
    assert s.ok == 20 and round(s.cost, 2) == round(20 * per_row, 2) == 12.00
    assert s.cost == pytest.approx(12.0, abs=1e-9)
    assert all(r.cost == pytest.approx(per_row) for r in result)
    assert "cost $12.00 (price=)" in str(s)
    assert "$12.00" in shown_html(result)
    frame = result.to_pandas()
    assert frame["cost"].sum() == pytest.approx(12.0)
    result.to_jsonl(tmp_path / "out.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert sum(r["cost"] for r in rows) == pytest.approx(12.0)


def test_a_reply_from_the_reply_cache_keeps_its_cached_prompt_tokens_and_costs_nothing() -> None:
    usage = Usage(prompt=1000, completion=10, cached=400)
    with known_usage_server(usage) as url:
        first = nbtools.batch(["q"], base_url=url, model="m", price=(1.0, 2.0), cache=True)
        again = nbtools.batch(["q"], base_url=url, model="m", price=(1.0, 2.0), cache=True)
    assert posts(usage) == 1 and again[0].cached
    assert first[0].cached_tokens == again[0].cached_tokens == 400
    assert first[0].cost == pytest.approx((1000 * 1.0 + 10 * 2.0) / 1e6) and again[0].cost == 0.0


@needs_prices
def test_cached_prompt_tokens_are_priced_as_the_provider_prices_them() -> None:
    from genai_prices import Usage as LibraryUsage
    from genai_prices import calc_price

    usage = Usage(prompt=100_000, completion=10_000, cached=40_000)
    with known_usage_server(usage) as url:  # provider named, so its prices apply to this local stand-in
        result = nbtools.batch([f"q{i}" for i in range(50)], provider="openai", base_url=url,
                               model="gpt-4o-mini", cache=False)
    expected = calc_price(LibraryUsage(input_tokens=100_000, cache_read_tokens=40_000, output_tokens=10_000),
                          "gpt-4o-mini", provider_id="openai").total_price
    s = result.summary()
    assert round(s.cost, 2) == round(float(expected) * 50, 2)
    assert s.cost == pytest.approx(float(expected) * 50, abs=1e-9)
    assert result[0].cached_tokens == 40_000
    # Cheaper than if every prompt token were billed at the full input rate.
    uncached = calc_price(LibraryUsage(input_tokens=100_000, output_tokens=10_000), "gpt-4o-mini", provider_id="openai")
    assert s.cost < float(uncached.total_price) * 50
    assert "genai-prices" in str(s)
    # The data shipped in the package is used as it is: its downloader (opt-in) was never started.
    from genai_prices import data_snapshot

    assert data_snapshot._custom_snapshot is None
    assert not any(t.name.startswith("genai_prices") for t in threading.enumerate())


def test_an_unknown_price_is_shown_as_unknown_never_guessed() -> None:
    usage = Usage()
    with known_usage_server(usage) as url:
        result = nbtools.batch(["a", "b"], provider="openai", base_url=url, model="my-private-finetune", cache=False)
    s = result.summary()
    assert s.cost is None and all(r.cost is None for r in result)
    assert "cost unknown (no price known for my-private-finetune" in str(s) and "price=" in str(s)
    html = shown_html(result)
    assert "unknown" in html and "$" not in html.split("cost")[1][:40]
    assert result.to_dicts()[0]["cost"] is None


def test_the_cost_is_live_while_the_batch_runs() -> None:
    usage, gate = Usage(prompt=1000, completion=500), threading.Event()

    async def main() -> None:
        first = asyncio.Event()
        result = nbtools.start([f"q{i}" for i in range(5)], base_url=url, model="m", price=(1.0, 1.0),
                               concurrency=1, cache=False, on_result=lambda row: first.set())
        await first.wait()
        live = result.live_view().body(20)["text/html"]
        assert not result.done and "$0.00150" in live and "cost" in live  # one reply's worth, mid-batch
        gate.set()
        await result
        assert result.summary().cost == pytest.approx(5 * 1500 / 1e6)

    with known_usage_server(usage, gate=gate) as url:
        try:
            asyncio.run(main())
        finally:
            gate.set()


def test_local_servers_cost_nothing_unless_priced(sim) -> None:
    free = nbtools.batch(["a", "b"], base_url=sim.base_url, model="m")
    assert free.summary().cost == 0.0 and "local server: free" in str(free.summary())
    priced = nbtools.batch(["a", "b"], base_url=sim.base_url, model="m", price="1000,1000")
    assert priced.summary().cost > 0 and all(r.cost and r.cost > 0 for r in priced)


def test_replies_missing_usage_are_counted_apart(make_sim) -> None:
    sim = make_sim(latency=0.01)
    result = nbtools.batch(["a", "b [[sim:nousage]]"], base_url=sim.base_url, model="m", price=(1, 1))
    s = result.summary()
    assert s.cost_unknown == 1 and result[1].cost is None and "1 replies without usage" in str(s)
    free = nbtools.batch(["a", "b [[sim:nousage]]"], base_url=sim.base_url, model="m")
    assert free.summary().cost == 0.0 and free.summary().cost_unknown == 0


# -- the spending cap --------------------------------------------------------------------------------
def test_a_cap_of_n_requests_at_concurrency_c_sends_at_most_n_plus_c(capsys) -> None:
    usage = Usage(prompt=1000, completion=500)
    price = (1.0, 1.0)
    per_request = (1000 + 500) / 1e6
    n, c, total = 5, 4, 40
    cap = n * per_request
    with known_usage_server(usage) as url:
        options = dict(base_url=url, model="m", price=price, max_tokens=500, concurrency=c, cache=True)
        result = nbtools.batch([f"question {i}" for i in range(total)], max_cost=cap, **options)
        sent = posts(usage)
        s = result.summary()
        assert sent <= n + c
        assert s.ok == sent and s.not_sent == total - sent > 0
        assert [r.status for r in result].count(NOT_SENT) == s.not_sent and s.errors == 0 and s.cancelled == 0
        assert all(r.done and r.error is None for r in result)
        assert s.cost <= cap + c * per_request
        assert f"{s.not_sent} not sent: max_cost reached" in str(s)
        assert "not sent" in shown_html(result)
        err = capsys.readouterr().err
        assert "max_cost $0.00750 reached" in err and f"{s.not_sent} requests not sent" in err
        # Run again with a higher cap: the finished rows come from the reply cache, only the rest is sent.
        again = nbtools.batch([f"question {i}" for i in range(total)], max_cost=1.0, **options)
    assert posts(usage) - sent == s.not_sent
    s2 = again.summary()
    assert s2.ok == total and s2.not_sent == 0 and s2.cached == sent
    assert s2.cost == pytest.approx(s.not_sent * per_request)  # the cached rows cost nothing this time


def test_the_cap_is_never_passed_when_replies_stay_within_max_tokens() -> None:
    # Usage equal to the worst case (the prompt tokens as counted, the reply at max_tokens): exact bookkeeping.
    from nbtools._engine.tokens import prompt_counter

    prompts = [f"question {i}" for i in range(30)]
    counted = prompt_counter("m")([{"role": "user", "content": prompts[0]}])
    usage = Usage(prompt=counted, completion=100)
    per_request = (counted * 3.0 + 100 * 15.0) / 1e6
    with known_usage_server(usage) as url:
        result = nbtools.batch(prompts, base_url=url, model="m", price=(3.0, 15.0), max_tokens=100,
                               concurrency=8, max_cost=7.5 * per_request, cache=False)
    s = result.summary()
    assert s.cost <= 7.5 * per_request and s.ok == 7 and s.not_sent == 23


def test_max_cost_needs_a_price_and_a_reply_bound(sim) -> None:
    usage = Usage()
    with known_usage_server(usage) as url:
        with pytest.raises(nbtools.ConfigError, match="max_cost needs a price.*price="):
            nbtools.batch(["a"], provider="openai", base_url=url, model="my-private-finetune", max_cost=1)
        with pytest.raises(nbtools.ConfigError, match="needs max_tokens="):
            nbtools.batch(["a"], base_url=url, model="m", price=(1, 1), max_cost=1)
    assert posts(usage) == 0
    # A free local server needs no bound: nothing it does costs money.
    assert nbtools.batch(["a"], base_url=sim.base_url, model="m", max_cost=0).summary().ok == 1


def test_a_spending_cap_and_a_rate_limit_do_not_deadlock() -> None:
    app, counts = first_attempt_rate_limited()
    with serve_app(app) as url:
        result = nbtools.batch([f"q{i}" for i in range(5)], base_url=url + "/v1", model="m", concurrency=1, cache=False,
                               price=(1000, 1000), max_tokens=50, max_cost=0.1, timeout=5)
    s = result.summary()
    assert result.done and s.ok >= 1 and s.ok + s.not_sent == 5 and s.cost <= 0.1 + 0.07


def test_replies_without_usage_count_their_worst_case_against_the_cap() -> None:
    async def chat(request: web.Request) -> web.Response:
        return web.json_response({**OK_REPLY, "usage": None})

    with serve_post("/v1/chat/completions", chat) as url:
        result = nbtools.batch([f"q{i}" for i in range(60)], base_url=url + "/v1", model="m", cache=False,
                               concurrency=4, price=(1000, 1000), max_tokens=50, max_cost=0.5)
    s = result.summary()
    assert 0 < s.ok < 60 and s.not_sent == 60 - s.ok and s.cost_unknown == s.ok


# -- the dry run -------------------------------------------------------------------------------------
def test_a_dry_run_sends_nothing_and_shows_tokens_and_the_cost_range() -> None:
    usage = Usage()
    prompts = ["Hello, how are you?", "<script>alert(1)</script>", "Summarize the French revolution."]
    with known_usage_server(usage) as url:
        estimate = nbtools.batch(prompts, base_url=url, model="m", price=(1.0, 2.0), max_tokens=100, dry_run=True)
        no_model = nbtools.dry_run(prompts, base_url=url)  # the server would be asked for a model: it is not
    assert usage.seen == []
    assert isinstance(estimate, DryRun) and len(estimate) == 3 and estimate.requests == 3
    assert estimate.tokens_label.startswith("estimated")
    assert estimate.cost_low == pytest.approx(estimate.prompt_tokens * 1.0 / 1e6)
    assert estimate.cost_high == pytest.approx((estimate.prompt_tokens * 1.0 + 300 * 2.0) / 1e6)
    assert estimate.max_completion_tokens == 300
    text, html = repr(estimate), shown_html(estimate)
    assert "nothing sent" in text and "estimated" in text and " to $" in text
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert no_model.price is not None and no_model.cost_high is None and "no upper bound" in repr(no_model)
    worst = estimate.rows[0].cost_high
    capped = nbtools.dry_run(prompts, base_url=url, model="m", price=(1.0, 2.0), max_tokens=100,
                             max_cost=estimate.cost_high - 0.5 * worst)  # the last row's worst case does not fit
    assert capped.fit_in_cap() == 2 and "2 of 3 requests fit" in repr(capped)


@needs_prices
def test_a_dry_run_counts_with_the_models_tokenizer_when_one_is_installed() -> None:
    quicktok = pytest.importorskip("quicktok")
    usage = Usage()
    prompt = "Hello, how are you?"
    with known_usage_server(usage) as url:
        estimate = nbtools.dry_run([prompt], provider="openai", base_url=url, model="gpt-4o-mini")
    assert usage.seen == []
    enc = quicktok.get_encoding("o200k_base")
    assert estimate.tokens_label == "counted (o200k_base)"
    assert estimate.prompt_tokens == enc.count("user") + enc.count(prompt) + 3 + 3
    assert estimate.price is not None and "genai-prices" in estimate.price.source and estimate.cost_high is None


def test_a_dry_run_shows_unknown_prices_as_unknown() -> None:
    usage = Usage()
    with known_usage_server(usage) as url:
        estimate = nbtools.dry_run(["a"], provider="openai", base_url=url, model="my-private-finetune", max_tokens=10)
    assert estimate.price is None and estimate.cost_low is None and estimate.cost_high is None
    assert "cost: unknown: no price known for my-private-finetune" in repr(estimate)


def test_a_dry_run_counts_rows_the_reply_cache_would_answer_as_free() -> None:
    usage = Usage()
    with known_usage_server(usage) as url:
        options = dict(base_url=url, model="m", price=(1.0, 1.0), max_tokens=10, cache=True)
        nbtools.batch(["a", "b"], **options)
        estimate = nbtools.dry_run(["a", "b", "c"], **options)
    assert posts(usage) == 2
    assert estimate.cached == 2 and estimate.requests == 1 and [r.cached for r in estimate.rows] == [True, True, False]


# -- bad values --------------------------------------------------------------------------------------
@pytest.mark.parametrize("options, needle", [
    ({"max_cost": -1}, "max_cost=-1 must be at least 0"),
    ({"max_cost": "lots"}, "max_cost='lots' must be a number"),
    ({"price": "abc"}, "price='abc' is not two numbers"),
    ({"price": "0.15"}, "must be two numbers >= 0"),
    ({"price": (1, -2)}, "must be two numbers >= 0"),
    ({"price": 3}, "must be two numbers (input, output)"),
    ({"dry_run": "yes"}, "dry_run='yes' must be True or False"),
])
def test_bad_cost_options_are_one_line_errors(sim, options: dict, needle: str) -> None:
    with pytest.raises(nbtools.ConfigError) as info:
        nbtools.batch(["a"], base_url=sim.base_url, **options)
    message = str(info.value)
    assert needle in message and "\n" not in message


# -- the magic ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("line, needle", [
    ("--max-cost -1", "max_cost=-1.0 must be at least 0"),
    ("--max-cost lots", "--max-cost"),
    ("--price abc", "price='abc' is not two numbers"),
    ("--price 1,2,3", "must be two numbers"),
    ("--dry-run --background", "--dry-run sends nothing"),
])
def test_bad_cost_options_in_the_magic_are_one_line_usage_errors(ip, line: str, needle: str) -> None:
    assert needle in one_line_usage_error(ip, "llm_batch", line, "hello")


def test_the_magic_prices_dry_runs_and_caps(ip, capsys) -> None:
    usage = Usage(prompt=1000, completion=500)
    with known_usage_server(usage) as url:
        ip.run_cell_magic("llm_batch", f"--base-url {url} -m m --price 1,1 --max-tokens 500 --dry-run -o est", "a\nb")
        assert usage.seen == [] and isinstance(ip.user_ns["est"], DryRun)
        assert ip.user_ns["est"].cost_high == pytest.approx(ip.user_ns["est"].cost_low + 2 * 500 / 1e6)
        ip.run_line_magic("config", "LLMBatch.price = '1,1'")
        try:
            ip.run_cell_magic("llm_batch", f"--base-url {url} -m m --no-cache -o res", "a\nb")
            assert ip.user_ns["res"].summary().cost == pytest.approx(2 * 1500 / 1e6)
            ip.run_cell_magic("llm_batch", f"--base-url {url} -m m --no-cache -c 2 --max-tokens 500 "
                                           "--max-cost 0.003 -o capped", "\n".join(f"q{i}" for i in range(10)))
        finally:
            ip.run_line_magic("config", "LLMBatch.price = None")
    capped = ip.user_ns["capped"].summary()
    assert capped.not_sent > 0 and capped.ok + capped.not_sent == 10 and capped.ok <= 2 + 2
    assert [r.status for r in ip.user_ns["capped"]].count(OK) == capped.ok


@needs_prices
def test_a_dry_run_needs_no_key(monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(nbtools.ConfigError, match="OPENAI_API_KEY"):
        nbtools.batch(["a"], provider="openai")
    estimate = nbtools.dry_run(["a"] * 10, provider="openai", model="gpt-4o-mini", max_tokens=100)
    assert estimate.price is not None and estimate.cost_high is not None and estimate.cost_high > 0


# -- price lookup (pure logic: no request is involved) -------------------------------------------------
@needs_prices
def test_prices_by_provider_by_url_batch_rates_and_unknown() -> None:
    from nbtools._engine.endpoints import resolve_endpoint
    from nbtools._engine.prices import price_for

    openai = resolve_endpoint("openai", api_key="test")
    standard, batch = price_for(openai, "gpt-4o-mini", None), price_for(openai, "gpt-4o-mini", None, batch_api=True)
    assert standard is not None and batch is not None and batch.input == standard.input / 2
    assert standard.cached_input is not None and standard.cached_input < standard.input
    assert price_for(resolve_endpoint(base_url="https://openrouter.ai/api/v1"), "openai/gpt-4o-mini", None) is not None
    private = resolve_endpoint(base_url="https://llm.example.edu/v1")
    assert price_for(private, "gpt-4o-mini", None) is None  # a private deployment: unknown, not OpenAI's price
    assert price_for(private, "x", (0.2, 0.8)) == price_for(openai, "x", (0.2, 0.8))
    local = price_for(resolve_endpoint(base_url="http://127.0.0.1:8080/v1"), "gpt-oss-20b", None)
    assert local is not None and local.free
    assert price_for(resolve_endpoint("openai", base_url="http://127.0.0.1:4000/v1"), "gpt-4o-mini", None) == standard


@needs_prices
def test_a_price_tiered_by_prompt_size_is_summed_by_the_library() -> None:
    from genai_prices import Usage as LibraryUsage
    from genai_prices import calc_price

    from nbtools._engine.endpoints import resolve_endpoint
    from nbtools._engine.prices import price_for

    gemini = price_for(resolve_endpoint(base_url="https://generativelanguage.googleapis.com/v1beta/openai"),
                       "gemini-2.5-pro", None)
    assert gemini is not None and "tiered" in gemini.source
    for prompt in (100_000, 300_000):  # below and above the 200k-token tier
        expected = calc_price(LibraryUsage(input_tokens=prompt, output_tokens=1000), "gemini-2.5-pro",
                              provider_id="google").total_price
        assert gemini.cost(prompt, 1000) == pytest.approx(float(expected))
    assert gemini.cost(300_000, 1000) / 300_000 > gemini.cost(100_000, 1000) / 100_000
