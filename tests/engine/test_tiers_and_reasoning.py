"""Service tiers (tier='flex') and reasoning tokens, against real local servers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from IPython.core.error import UsageError

import nbtools
from nbtools._base.options import FLEX_TIMEOUT
from nbtools._engine import failures
from nbtools._engine.prices import price_for, usd
from tests.support import provider_errors as pe
from tests.support import provider_more as pm
from tests.support.error_server import ProviderServer, Script, every
from tests.support.helpers import serve_app, shown_html
from tests.support.responses_server import REASONING, ResponsesServer

KEY_ENV = "NBTOOLS_E2E_KEY"


@pytest.fixture(autouse=True)
def fake_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, pe.FAKE_KEY)


@pytest.fixture
def serve() -> Iterator[Callable[[Script], tuple[ProviderServer, str, list[dict[str, Any]]]]]:
    with ExitStack() as stack:

        def start(script: Script) -> tuple[ProviderServer, str, list[dict[str, Any]]]:
            bodies: list[dict[str, Any]] = []

            def recording(number: int, body: dict[str, Any]) -> pe.ErrorReply | None:
                bodies.append(body)
                return script(number, body)

            server = ProviderServer(recording)
            return server, stack.enter_context(serve_app(server.app())) + "/v1", bodies

        yield start


def prompts(n: int) -> list[str]:
    return [f"prompt {i}" for i in range(n)]


# -- tiers --------------------------------------------------------------------------------------------
def test_flex_is_sent_priced_at_batch_rates_labelled_and_waits_longer(serve) -> None:
    server, url, bodies = serve(lambda number, body: None)
    result = nbtools.batch(prompts(10), provider="openai", base_url=url, model="gpt-4o-mini", api_key_env=KEY_ENV,
                           tier="flex", concurrency=5, cache=False)
    assert result.texts == prompts(10) and all(body["service_tier"] == "flex" for body in bodies)
    assert result.options.timeout == FLEX_TIMEOUT
    batch_rates = price_for(result.endpoint, "gpt-4o-mini", None, batch_api=True)
    assert batch_rates is not None and result.price is not None
    assert (result.price.input, result.price.output) == (batch_rates.input, batch_rates.output)
    assert "flex tier: Batch API rates" in result.price_note
    summary = result.summary()
    assert "service tier flex" in str(summary) and "service tier flex" in shown_html(result)
    assert summary.cost == pytest.approx(10 * batch_rates.cost(5, 5))


def test_a_timeout_set_by_hand_is_kept_with_flex() -> None:
    result = nbtools.batch(["x"], tier="flex", timeout=30)
    assert result.options.timeout == 30


def test_no_tier_sends_no_service_tier(serve) -> None:
    server, url, bodies = serve(lambda number, body: None)
    nbtools.batch(prompts(3), provider="openai", base_url=url, model="gpt-4o-mini", api_key_env=KEY_ENV, cache=False)
    assert bodies and all("service_tier" not in body for body in bodies)


@pytest.mark.parametrize(("reply", "provider"), [(pm.OPENAI_FLEX_UNAVAILABLE, "openai"),
                                                 (pm.GROQ_FLEX_CAPACITY, "groq")], ids=lambda v: getattr(v, "id", v))
def test_flex_without_capacity_is_waited_out_never_a_failed_row(serve, reply: pe.ErrorReply, provider: str) -> None:
    server, url, _ = serve(every(3, reply))
    result = nbtools.batch(prompts(30), provider=provider, base_url=url, model="m", api_key_env=KEY_ENV, tier="flex",
                           concurrency=5, retries=0, cache=False)
    assert [row.status for row in result.rows] == ["ok"] * 30
    assert server.errors > 0 and sum(row.waits for row in result.rows) == server.errors
    assert failures.classify(reply.status, reply.body) == reply.kind and reply.kind in failures.WAIT


def test_a_tier_the_provider_does_not_have_is_a_one_line_error(ip) -> None:
    with pytest.raises(nbtools.ConfigError) as info:
        nbtools.batch(["x"], provider="xai", base_url="http://127.0.0.1:9/v1", tier="flex")
    message = str(info.value)
    assert "tier='flex' is not offered by provider 'xai'" in message and "\n" not in message
    with pytest.raises(nbtools.ConfigError, match="'default', 'flex', 'priority'"):
        nbtools.batch(["x"], tier="fast")
    with pytest.raises(UsageError, match="'default', 'flex', 'priority'"):
        ip.run_cell_magic("llm_batch", "--tier fast", "x")


# -- reasoning tokens -------------------------------------------------------------------------------------
@pytest.fixture
def thinking_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("OPENAI_API_KEY", pe.FAKE_KEY)
    server = ResponsesServer()
    with serve_app(server.app()) as url:
        yield url + "/v1"


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_reasoning_tokens_are_recorded_totalled_and_priced(thinking_server: str, api: str) -> None:
    result = nbtools.batch(prompts(6), provider="openai", base_url=thinking_server, model="gpt-test", api=api,
                           price=(1.0, 4.0), stream=True, cache=False)
    assert [row.reasoning_tokens for row in result.rows] == [REASONING] * 6
    summary = result.summary()
    assert summary.reasoning_tokens == 6 * REASONING
    assert summary.reasoning_cost == pytest.approx(6 * REASONING * 4.0 / 1e6)
    assert f"{6 * REASONING} reasoning tokens" in str(summary)
    assert "reasoning tokens" in shown_html(result)
    text, html = repr(result), shown_html(result)
    each = usd(REASONING * 4.0 / 1e6)
    assert "ttft (incl. thinking)" in text and "| reasoning |" in text and f"| {REASONING} ({each}) |" in text
    assert "<th>reasoning</th>" in html and "<th>ttft (incl. thinking)</th>" in html
    assert result.to_dicts()[0]["reasoning_tokens"] == REASONING


def test_a_batch_without_reasoning_shows_no_reasoning_column() -> None:
    result = nbtools.batch(["hello"])
    assert "reasoning" not in repr(result) and "reasoning" not in shown_html(result)
    assert "reasoning" not in str(result.summary())
