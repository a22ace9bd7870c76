"""A model that refuses a request field every row shares: the batch stops at the first answer.

Real local servers (tests/error_server.py) answer with each provider's documented refusal
(tests/provider_params.py) whenever the request carries the refused field, as the providers do. Counts and
bodies are the server's: what it was sent.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from IPython.core.error import UsageError

import nbtools
from nbtools._engine import failures
from nbtools._engine.gates.adaptive import AUTO_START
from tests.support import provider_errors as pe
from tests.support import provider_params as pp
from tests.support.error_server import Script
from tests.support.helpers import shown_html

KEY_ENV = "NBTOOLS_E2E_KEY"
MODEL = "e2e-model"
N = 200
PROVIDER_ARG = {"openai": "openai", "xai": "xai", "anthropic": "anthropic", "gemini": None, "groq": None}
CONTEXT_LENGTH = next(r for r in pe.OPENAI if r.case == "context_length_exceeded")


@pytest.fixture(autouse=True)
def fake_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, pe.FAKE_KEY)


class Recorder:
    """A script that refuses requests carrying ``field`` with ``reply``, and keeps every body it was sent."""

    def __init__(self, refusals: dict[str, pe.ErrorReply], also: Script | None = None) -> None:
        self.refusals, self.also, self.bodies = refusals, also, []

    def __call__(self, number: int, body: dict[str, Any]) -> pe.ErrorReply | None:
        self.bodies.append(body)
        for field, reply in self.refusals.items():
            if field in body:
                return reply
        return self.also(number, body) if self.also is not None else None


def prompts(n: int = N) -> list[str]:
    return [f"prompt {i}" for i in range(n)]


def assert_no_key(texts: list[str]) -> None:
    for text in texts:
        assert pe.FAKE_KEY not in text and pe.FAKE_KEY[11:-8] not in text, text[:300]


# -- a refused field stops the batch -------------------------------------------------------------------
@pytest.mark.parametrize("concurrency", [20, "auto"])
@pytest.mark.parametrize("refusal", pp.REFUSALS, ids=lambda r: r.id)
def test_a_refused_field_stops_the_batch_at_the_first_answer(serve, refusal: pp.Refusal,
                                                             concurrency: int | str) -> None:
    server, url = serve(Recorder({refusal.field: refusal.reply}))
    with pytest.raises(nbtools.EndpointError) as info:
        nbtools.batch(prompts(), provider=PROVIDER_ARG[refusal.reply.provider], base_url=url, model=MODEL,
                      api_key_env=KEY_ENV, concurrency=concurrency, **refusal.options)
    limit = 20 if concurrency == 20 else AUTO_START
    assert 1 <= server.calls <= limit + 1

    message = str(info.value)
    assert message.startswith("batch stopped: "), message
    assert f"model {MODEL!r}" in message and f"does not accept {refusal.field!r}" in message, message
    assert refusal.fix in message and "\n" not in message, message

    result = info.value.result
    assert result is not None and len(result.rows) == N
    statuses = Counter(row.status for row in result.rows)
    assert set(statuses) <= {"error", "cancelled", "not sent"}, statuses
    answered = [row for row in result.rows if row.status == "error"]
    assert answered and all(r.error_kind == failures.PARAMETER and r.status_code == 400 and r.attempts == 1
                            for r in answered)
    assert statuses["not sent"] >= N - limit - 1
    assert result.summary().error_kinds == {failures.PARAMETER: statuses["error"]}
    html = shown_html(result)
    assert html.count("batch stopped: ") == 1
    assert_no_key([message, repr(info.value), repr(result), str(result.summary()), html])


def test_the_magic_stops_with_one_line_naming_the_flag(ip, serve) -> None:
    refusal = pp.REFUSALS[0]  # OpenAI: temperature, only the default (1)
    server, url = serve(Recorder({"temperature": refusal.reply}))
    ip.user_ns.pop("refused", None)
    with pytest.raises(UsageError) as info:
        ip.run_cell_magic("llm_batch", f"--provider openai --base-url {url} -m {MODEL} --api-key-env {KEY_ENV} "
                                       "-c 20 -t 0.7 -o refused", "\n".join(prompts()))
    message = str(info.value)
    assert message.startswith("batch stopped: ") and "does not accept 'temperature'" in message
    assert "-t/--temperature" in message and "\n" not in message
    assert server.calls <= 21
    rows = ip.user_ns["refused"].rows
    assert len(rows) == N and sum(row.status == "not sent" for row in rows) >= N - 21
    assert_no_key([message])


def test_a_refusal_naming_a_field_not_sent_stays_the_rows_error(serve) -> None:
    """The same refusal of temperature, to a batch that sends none: nothing says every row would get it."""
    refusal = pp.REFUSALS[0]
    server, url = serve(lambda number, body: refusal.reply if number % 4 == 0 else None)
    result = nbtools.batch(prompts(40), provider="openai", base_url=url, model=MODEL, api_key_env=KEY_ENV,
                           concurrency=5)
    statuses = Counter(row.status for row in result.rows)
    assert statuses == {"ok": 30, "error": 10} and server.calls == 40
    assert {row.error_kind for row in result.rows if row.status == "error"} == {failures.BAD_REQUEST}


def test_a_400_about_one_rows_content_stays_that_rows_error(serve) -> None:
    """With temperature sent, a prompt longer than the context (param 'messages') fails only its row."""
    def long_prompt(number: int, body: dict[str, Any]) -> Any:
        return CONTEXT_LENGTH if body["messages"][-1]["content"] == "prompt 7" else None
    server, url = serve(long_prompt)
    result = nbtools.batch(prompts(40), provider="openai", base_url=url, model=MODEL, api_key_env=KEY_ENV,
                           concurrency=5, temperature=0.7)
    failed = [row for row in result.rows if row.status != "ok"]
    assert [(row.index, row.error_kind) for row in failed] == [(7, failures.BAD_REQUEST)]
    assert server.calls == 40 and result.failure is None


# -- max_tokens under the name the server wants ----------------------------------------------------------
def test_openais_own_api_gets_max_completion_tokens(serve) -> None:
    recorder = Recorder({"max_tokens": pp.MAX_TOKENS_REFUSED})
    server, url = serve(recorder)
    result = nbtools.batch(prompts(20), provider="openai", base_url=url, model=MODEL, api_key_env=KEY_ENV,
                           concurrency=5, max_tokens=50)
    assert [row.status for row in result.rows] == ["ok"] * 20 and server.calls == 20
    assert all(body.get("max_completion_tokens") == 50 and "max_tokens" not in body for body in recorder.bodies)


@pytest.mark.parametrize("stream", [False, True])
def test_a_server_refusing_max_tokens_is_asked_again_with_the_other_name_once_per_batch(serve, stream: bool) -> None:
    recorder = Recorder({"max_tokens": pp.MAX_TOKENS_REFUSED})
    server, url = serve(recorder)
    result = nbtools.batch(prompts(60), base_url=url, model=MODEL, api_key_env=KEY_ENV, concurrency=5,
                           max_tokens=50, stream=stream)
    assert [row.status for row in result.rows] == ["ok"] * 60 and result.texts == prompts(60)
    refused = [body for body in recorder.bodies if "max_tokens" in body]
    assert 1 <= len(refused) <= 5  # only those in flight when the first refusal came back
    assert server.calls == 60 + len(refused) and all(row.attempts == 1 for row in result.rows)
    assert all(body["max_completion_tokens"] == 50 for body in recorder.bodies if "max_tokens" not in body)
    assert "max_tokens" not in str(recorder.bodies[len(refused) + 5:])  # after the switch, never again


def test_a_server_that_does_not_know_max_completion_tokens_gets_max_tokens(serve) -> None:
    """provider='openai' pointed at an older compatible server (a proxy): the other way round, once."""
    recorder = Recorder({"max_completion_tokens": pp.MAX_COMPLETION_TOKENS_UNKNOWN})
    server, url = serve(recorder)
    result = nbtools.batch(prompts(30), provider="openai", base_url=url, model=MODEL, api_key_env=KEY_ENV,
                           concurrency=5, max_tokens=50)
    assert [row.status for row in result.rows] == ["ok"] * 30
    assert 1 <= sum("max_completion_tokens" in body for body in recorder.bodies) <= 5
    assert server.calls == len(recorder.bodies) <= 35


def test_a_server_refusing_both_names_stops_naming_the_option(serve) -> None:
    recorder = Recorder({"max_tokens": pp.MAX_TOKENS_REFUSED,
                         "max_completion_tokens": pp.MAX_COMPLETION_TOKENS_UNKNOWN})
    server, url = serve(recorder)
    with pytest.raises(nbtools.EndpointError) as info:
        nbtools.batch(prompts(100), base_url=url, model=MODEL, api_key_env=KEY_ENV, concurrency=5, max_tokens=50)
    message = str(info.value)
    assert "does not accept 'max_completion_tokens'" in message and "leave max_tokens= out (magic: --max-tokens)" in message
    assert server.calls <= 2 * 5 + 1  # each in flight at most twice: once under each name
    assert sum(row.status == "not sent" for row in info.value.result.rows) >= 100 - 6
