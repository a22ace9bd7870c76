"""The providers added in this round: their profiles, and their documented behaviours end to end against
local servers that reply as tests/provider_more.py records (each with its source)."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

import nbtools
from nbtools._engine import failures
from nbtools._engine.endpoints import PROFILES, resolve_endpoint
from nbtools._engine.gates.server_budget import ServerBudget
from tests.support import provider_errors as pe
from tests.support import provider_more as pm
from tests.support.error_server import every
from tests.support.helpers import serve_post

KEY_ENV = "NBTOOLS_E2E_KEY"
MODEL = "e2e-model"
NEW = {"gemini": "GEMINI_API_KEY", "openrouter": "OPENROUTER_API_KEY", "groq": "GROQ_API_KEY",
       "together": "TOGETHER_API_KEY", "deepseek": "DEEPSEEK_API_KEY", "mistral": "MISTRAL_API_KEY",
       "fireworks": "FIREWORKS_API_KEY", "cerebras": "CEREBRAS_API_KEY"}


@pytest.fixture(autouse=True)
def fake_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, pe.FAKE_KEY)


def prompts(n: int) -> list[str]:
    return [f"prompt {i}" for i in range(n)]


def assert_no_key(*texts: str) -> None:
    for text in texts:
        assert pe.FAKE_KEY not in text and pe.FAKE_KEY[11:-8] not in text, text[:300]


# -- profiles ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(NEW))
def test_each_new_provider_has_a_url_a_key_variable_and_a_default_model(name: str, monkeypatch) -> None:
    profile = PROFILES[name]
    assert profile.base_url.startswith("https://") and profile.key_env == NEW[name] and profile.default_model
    monkeypatch.delenv(NEW[name], raising=False)
    with pytest.raises(nbtools.ConfigError, match=f"needs an API key in the environment variable {NEW[name]}"):
        resolve_endpoint(name)
    monkeypatch.setenv(NEW[name], pe.FAKE_KEY)
    endpoint = resolve_endpoint(name)
    assert endpoint.base_url == profile.base_url and endpoint.default_model == profile.default_model
    assert pe.FAKE_KEY not in repr(endpoint)


def test_an_unknown_provider_is_one_line_naming_the_choices() -> None:
    with pytest.raises(nbtools.ConfigError) as info:
        nbtools.batch(["x"], provider="gemeni")
    message = str(info.value)
    assert "unknown provider 'gemeni'" in message and "\n" not in message
    assert all(name in message for name in NEW)


# -- Gemini: a per-day quota stops, a per-minute limit is waited out ---------------------------------------
def test_geminis_daily_quota_stops_the_batch(serve) -> None:
    server, url = serve(every(1, pm.GEMINI_PER_DAY))
    with pytest.raises(nbtools.EndpointError) as info:
        nbtools.batch(prompts(100), provider="gemini", base_url=url, model=MODEL, api_key_env=KEY_ENV, concurrency=10)
    message = str(info.value)
    assert message.startswith("batch stopped: ") and "no quota or credit left" in message and "\n" not in message
    assert server.calls <= 11
    statuses = Counter(row.status for row in info.value.result.rows)
    assert statuses["not sent"] >= 89 and set(statuses) <= {"error", "cancelled", "not sent"}
    assert_no_key(message, repr(info.value.result))


def test_geminis_per_minute_limit_is_waited_out_for_its_retry_delay(serve) -> None:
    server, url = serve(every(3, pm.GEMINI_PER_MINUTE))
    started = time.perf_counter()
    result = nbtools.batch(prompts(30), provider="gemini", base_url=url, model=MODEL, api_key_env=KEY_ENV,
                           concurrency=5, retries=0)
    assert [row.status for row in result.rows] == ["ok"] * 30
    assert server.errors > 0 and server.calls == 30 + server.errors
    assert sum(row.waits for row in result.rows) == server.errors
    assert time.perf_counter() - started >= 0.05  # the retryDelay the body asked for was waited


# -- OpenRouter: 402 stops; errors inside 200 bodies and streams are retried ------------------------------
def test_openrouters_402_stops_the_batch(serve) -> None:
    server, url = serve(every(1, pm.OPENROUTER_402))
    with pytest.raises(nbtools.EndpointError, match="no quota or credit left") as info:
        nbtools.batch(prompts(60), provider="openrouter", base_url=url, model=MODEL, api_key_env=KEY_ENV,
                      concurrency=5)
    assert server.calls <= 6
    assert {row.error_kind for row in info.value.result.rows if row.status == "error"} == {failures.QUOTA}


def test_an_error_inside_a_200_body_is_retried(serve) -> None:
    server, url = serve(every(4, pm.OPENROUTER_ERROR_IN_200))
    result = nbtools.batch(prompts(40), provider="openrouter", base_url=url, model=MODEL, api_key_env=KEY_ENV,
                           concurrency=5, retries=3)
    assert result.texts == prompts(40) and server.calls == 40 + server.errors and server.errors >= 10
    assert sum(row.attempts for row in result.rows) == server.calls


@pytest.fixture
def stream_server() -> Iterator[tuple[dict[str, Any], str]]:
    """A chat endpoint whose streamed replies follow ``state["mode"]``: OpenRouter's mid-stream error on each
    prompt's first attempt, or DeepSeek's keep-alives before the reply."""
    state: dict[str, Any] = {"mode": "openrouter", "calls": Counter(), "delay": 0.0, "every": 0.1}

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        prompt = body["messages"][-1]["content"]
        state["calls"][prompt] += 1
        stream = bool(body.get("stream"))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream" if stream else "application/json"})
        await response.prepare(request)
        if state["mode"] == "openrouter" and state["calls"][prompt] == 1:
            await response.write(pm.openrouter_stream_error("half a rep"))
            return response
        waited = 0.0
        while waited < state["delay"]:  # DeepSeek: queued; the line stays busy
            await response.write(pm.DEEPSEEK_KEEP_ALIVE if stream else pm.DEEPSEEK_BLANK_LINE)
            await asyncio.sleep(state["every"])
            waited += state["every"]
        head = {"id": "c1", "object": "chat.completion.chunk", "created": 1767225600, "model": body["model"]}
        if stream:
            for delta, finish in (({"role": "assistant", "content": prompt}, None), ({}, "stop")):
                chunk = {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
                await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            await response.write(b"data: [DONE]\n\n")
        else:
            await response.write(json.dumps({
                "id": "c1", "object": "chat.completion", "created": 1767225600, "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": prompt}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4}}).encode())
        await response.write_eof()
        return response

    with serve_post("/v1/chat/completions", chat) as url:
        yield state, url + "/v1"


def test_openrouters_mid_stream_error_is_retried_and_keeps_no_partial(stream_server) -> None:
    state, url = stream_server
    result = nbtools.batch(prompts(12), provider="openrouter", base_url=url, model=MODEL, api_key_env=KEY_ENV,
                           concurrency=4, stream=True, retries=1)
    assert result.texts == prompts(12) and all(row.attempts == 2 for row in result.rows)
    assert set(state["calls"].values()) == {2}


# -- DeepSeek: keep-alives while queued are not silence, and not a cut stream -------------------------------
@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "plain"])
def test_deepseeks_keep_alives_are_not_silence(stream_server, stream: bool) -> None:
    state, url = stream_server
    state.update(mode="deepseek", delay=0.5, every=0.1)
    timeout = 0.3 if stream else 2.0  # a stream's timeout is the longest silence; a plain reply's, the whole wait
    result = nbtools.batch(prompts(4), provider="deepseek", base_url=url, model=MODEL, api_key_env=KEY_ENV,
                           concurrency=4, stream=stream, timeout=timeout, retries=0)
    assert [row.status for row in result.rows] == ["ok"] * 4 and result.texts == prompts(4)
    assert all(row.attempts == 1 and row.finish_reason == "stop" for row in result.rows)


def test_a_stream_silent_for_longer_than_the_timeout_still_times_out(stream_server) -> None:
    state, url = stream_server
    state.update(mode="deepseek", delay=0.6, every=0.6)  # one keep-alive, then 0.6 s of silence
    result = nbtools.batch(prompts(2), provider="deepseek", base_url=url, model=MODEL, api_key_env=KEY_ENV,
                           stream=True, timeout=0.3, retries=0)
    assert {row.error_kind for row in result.rows} == {failures.TIMEOUT}


# -- Groq and Cerebras: each rate-limit header over its own window ------------------------------------------
def test_groqs_requests_per_day_are_not_paced_as_per_minute() -> None:
    exhausted = {**pm.GROQ_HEADERS, "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "6s"}
    as_groq, as_openai = ServerBudget(dict(PROFILES["groq"].rate_windows)), ServerBudget()
    for budget in (as_groq, as_openai):
        budget.observe(exhausted, budget.mark())
    assert as_groq.take(10) == 0.0  # a daily budget: the server's 429s say when, not a per-minute pace
    assert as_openai.take(10) > 0.0  # read as OpenAI's per-minute headers, the same numbers would pace


def test_groqs_tokens_per_minute_refill_at_their_own_rate() -> None:
    budget = ServerBudget(dict(PROFILES["groq"].rate_windows))
    budget.observe(pm.GROQ_HEADERS, budget.mark())  # what a full budget holds is learned from the replies
    budget.observe({**pm.GROQ_HEADERS, "x-ratelimit-remaining-tokens": "0"}, budget.mark())
    assert 0.9 < budget.take(300) <= 1.0  # 18000 tokens a minute: 300 are back in one second


def test_cerebras_headers_name_their_windows() -> None:
    budget = ServerBudget()
    budget.observe(pm.CEREBRAS_HEADERS, budget.mark())
    budget.observe({**pm.CEREBRAS_HEADERS, "x-ratelimit-remaining-tokens-minute": "0",
                    "x-ratelimit-remaining-requests-day": "0"}, budget.mark())
    assert 0.9 < budget.take(1000) <= 1.0  # 60000 tokens a minute; the daily request count does not pace
    fresh = ServerBudget()
    fresh.observe(pm.CEREBRAS_HEADERS, fresh.mark())
    assert fresh.take(1000) == 0.0

