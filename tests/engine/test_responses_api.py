"""The Responses API against a server written from OpenAI's API reference (tests/responses_server.py):
the rows of api='responses' equal those of api='chat', plain, streamed and as Batch API lines."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from IPython.core.error import UsageError

import nbtools
from nbtools._engine import failures
from tests.support.helpers import serve_app, serve_post
from tests.support.responses_server import FAIL, ONLY_RESPONSES_MODEL, REASONING, ResponsesServer, response_object

KEY = "sk-test-responses-key-0123456789"
PRICE = (1.0, 4.0)  # USD per million tokens: cost is compared too
PROMPTS = ["one two three", "a b", "the quick brown fox jumps", "x"]
FIELDS = ("status", "text", "prompt_tokens", "completion_tokens", "reasoning_tokens", "cached_tokens",
          "finish_reason", "cost", "error_kind", "status_code", "model")


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ResponsesServer]:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    server = ResponsesServer()
    with serve_app(server.app()) as url:
        server.url = url + "/v1"  # type: ignore[attr-defined]
        yield server


def run(server: ResponsesServer, prompts: list[str] = PROMPTS, **options: Any) -> nbtools.BatchResult:
    options.setdefault("model", "gpt-test")
    if options.get("via") != "batch":
        options.setdefault("concurrency", 4)
    return nbtools.batch(prompts, provider="openai", base_url=server.url, price=PRICE,  # type: ignore[attr-defined]
                         cache=False, **options)


def rows(result: nbtools.BatchResult) -> list[tuple[Any, ...]]:
    return [tuple(getattr(row, name) for name in FIELDS) for row in result.rows]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_responses_rows_equal_chat_rows(server: ResponsesServer, stream: bool) -> None:
    chat = run(server, api="chat", stream=stream, system="Be brief.", max_tokens=4)
    responses = run(server, api="responses", stream=stream, system="Be brief.", max_tokens=4)
    assert rows(responses) == rows(chat)
    assert server.calls == {"chat": 4, "responses": 4}
    assert [row.finish_reason for row in chat.rows] == ["stop", "stop", "length", "stop"]  # cut by the bound
    assert all(row.reasoning_tokens == REASONING and row.cost > 0 for row in responses.rows)
    sent = server.bodies["responses"][0]
    assert sent["instructions"] == "Be brief." and sent["max_output_tokens"] == 4 and sent["store"] is False
    assert sent["input"] == [{"role": "user", "content": "one two three"}]
    assert "messages" not in sent and "max_tokens" not in sent and "stream_options" not in sent
    if stream:
        assert all(row.ttft is not None for row in responses.rows)


def test_an_error_is_the_same_error_on_either_format(server: ResponsesServer) -> None:
    prompts = ["fine", f"this one is {FAIL}", "also fine"]
    chat, responses = run(server, prompts, api="chat"), run(server, prompts, api="responses")
    assert rows(responses) == rows(chat)
    assert [row.error_kind for row in responses.rows] == [None, failures.BAD_REQUEST, None]
    assert [r.error for r in responses.rows] == [r.error for r in chat.rows]


def test_auto_asks_again_on_responses_once_and_remembers_the_model(server: ResponsesServer) -> None:
    prompts = [f"question {i}" for i in range(30)]
    first = run(server, prompts, model=ONLY_RESPONSES_MODEL)  # api='auto' is the default
    assert [row.status for row in first.rows] == ["ok"] * 30 and first.failure is None
    assert 1 <= server.calls["chat"] <= 4 and server.calls["responses"] == 30  # only those in flight were refused
    assert all(row.attempts == 1 for row in first.rows)
    again = run(server, prompts[:5], model=ONLY_RESPONSES_MODEL)
    assert again.texts == [f"answer: question {i}" for i in range(5)]
    assert server.calls["responses"] == 35 and server.calls["chat"] == len(server.bodies["chat"]) <= 4  # no new chat call
    plain = run(server, prompts[:3], model="gpt-test")  # other models stay on chat
    assert plain.texts == ["answer: question 0", "answer: question 1", "answer: question 2"]
    assert server.calls["responses"] == 35


def test_api_chat_stops_with_the_fix_for_a_responses_only_model(server: ResponsesServer) -> None:
    with pytest.raises(nbtools.EndpointError) as info:
        run(server, [f"q{i}" for i in range(40)], model=ONLY_RESPONSES_MODEL, api="chat")
    message = str(info.value)
    assert "answers only on /v1/responses" in message and "api='responses'" in message and "\n" not in message
    assert server.calls["responses"] == 0 and server.calls["chat"] <= 5
    assert KEY not in message


def test_batch_api_lines_go_to_v1_responses_and_give_the_same_rows(server: ResponsesServer) -> None:
    chat = run(server, api="chat", via="batch", poll_interval=0.01, max_tokens=4)
    responses = run(server, api="responses", via="batch", poll_interval=0.01, max_tokens=4)
    assert [batch["endpoint"] for batch in server.batches.values()] == ["/v1/chat/completions", "/v1/responses"]
    # Batch API rows are priced at the batch rates: the same for both formats
    assert rows(responses) == rows(chat) and all(row.ok for row in responses.rows)
    line = server.bodies["responses"][0]
    assert line["max_output_tokens"] == 4 and line["store"] is False and line["input"][0]["content"] == "one two three"


def test_a_bad_api_is_a_one_line_error_naming_the_choices(ip) -> None:
    with pytest.raises(nbtools.ConfigError) as info:
        nbtools.batch(["x"], api="foo")
    assert "api='foo'" in str(info.value) and "'chat', 'responses', 'auto'" in str(info.value)
    with pytest.raises(UsageError, match="'chat', 'responses', 'auto'"):
        ip.run_cell_magic("llm_batch", "--api foo", "x")


def test_the_simulator_answers_on_responses_as_on_chat() -> None:
    prompts = ["hello there", "what is 2+2"]
    for stream in (False, True):
        chat = nbtools.batch(prompts, api="chat", stream=stream, max_tokens=6)
        responses = nbtools.batch(prompts, api="responses", stream=stream, max_tokens=6)
        assert [(r.text, r.prompt_tokens, r.completion_tokens, r.finish_reason) for r in responses.rows] == \
               [(r.text, r.prompt_tokens, r.completion_tokens, r.finish_reason) for r in chat.rows]


# -- failures inside a streamed response, as the reference names them -------------------------------------
def _events(*typed: tuple[str, dict[str, Any]]) -> bytes:
    return b"".join(f"event: {kind}\ndata: {json.dumps({'type': kind, 'sequence_number': i, **data})}\n\n".encode()
                    for i, (kind, data) in enumerate(typed))


@pytest.fixture
def failing_stream() -> Iterator[tuple[dict[str, int], str]]:
    """/v1/responses streams whose first attempt per prompt fails as the prompt says: a ``response.failed``
    event (server_error), an ``error`` event, or a stream that stops before its terminal event."""
    calls: dict[str, int] = {}

    async def responses(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        prompt = body["input"][-1]["content"]
        calls[prompt] = calls.get(prompt, 0) + 1
        reply = response_object(body, calls[prompt])
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        delta = ("response.output_text.delta", {"item_id": "msg_1", "output_index": 0, "content_index": 0,
                                                "delta": "answer:"})
        if calls[prompt] == 1 and "failed" in prompt:
            failed = {**reply, "status": "failed", "output": [], "usage": None,
                      "error": {"code": "server_error", "message": "The model failed to generate a response."}}
            await response.write(_events(delta, ("response.failed", {"response": failed})))
        elif calls[prompt] == 1 and "error" in prompt:
            await response.write(_events(delta, ("error", {"code": "server_error", "param": None,
                                                            "message": "An error occurred while processing."})))
        elif calls[prompt] == 1 and "cut" in prompt:
            await response.write(_events(delta))
        else:
            await response.write(_events(delta, ("response.completed", {"response": reply})))
        await response.write_eof()
        return response

    with serve_post("/v1/responses", responses) as url:
        yield calls, url + "/v1"


@pytest.mark.parametrize("how", ["failed", "error", "cut"])
def test_a_stream_that_fails_is_retried_like_a_chat_stream(failing_stream, how: str) -> None:
    calls, url = failing_stream
    prompts = [f"{how} {i}" for i in range(4)]
    result = nbtools.batch(prompts, base_url=url, model="m", api="responses", stream=True, retries=1, cache=False)
    assert [row.status for row in result.rows] == ["ok"] * 4 and all(row.attempts == 2 for row in result.rows)
    assert result.texts == [f"answer: {p}" for p in prompts] and set(calls.values()) == {2}
    none = nbtools.batch(prompts[:1], base_url=url, model="m", api="responses", stream=True, retries=0, cache=False)
    assert none.rows[0].status == "ok"  # its first attempt was already spent above: the server answers now


def test_a_stream_that_fails_without_retries_is_the_rows_error(failing_stream) -> None:
    calls, url = failing_stream
    result = nbtools.batch(["failed once", "error once", "cut once"], base_url=url, model="m", api="responses",
                           stream=True, retries=0, cache=False)
    assert [row.error_kind for row in result.rows] == [failures.SERVER, failures.SERVER, failures.CUT]
    assert "The model failed to generate a response." in result.rows[0].error
    assert "An error occurred while processing." in result.rows[1].error
    # what arrived is kept (an error event in the same network chunk as the text may come first: not asserted)
    assert result.rows[0].partial == result.rows[2].partial == "answer:"


def test_the_magic_and_config_take_api(ip, server: ResponsesServer) -> None:
    ip.run_cell_magic("llm_batch", f"--provider openai --base-url {server.url} -m gpt-test --api responses "  # type: ignore[attr-defined]
                                   "--no-cache -o via_magic", "one two\nthree")
    assert ip.user_ns["via_magic"].texts == ["answer: one two", "answer: three"] and server.calls["responses"] == 2
    ip.run_line_magic("config", "LLMBatch.api = 'responses'")
    try:
        ip.run_cell_magic("llm_batch", f"--provider openai --base-url {server.url} -m gpt-test --no-cache -o via_config",  # type: ignore[attr-defined]
                          "four")
    finally:
        ip.run_line_magic("config", "LLMBatch.api = 'auto'")
    assert server.calls == {"chat": 0, "responses": 3}
