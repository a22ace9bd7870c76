"""nbtools._engine.failures.classify over every provider's documented error replies, and the edge cases."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from aiohttp import web

from nbtools._engine import failures, sse
from nbtools._engine.failures import (
    AUTH,
    BAD_REQUEST,
    CONNECTION,
    CONTENT_FILTER,
    CUT,
    NOT_FOUND,
    OVERLOADED,
    PERMISSION,
    QUOTA,
    RATE_LIMIT,
    SERVER,
    TIMEOUT,
    classify,
    classify_finish,
)
from nbtools._engine.sse import DONE, SSEDecoder
from tests.support.helpers import serve_post
from tests.support.provider_errors import (
    ALL,
    FAKE_KEY,
    LLAMA_CPP_COMPLETE_STREAM,
    LLAMA_CPP_CUT_STREAM,
    STREAM_ERRORS,
    ErrorReply,
    StreamError,
)


@pytest.mark.parametrize("reply", ALL, ids=[r.id for r in ALL])
def test_each_documented_reply_is_classified(reply: ErrorReply) -> None:
    # As the engine will see it: the body parsed when it is JSON, and the raw text.
    assert classify(reply.status, reply.body, reply.raw().decode(), reply.headers) == reply.kind


@pytest.mark.parametrize("reply", ALL, ids=[r.id for r in ALL])
def test_each_reply_is_classified_from_its_raw_text_alone(reply: ErrorReply) -> None:
    assert classify(reply.status, None, reply.raw().decode(), reply.headers) == reply.kind


def test_the_replies_classify_the_same_after_a_trip_over_real_http() -> None:
    by_id = {reply.id: reply for reply in ALL}

    async def answer(request: web.Request) -> web.Response:
        reply = by_id[request.match_info["id"]]
        return web.Response(status=reply.status, body=reply.raw(), headers=reply.headers)

    async def fetch_all(url: str) -> dict[str, tuple[int, str, str]]:
        seen = {}
        async with aiohttp.ClientSession() as session:
            for reply in ALL:
                async with session.post(f"{url}/{reply.id}/v1/chat/completions", json={"model": "m"}) as resp:
                    raw = (await resp.read()).decode()
                    body = json.loads(raw) if resp.content_type == "application/json" and raw else None
                    seen[reply.id] = (resp.status, raw, classify(resp.status, body, raw, resp.headers))
        return seen

    with serve_post("/{id}/v1/chat/completions", answer) as url:
        seen = asyncio.run(fetch_all(url))
    for reply in ALL:
        assert seen[reply.id] == (reply.status, reply.raw().decode(), reply.kind), reply.id


@pytest.mark.parametrize("error", STREAM_ERRORS, ids=[e.id for e in STREAM_ERRORS])
def test_errors_inside_a_stream_are_classified_without_a_status(error: StreamError) -> None:
    assert classify(None, error.body) == error.kind
    assert classify(200, error.body) == error.kind  # the stream's own status says nothing
    with pytest.raises(sse.StreamError):  # and the engine's decoder does see an error in those bytes
        SSEDecoder().feed(error.event)


def test_the_fixtures_cover_every_provider_and_every_kind_a_reply_can_have() -> None:
    assert {r.provider for r in ALL} == {"openai", "xai", "anthropic", "ollama", "vllm", "llama.cpp", "gateway"}
    # CONNECTION and CUT never come with a reply; PARAMETER needs the request too (tests/provider_params.py)
    reply_kinds = set(failures.KINDS) - {CONNECTION, CUT, failures.PARAMETER}
    assert {r.kind for r in ALL} == reply_kinds
    assert len({r.id for r in ALL}) == len(ALL)


def test_the_fixtures_never_carry_the_key_itself() -> None:
    for reply in ALL:
        assert FAKE_KEY not in reply.raw().decode(), reply.id
        assert all(FAKE_KEY not in value for value in reply.headers.values()), reply.id


def test_the_kind_sets_partition_the_kinds() -> None:
    groups = [failures.BATCH_WIDE, failures.WAIT, failures.RETRYABLE, failures.ROW_ONLY]
    assert sorted(k for g in groups for k in g) == sorted(failures.KINDS)
    assert failures.BATCH_WIDE == {AUTH, PERMISSION, QUOTA, NOT_FOUND, failures.PARAMETER}
    assert failures.WAIT == {RATE_LIMIT, OVERLOADED}
    assert failures.RETRYABLE == {SERVER, TIMEOUT, CONNECTION, CUT}
    assert failures.ROW_ONLY == {BAD_REQUEST, CONTENT_FILTER}


# -- the code beats the status, both ways ---------------------------------------------------------------
def test_openai_429_is_billing_or_speed_by_its_code() -> None:
    quota = {"error": {"message": "x", "type": "insufficient_quota", "code": "insufficient_quota"}}
    speed = {"error": {"message": "x", "type": "requests", "code": "rate_limit_exceeded"}}
    assert classify(429, quota) == QUOTA
    assert classify(429, speed) == RATE_LIMIT


def test_xai_bad_key_is_auth_although_it_is_a_400() -> None:
    body = {"code": "Client specified an invalid argument",
            "error": "Incorrect%20API%20key%20provided:%20ba***na.%20You%20can%20obtain%20an%20API%20key"}
    assert classify(400, body) == AUTH  # the older, percent-encoded wording


def test_anthropic_spend_cap_429_is_quota_but_a_plain_429_waits() -> None:
    capped = {"type": "error", "error": {"type": "rate_limit_error", "message": "m",
                                         "details": {"error_code": "enforced_spend_limit_reached"}}}
    assert classify(429, capped) == QUOTA
    assert classify(429, {"type": "error", "error": {"type": "rate_limit_error", "message": "m"}}) == RATE_LIMIT


def test_a_generic_type_does_not_hide_the_status() -> None:
    assert classify(503, {"error": {"message": "m", "type": "api_error"}}) == OVERLOADED  # Ollama /v1
    assert classify(500, {"error": {"message": "m", "type": "api_error"}}) == SERVER
    assert classify(None, {"type": "error", "error": {"type": "api_error", "message": "m"}}) == SERVER


def test_a_2xx_carrying_an_error_uses_the_status_the_body_names() -> None:
    assert classify(200, {"error": {"message": "m", "type": "BadRequestError", "code": 400}}) == BAD_REQUEST
    assert classify(200, {"error": {"message": "m", "type": "X", "code": "404"}}) == NOT_FOUND
    assert classify(200, {"error": "something went wrong"}) == SERVER


def test_azure_foundry_400_with_a_filtered_completion_is_content_filter() -> None:
    body = {"object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": ""},
                                                      "finish_reason": "content_filter"}]}
    assert classify(400, body) == CONTENT_FILTER


# -- edge cases -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("status", "kind"), [
    (400, BAD_REQUEST), (401, AUTH), (402, QUOTA), (403, PERMISSION), (404, NOT_FOUND), (405, NOT_FOUND),
    (408, TIMEOUT), (409, SERVER), (413, BAD_REQUEST), (418, BAD_REQUEST), (422, BAD_REQUEST),
    (429, RATE_LIMIT), (451, BAD_REQUEST), (500, SERVER), (501, BAD_REQUEST), (502, SERVER), (503, OVERLOADED),
    (504, TIMEOUT), (520, SERVER), (529, OVERLOADED), (599, SERVER),
])
def test_no_body_falls_back_to_the_status(status: int, kind: str) -> None:
    assert classify(status, None, "", {}) == kind


def test_a_body_that_is_not_json_falls_back_to_the_status() -> None:
    assert classify(500, None, "Internal Server Error", {"content-type": "text/plain"}) == SERVER
    assert classify(401, None, "Unauthorized") == AUTH
    assert classify(400, None, "{not json") == BAD_REQUEST
    assert classify(400, None, "Incorrect API key provided") == AUTH  # plain text still read for phrases


def test_an_html_page_is_judged_by_its_status_not_its_words() -> None:
    page = "<html><body><h1>Service Unavailable</h1><p>server busy: incorrect api key</p></body></html>"
    assert classify(403, None, page, {"Content-Type": "text/html; charset=UTF-8"}) == PERMISSION
    assert classify(502, None, page, {}) == SERVER


def test_json_of_an_unexpected_shape_falls_back_to_the_status() -> None:
    for body in ([1, 2], "text", 42, {"detail": "Not Found"}, {"error": None}, {"error": {"code": 99999}}):
        assert classify(404, body) == NOT_FOUND
        assert classify(418, body) == BAD_REQUEST
        assert classify(500, body) == SERVER


def test_no_status_and_nothing_to_read_is_a_connection_failure() -> None:
    assert classify(None, None, "", {}) == CONNECTION
    assert classify(None, None) == CONNECTION
    assert classify(None, None, "garbled") == SERVER


# -- finished or not ------------------------------------------------------------------------------------
def _finish_of(stream: bytes) -> tuple[str | None, bool]:
    """The last finish_reason of an OpenAI-style SSE stream, and whether it ended with [DONE], read by
    the engine's own decoder."""
    finish, done = None, False
    decoder = SSEDecoder()
    for event in decoder.feed(stream) + decoder.close():
        if event is DONE:
            done = True
        else:
            for choice in event["choices"]:
                finish = choice["finish_reason"] or finish
    return finish, done


def test_llama_cpp_cut_stream_is_cut_though_it_says_done() -> None:
    finish, done = _finish_of(LLAMA_CPP_CUT_STREAM)
    assert done and finish is None
    assert classify_finish(finish, stream=True) == CUT


def test_llama_cpp_complete_stream_is_finished() -> None:
    finish, done = _finish_of(LLAMA_CPP_COMPLETE_STREAM)
    assert done and finish == "stop"
    assert classify_finish(finish, stream=True) is None


@pytest.mark.parametrize(("finish", "stream", "kind"), [
    ("stop", False, None), ("length", True, None), ("tool_calls", True, None), (None, False, None),
    (None, True, CUT), ("content_filter", False, CONTENT_FILTER), ("content_filter", True, CONTENT_FILTER),
    ("error", True, SERVER),
])
def test_classify_finish(finish: str | None, stream: bool, kind: str | None) -> None:
    assert classify_finish(finish, stream=stream) == kind
