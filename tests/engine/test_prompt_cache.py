"""The providers' prompt caches, against an independent server with a prefix cache and a TTL
(tests/support/prompt_cache_server.py): the warm-up, the shared prefix and the layout note, each provider's cache
knobs, and what caching saved."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from decimal import Decimal

import pytest

import nbtools
from tests.engine.test_batch_api import FAST, anthropic_server  # noqa: F401  (a fixture)
from tests.support.helpers import serve_app
from tests.support.prompt_cache_server import PromptCacheServer

KEY = "sk-test-not-a-real-key-0123456789"
SYSTEM = " ".join(f"rule{i}" for i in range(2000))  # 2,000 words: 2,000 tokens to the test server
PROMPTS = [f"question {i}" for i in range(100)]
LATENCY = 0.2


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[PromptCacheServer, str]]:
    for name in ("OPENAI_API_KEY", "OPENROUTER_API_KEY", "ANTHROPIC_API_KEY"):
        monkeypatch.setenv(name, KEY)
    cache_server = PromptCacheServer(latency=LATENCY)
    with serve_app(cache_server.app()) as url:
        yield cache_server, url + "/v1"


def openai(url: str, prompts: list[str] = PROMPTS, **options) -> nbtools.BatchResult:
    return nbtools.batch(prompts, provider="openai", base_url=url, model="gpt-4o-mini",
                         **{"system": SYSTEM, "concurrency": 50, "cache": False, **options})


def uncached_minus_cached(prompt_tokens: int, cached_tokens: int) -> float:
    """What caching saved, from genai-prices directly: the input billed with no cache, less billed with it."""
    from genai_prices import Usage, calc_price

    def billed(**usage: int) -> Decimal:
        return calc_price(Usage(**usage), model_ref="gpt-4o-mini", provider_id="openai").input_price

    return float(billed(input_tokens=prompt_tokens) - billed(input_tokens=prompt_tokens, cache_read_tokens=cached_tokens))


def test_the_warm_up_lets_every_other_row_read_the_cache_and_a_cold_fan_out_misses_a_wave(server) -> None:
    cache_server, url = server
    started = time.perf_counter()
    cold = openai(url, prompt_cache_warmup=False)
    cold_wall = time.perf_counter() - started
    cache_server.cached.clear()
    started = time.perf_counter()
    warm = openai(url)  # on by default: OpenAI caches, and the rows share 2,000 tokens
    warm_wall = time.perf_counter() - started
    misses = sum(not r.cached_tokens for r in cold)
    assert 45 <= misses <= 55, misses  # the first wave of 50 all miss
    assert sum(bool(r.cached_tokens) for r in warm) >= 99 and warm.summary().warmed_up
    assert warm_wall <= cold_wall + LATENCY + 0.5  # about one latency more, at most (slack for a busy machine)

    s = warm.summary()
    prompt_tokens = sum(r.prompt_tokens for r in warm)
    assert s.cached_tokens == sum(r.cached_tokens or 0 for r in warm) and s.cache_hits >= 99
    assert s.cache_saved == pytest.approx(uncached_minus_cached(prompt_tokens, s.cached_tokens), rel=1e-9)
    assert "prompt cache read by" in str(s) and "caching saved" in str(s)
    assert list(warm.to_pandas()["cached_tokens"]) == [r.cached_tokens for r in warm]


def test_the_dry_run_shows_the_shared_prefix_and_estimates_the_saving(server) -> None:
    _, url = server
    estimate = openai(url, dry_run=True)
    assert estimate.cache is not None and estimate.cache.prefix.tokens >= 2000 and estimate.cache.warm_up
    assert estimate.cache.readers == 99 and estimate.cache.saving is not None and estimate.cache.saving > 0
    assert "shared prefix" in str(estimate) and "would read it" in str(estimate)


def test_the_row_data_before_a_long_static_part_gets_the_layout_note_and_last_it_caches(server) -> None:
    _, url = server
    first = openai(url, [f"{i} " + SYSTEM for i in range(20)], system=None, concurrency=5)
    note = "put the varying part last"
    assert note in str(first.summary()) and not any(r.cached_tokens for r in first)
    assert note in str(openai(url, [f"{i} " + SYSTEM for i in range(20)], system=None, dry_run=True))
    last = openai(url, [SYSTEM + f" {i}" for i in range(20)], system=None, concurrency=5)
    assert note not in str(last.summary()) and sum(bool(r.cached_tokens) for r in last) >= 19


def test_openai_gets_a_stable_prompt_cache_key_with_no_prompt_text_and_the_retention_asked(server) -> None:
    cache_server, url = server
    openai(url, PROMPTS[:5], prompt_cache_retention="24h")
    openai(url, PROMPTS[5:10], prompt_cache_retention="24h")
    keys = {body["prompt_cache_key"] for body in cache_server.bodies}
    # The OpenAPI spec (ModelResponseProperties, part of CreateChatCompletionRequest): prompt_cache_key a string of
    # at most 64 characters; prompt_cache_retention one of "in_memory", "24h".
    assert len(keys) == 1 and re.fullmatch(r"nbtools-[0-9a-f]{32}", key := keys.pop()) and len(key) <= 64
    assert not any(word in key for word in ("rule", "question"))
    assert {body["prompt_cache_retention"] for body in cache_server.bodies} == {"24h"}


def test_the_responses_api_usage_shape_is_read(server) -> None:
    _, url = server
    result = openai(url, PROMPTS[:10], api="responses", concurrency=5)
    assert sum(bool(r.cached_tokens) for r in result) >= 9 and result.summary().cache_hits >= 9


def test_openrouter_passes_cache_control_through(server) -> None:
    cache_server, url = server
    marked = {"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}
    prompts = [[{"role": "system", "content": [marked]}, {"role": "user", "content": f"q {i}"}] for i in range(3)]
    nbtools.batch(prompts, provider="openrouter", base_url=url, model="anthropic/claude-haiku-4.5", cache=False)
    assert all(body["messages"][0]["content"] == [marked] for body in cache_server.bodies)


def test_anthropics_compatible_endpoint_says_it_does_not_cache(server) -> None:
    _, url = server
    result = nbtools.batch(PROMPTS[:3], provider="anthropic", base_url=url, model="claude-haiku-4-5", system=SYSTEM,
                           cache=False)
    assert "does not cache prompts" in result.summary().cost_text


def test_anthropic_batch_lines_cache_the_system_text_for_an_hour(anthropic_server) -> None:  # noqa: F811
    result = nbtools.batch(["a", "b", "c"], via="batch", provider="anthropic", base_url=anthropic_server.url,
                           model="claude-sonnet-4-5", system=SYSTEM, **FAST)
    params = [request["params"] for request in anthropic_server.batches["msgbatch_0001"]["_requests"]]
    assert all(p["system"] == [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
               for p in params)
    assert sorted(r.cached_tokens or 0 for r in result) == [0, 2000, 2000]  # one line writes, the others read
    assert sorted(r.cache_write_tokens or 0 for r in result) == [0, 0, 2000]
    s = result.summary()
    assert s.cache_write_tokens == 2000 and "2,000 written" in str(s) and s.cache_hits == 2
    assert s.cache_saved is not None and s.cache_saved > 0  # two reads at 0.1x outweigh one write at 2x
    assert sorted(json.loads(result.to_pandas().to_json())["cache_write_tokens"].values(), key=str)[-1] == 2000


def test_a_short_system_text_is_not_marked_for_the_cache(anthropic_server) -> None:  # noqa: F811
    nbtools.batch(["a", "b"], via="batch", provider="anthropic", base_url=anthropic_server.url,
                  model="claude-sonnet-4-5", system="Be brief.", **FAST)
    params = [request["params"] for request in anthropic_server.batches["msgbatch_0001"]["_requests"]]
    assert [p["system"] for p in params] == ["Be brief.", "Be brief."]


@pytest.mark.parametrize("prompts", [["x"], ["same", "same"], ["a b", "a c"], ["1 tail end", "22 tail end"],
                                     [SYSTEM + " 1", SYSTEM + " 2"]])
def test_plain_prompts_are_measured_as_their_message_lists_are(prompts) -> None:
    from nbtools._engine import prompt_cache
    from nbtools._engine.tokens import prompt_counter

    count = prompt_counter(None)
    fast = prompt_cache.measure_texts("Be brief.", prompts, count)
    conversations = [[{"role": "system", "content": "Be brief."}, {"role": "user", "content": p}] for p in prompts]
    assert fast == prompt_cache.measure(conversations, count)
