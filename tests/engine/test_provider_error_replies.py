"""Failures end to end: real local servers answer with each provider's documented error replies.

Each test starts its own ProviderServer (tests/support/error_server.py) over real HTTP on 127.0.0.1 and serves
the replies of tests/support/provider_errors.py (status, headers and body as the provider documents them, each
with its source). Counts come from the server: what it was sent, not what the client says it sent.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError

import nbtools
from nbtools._engine import failures
from nbtools._engine.gates.adaptive import AUTO_START
from tests.support import provider_errors as pe
from tests.support.error_server import ProviderServer, every, when_prompt_has
from tests.support.helpers import shown_html

KEY_ENV = "NBTOOLS_E2E_KEY"
MODEL = "e2e-model"
N = 200
# nbtools' provider= for each fixture provider: its profile (and so its key variable and default base URL
# path /v1); llama.cpp's server and a proxy in front of any server are plain base_url endpoints.
PROVIDER_ARG = {"openai": "openai", "xai": "xai", "anthropic": "anthropic", "ollama": "ollama", "vllm": "vllm",
                "llama.cpp": None, "gateway": None}

# Every batch-wide reply. Ollama's native-API bodies (/api/chat) are left out: nbtools talks to its /v1.
BATCH_WIDE = [r for r in pe.ALL if r.kind in failures.BATCH_WIDE and not r.case.endswith("_native")]
ROW_ONLY = [r for r in pe.ALL if r.kind in failures.ROW_ONLY and not r.case.endswith("_native")]
# What the stop message must say, by kind: the cause, and the fix.
CAUSE_AND_FIX = {
    failures.AUTH: (f"refused the key in {KEY_ENV}", f"set a valid key in {KEY_ENV}"),
    failures.PERMISSION: (f"not allowed to use model {MODEL!r}", "nbtools.models("),
    failures.QUOTA: (f"the key in {KEY_ENV} has no quota or credit left", "add credit"),
    failures.NOT_FOUND: (f"model {MODEL!r} or the API route was not found", "check the model name"),
}


def _by_id(replies: list[pe.ErrorReply], id_: str) -> pe.ErrorReply:
    return next(r for r in replies if r.id == id_)


# OpenAI's 429 rate_limit_exceeded body, with the retry-after-ms header openai-python honours
# (src/openai/_base_client.py, _parse_retry_after_header). The fixture's own x-ratelimit-* headers say the
# window resets in 20 s; they are left out so a test waits 50 ms, not 20 s.
_OPENAI_RATE = _by_id(pe.OPENAI, "openai-rate_limit_requests")
RATE_LIMIT_50MS = dataclasses.replace(_OPENAI_RATE, headers={**pe.OPENAI_HEADERS, "retry-after-ms": "50"})
RATE_LIMIT_1S = dataclasses.replace(_OPENAI_RATE, headers={**pe.OPENAI_HEADERS, "retry-after": "1"})
# Push-back that names no wait: Anthropic's 529, Ollama's full queue, llama.cpp loading its model.
OVERLOADED = [_by_id(pe.ANTHROPIC, "anthropic-overloaded_error"), _by_id(pe.OLLAMA, "ollama-queue_full_v1"),
              _by_id(pe.LLAMA_CPP, "llama.cpp-loading_model")]


@pytest.fixture(autouse=True)
def fake_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, pe.FAKE_KEY)


def prompts(n: int = N) -> list[str]:
    return [f"prompt {i}" for i in range(n)]


def run(url: str, provider: str | None, items: list[str], **options: Any) -> nbtools.BatchResult:
    return nbtools.batch(items, provider=provider, base_url=url, model=MODEL, api_key_env=KEY_ENV, **options)


def assert_no_key(texts: list[str]) -> None:
    for text in texts:
        assert pe.FAKE_KEY not in text and pe.FAKE_KEY[11:-8] not in text, text[:300]


# -- batch-wide failures stop the batch ---------------------------------------------------------------
@pytest.mark.parametrize("concurrency", [20, "auto"])
@pytest.mark.parametrize("reply", BATCH_WIDE, ids=lambda r: r.id)
def test_a_batch_wide_error_stops_the_batch_at_once(serve, tmp_path: Path, reply: pe.ErrorReply,
                                                    concurrency: int | str) -> None:
    server, url = serve(every(1, reply))
    with pytest.raises(nbtools.EndpointError) as info:
        run(url, PROVIDER_ARG[reply.provider], prompts(), concurrency=concurrency)
    exc = info.value
    limit = 20 if concurrency == 20 else AUTO_START
    assert server.authorization == {f"Bearer {pe.FAKE_KEY}"}  # the key was sent: the server could refuse it
    assert 1 <= server.calls <= limit + 1

    message = str(exc)
    cause, fix = CAUSE_AND_FIX[reply.kind]
    assert message.startswith("batch stopped: ") and cause in message and fix in message, message
    assert "\n" not in message  # one line

    result = exc.result
    assert result is not None and result.failure is exc and len(result.rows) == N
    statuses = Counter(row.status for row in result.rows)
    assert set(statuses) <= {"error", "cancelled", "not sent"}, statuses
    answered = [row for row in result.rows if row.status == "error"]
    assert answered and all(r.error_kind == reply.kind and r.status_code == reply.status and r.attempts == 1
                            for r in answered)
    started = statuses["error"] + statuses["cancelled"]
    assert server.calls <= started <= limit + 1  # every request sent belongs to a started row
    assert statuses["not sent"] == N - started >= N - limit - 1
    summary = result.summary()
    assert summary.not_sent == statuses["not sent"] and summary.error_kinds == {reply.kind: statuses["error"]}
    assert summary.server_capacity is None and summary.server_limit() is None  # a stop says nothing of capacity

    html = shown_html(result)
    assert html.count("batch stopped: ") == 1  # shown once, at the top
    path = tmp_path / "rows.jsonl"
    result.to_jsonl(path)
    dicts = result.to_dicts()
    assert {d["status"] for d in dicts} == set(statuses) and any(d["error_kind"] == reply.kind for d in dicts)
    assert_no_key([message, repr(exc), repr(result), str(summary), html, json.dumps(dicts), path.read_text()])


def test_the_magic_stops_with_one_line_and_keeps_the_rows(ip, serve, capsys: pytest.CaptureFixture[str]) -> None:
    server, url = serve(every(1, _by_id(pe.XAI, "xai-incorrect_api_key")))
    ip.user_ns.pop("stopped", None)
    with pytest.raises(UsageError) as info:
        ip.run_cell_magic("llm_batch", f"--provider xai --base-url {url} -m {MODEL} --api-key-env {KEY_ENV} "
                                       "-c 20 -o stopped", "\n".join(prompts()))
    message = str(info.value)
    assert message.startswith("batch stopped: ") and f"refused the key in {KEY_ENV}" in message and "\n" not in message
    assert server.calls <= 21
    result = ip.user_ns["stopped"]
    assert len(result.rows) == N and sum(row.status == "not sent" for row in result.rows) >= N - 21
    shown = capsys.readouterr()
    assert_no_key([message, shown.out, shown.err, shown_html(result)])


def test_the_stop_names_the_providers_key_variable(serve, monkeypatch: pytest.MonkeyPatch) -> None:
    """No api_key_env: the key came from the profile's variable, and the message names that one."""
    monkeypatch.setenv("OPENAI_API_KEY", pe.FAKE_KEY)
    server, url = serve(every(1, _by_id(pe.OPENAI, "openai-invalid_api_key")))
    with pytest.raises(nbtools.EndpointError, match="refused the key in OPENAI_API_KEY") as info:
        nbtools.batch(prompts(40), provider="openai", base_url=url, model=MODEL, concurrency=5)
    assert server.calls <= 6 and server.authorization == {f"Bearer {pe.FAKE_KEY}"}
    assert_no_key([str(info.value), repr(info.value.result)])


# -- rate limits and overload never fail a row ----------------------------------------------------------
def assert_all_answered(server: ProviderServer, result: nbtools.BatchResult, items: list[str]) -> None:
    assert [row.status for row in result.rows] == ["ok"] * len(items)
    assert result.texts == items
    assert server.errors > 0 and server.calls == len(items) + server.errors
    assert sum(row.attempts for row in result.rows) == server.calls  # every attempt shows on its row
    assert all(row.error_kind is None and row.status_code is None for row in result.rows)
    print(f"{server.calls / len(items):.2f} requests sent per row ({server.errors} push-backs)")


@pytest.mark.parametrize("concurrency", [20, "auto"])
def test_a_rate_limit_on_every_third_request_fails_no_row(serve, concurrency: int | str) -> None:
    server, url = serve(every(3, RATE_LIMIT_50MS))
    result = run(url, "openai", prompts(), concurrency=concurrency)
    assert_all_answered(server, result, prompts())
    summary = result.summary()
    assert summary.errors == 0 and summary.refused_at is not None
    if concurrency == 20:  # a ceiling the limit drops below and climbs back to, never past
        assert summary.max_concurrency <= 20
    assert summary.server_limit() is not None  # the display says the server set the pace


def test_retry_after_in_seconds_is_waited_out(serve) -> None:
    server, url = serve(every(3, RATE_LIMIT_1S))
    items = prompts(12)
    result = run(url, "openai", items, concurrency=6, retries=0)  # waits are not retries
    assert_all_answered(server, result, items)


@pytest.mark.parametrize(("reply", "concurrency"), [(OVERLOADED[0], 20), (OVERLOADED[0], "auto"),
                                                    *((reply, 20) for reply in OVERLOADED[1:])],
                         ids=lambda v: v.id if isinstance(v, pe.ErrorReply) else str(v))
def test_overload_on_every_third_request_fails_no_row(serve, reply: pe.ErrorReply, concurrency: int | str) -> None:
    server, url = serve(every(3, reply))
    result = run(url, PROVIDER_ARG[reply.provider], prompts(), concurrency=concurrency)
    assert_all_answered(server, result, prompts())


def test_max_wait_runs_out_when_every_request_is_rate_limited(serve) -> None:
    server, url = serve(every(1, RATE_LIMIT_50MS))
    items = prompts(6)
    result = run(url, "openai", items, concurrency=3, max_wait=0.5)
    for row in result.rows:
        assert row.status == "error" and row.error_kind == failures.RATE_LIMIT and row.status_code == 429
        assert row.error is not None and "max_wait=0.5 s" in row.error, row.error
        # Each wait is >= 50 ms and the batch gives up 0.5 s after its last reply: a bounded number of tries.
        assert 2 <= row.attempts <= 0.5 / 0.05 + 2, row.attempts
    assert server.calls == sum(row.attempts for row in result.rows)
    assert result.summary().error_kinds == {failures.RATE_LIMIT: len(items)}


# -- a row's own error fails only that row, once -------------------------------------------------------
@pytest.mark.parametrize("reply", ROW_ONLY, ids=lambda r: r.id)
def test_a_row_only_error_fails_only_its_row_and_is_not_retried(serve, reply: pe.ErrorReply) -> None:
    server, url = serve(when_prompt_has("[bad]", reply))
    items = prompts(20)
    items[7] = "prompt 7 [bad]"
    result = run(url, PROVIDER_ARG[reply.provider], items, concurrency=5)
    bad = result.rows[7]
    assert bad.status == "error" and bad.error_kind == reply.kind and bad.status_code == reply.status
    assert bad.attempts == 1 and server.prompts.count(items[7]) == 1
    assert [row.status for i, row in enumerate(result.rows) if i != 7] == ["ok"] * 19
    assert server.calls == 20 and result.failure is None


# -- identical prompts are separate samples -----------------------------------------------------------
def test_identical_prompts_are_separate_samples_each_cached(serve) -> None:
    server, url = serve()
    same = ["the same prompt"] * 10
    first = run(url, "openai", same, temperature=1, concurrency=10)
    assert server.calls == 10 and all(row.ok and not row.cached for row in first.rows)
    again = run(url, "openai", same, temperature=1, concurrency=10)
    assert server.calls == 10 and all(row.ok and row.cached for row in again.rows)
    assert again.summary().cached == 10
    shared = run(url, "openai", ["another prompt"] * 10, temperature=1, concurrency=10, dedupe=True)
    assert server.calls == 11 and all(row.ok for row in shared.rows)
    assert sum(row.cached for row in shared.rows) == 9


# -- bad input to the new options ------------------------------------------------------------------------
@pytest.mark.parametrize(("options", "needle"), [
    ({"max_wait": -1}, "max_wait=-1"),
    ({"max_wait": 0}, "max_wait=0"),
    ({"max_wait": "x"}, "max_wait='x'"),
    ({"dedupe": "yes"}, "dedupe='yes'"),
])
def test_bad_new_options_are_one_line_errors(options: dict[str, Any], needle: str) -> None:
    with pytest.raises(nbtools.ConfigError) as info:
        nbtools.batch(["x"], **options)
    message = str(info.value)
    assert needle in message and "e.g." in message and "\n" not in message, message


def test_a_bad_max_wait_on_the_magic_line_is_a_one_line_usage_error(ip) -> None:
    with pytest.raises(UsageError) as info:
        ip.run_cell_magic("llm_batch", "--max-wait x", "hi")
    message = str(info.value)
    assert "max" in message and "'x'" in message and "e.g." in message and "\n" not in message, message


def test_a_stop_after_rate_limits_counts_only_the_failed_rows_by_kind(serve) -> None:
    """Rows cancelled while they waited out a 429 did not fail: the summary's kinds count failed rows only."""
    quota = _by_id(pe.OPENAI, "openai-insufficient_quota")
    server, url = serve(lambda number, body: RATE_LIMIT_50MS if number <= 30 else quota)
    with pytest.raises(nbtools.EndpointError, match="no quota or credit left") as info:
        run(url, "openai", prompts(), concurrency=20)
    result = info.value.result
    assert result is not None
    statuses = Counter(row.status for row in result.rows)
    # Started: 20 at first, one more per 429 (a waiting row gives its slot back), one after the stop.
    assert statuses["ok"] == 0 and statuses["not sent"] >= N - 20 - 30 - 1
    summary = result.summary()
    assert summary.errors == statuses["error"] and summary.error_kinds == {failures.QUOTA: statuses["error"]}


def test_a_wait_longer_than_max_wait_fails_the_row_at_once(serve) -> None:
    """Anthropic's 429 asks for 13 s (retry-after): more than max_wait, so the row fails now, naming both."""
    server, url = serve(every(1, _by_id(pe.ANTHROPIC, "anthropic-rate_limit_error")))
    result = run(url, "anthropic", prompts(3), concurrency=3, max_wait=5)
    for row in result.rows:
        assert row.status == "error" and row.error_kind == failures.RATE_LIMIT and row.attempts == 1
        assert row.error is not None and "wait 13 s, more than max_wait=5 s" in row.error, row.error
    assert server.calls == 3


def test_a_streamed_batch_stops_the_same_way(serve) -> None:
    server, url = serve(every(1, _by_id(pe.LLAMA_CPP, "llama.cpp-invalid_api_key")))
    with pytest.raises(nbtools.EndpointError, match=f"refused the key in {KEY_ENV}") as info:
        run(url, None, prompts(), concurrency=20, stream=True)
    assert server.calls <= 21 and info.value.result is not None
    assert sum(row.status == "not sent" for row in info.value.result.rows) >= N - 21
