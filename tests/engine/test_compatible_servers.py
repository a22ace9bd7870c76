"""The engine against servers that are not our simulator: what vLLM, llama.cpp, Ollama, proxies and
older gateways really send, byte for byte, from a small aiohttp app per test."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web

import nbtools
from tests.support.helpers import serve_app, serve_post

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def chunk(text: str | None = None, finish: str | None = None) -> dict:
    delta = {"content": text} if text is not None else {}
    return {"model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def reply(text: str) -> dict:
    return {"model": "m", "choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2}}


async def sse(request: web.Request, pieces: list[bytes], pause: float = 0.0) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for piece in pieces:
        await response.write(piece)
        if pause:
            await asyncio.sleep(pause)
    await response.write_eof()
    return response


def run(handler: Handler, prompts: list[str], **options) -> tuple[nbtools.BatchResult, list[dict]]:
    """The batch against ``handler``, and the request bodies the server received."""
    seen: list[dict] = []

    async def chat(request: web.Request) -> web.StreamResponse:
        seen.append(await request.json())
        return await handler(request)

    with serve_post("/v1/chat/completions", chat) as url:
        options = {"model": "m", "cache": False, **options}
        try:
            return nbtools.batch(prompts, base_url=url + "/v1", **options), seen
        except nbtools.EndpointError as stopped:  # a batch-wide failure: the rows are on the error
            assert stopped.result is not None and stopped.result.failure is stopped
            return stopped.result, seen


def test_an_error_chunk_mid_stream_is_the_rows_error_not_a_short_reply() -> None:
    async def vllm(request: web.Request) -> web.StreamResponse:  # vLLM: {"error": ...} then [DONE]
        error = {"error": {"message": "CUDA out of memory", "type": "InternalServerError", "code": 500}}
        return await sse(request, [f"data: {json.dumps(chunk('Hel'))}\n\n".encode(),
                                   f"data: {json.dumps(error)}\n\n".encode(), b"data: [DONE]\n\n"])

    result, seen = run(vllm, ["hi"], stream=True, retries=1)
    assert result[0].status == "error" and result[0].attempts == 2 and len(seen) == 2  # a 500: retried
    assert result[0].error.startswith("the server reported an error mid-stream: CUDA out of memory")


def test_an_error_chunk_that_also_has_choices_is_an_error() -> None:
    async def openrouter(request: web.Request) -> web.StreamResponse:  # the upstream provider failed mid-reply
        error = {"error": {"code": "server_error", "message": "Provider disconnected"},
                 "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}]}
        return await sse(request, [f"data: {json.dumps(chunk('partial'))}\n\n".encode(),
                                   f"data: {json.dumps(error)}\n\n".encode(), b"data: [DONE]\n\n"])

    result, _ = run(openrouter, ["hi"], stream=True, retries=0)
    assert result[0].status == "error" and "Provider disconnected" in result[0].error


def test_llama_cpp_error_lines_are_errors_and_a_4xx_one_is_not_retried() -> None:
    async def llama(request: web.Request) -> web.StreamResponse:  # llama.cpp: an `error:` line
        error = {"code": 400, "message": "the request exceeds the available context size", "type": "exceed_context_size_error"}
        return await sse(request, [f"error: {json.dumps(error)}\n\n".encode(), b"data: [DONE]\n\n"])

    result, seen = run(llama, ["hi"], stream=True, retries=2)
    assert result[0].status == "error" and "exceeds the available context size" in result[0].error
    assert result[0].attempts == 1 and len(seen) == 1


def test_a_server_that_refuses_stream_options_still_streams() -> None:
    async def strict(request: web.Request) -> web.StreamResponse:  # older Azure API versions, strict proxies
        body = await request.json()
        if "stream_options" in body:
            message = "Unrecognized request argument supplied: stream_options"
            return web.json_response({"error": {"message": message, "type": "invalid_request_error"}}, status=400)
        return await sse(request, [f"data: {json.dumps(chunk('Hi'))}\n\n".encode(),
                                   f"data: {json.dumps(chunk(' there', 'stop'))}\n\n".encode(), b"data: [DONE]\n\n"])

    result, seen = run(strict, [f"p{i}" for i in range(5)], stream=True, concurrency=1)
    assert [r.text for r in result] == ["Hi there"] * 5 and all(r.attempts == 1 for r in result)
    assert ["stream_options" in body for body in seen] == [True] + [False] * 5  # refused once, then left out


def test_a_stream_times_out_on_silence_not_on_its_total_length() -> None:
    async def slow_tokens(request: web.Request) -> web.StreamResponse:  # a CPU-bound local model
        pieces = [f"data: {json.dumps(chunk(f'w{i} '))}\n\n".encode() for i in range(8)]
        return await sse(request, pieces + [f"data: {json.dumps(chunk(None, 'stop'))}\n\ndata: [DONE]\n\n".encode()],
                         pause=0.15)

    result, _ = run(slow_tokens, ["hi"], stream=True, timeout=0.5, retries=0)  # 1.2 s in all, 0.15 s gaps
    assert result[0].ok and result[0].text.split() == [f"w{i}" for i in range(8)]

    async def stalls(request: web.Request) -> web.StreamResponse:
        return await sse(request, [f"data: {json.dumps(chunk('w '))}\n\n".encode(), b""], pause=1.0)

    result, _ = run(stalls, ["hi"], stream=True, timeout=0.3, retries=0)
    assert result[0].error == "timed out: nothing arrived for 0.3 s"


def test_what_real_servers_put_on_the_wire_is_read() -> None:
    long_text = "x" * 600_000  # one SSE line far longer than a line reader's buffer (a proxy's single chunk)
    split_json = json.dumps(chunk("split ")).replace(', "choices"', ',\ndata: "choices"')  # one chunk, two data: lines
    variants = {
        "crlf": f"data:{json.dumps(chunk('a'))}\r\n\r\n: keep-alive\r\n\r\nevent: message\r\nid: 1\r\n"
                f"data: {json.dumps(chunk('b', 'stop'))}\r\n\r\ndata: [DONE]\r\n\r\n",
        "cr": f"data: {json.dumps(chunk('a'))}\r\rdata: {json.dumps(chunk('b', 'stop'))}\r\r",
        "multiline": f"data: {split_json}\n\ndata: {json.dumps(chunk('b', 'stop'))}\n\n",
        "long": f"data: {json.dumps(chunk(long_text, 'stop'))}\n\ndata: [DONE]\n\n",
        "usage-last": f"data: {json.dumps(chunk('ab', 'stop'))}\n\n"
                      f"data: {json.dumps({'choices': [], 'usage': {'prompt_tokens': 4, 'completion_tokens': 1}})}\n\n",
        "bom-and-empty": f"\ufeffdata: {json.dumps(chunk('a'))}\n\ndata:\n\ndata: \n\n"
                         f"data: {json.dumps(chunk('b', 'stop'))}\n\ndata: [DONE]\n\n",
    }

    async def wire(request: web.Request) -> web.StreamResponse:
        text = variants[(await request.json())["messages"][-1]["content"]]
        data = text.encode()
        size = 7 if len(data) < 5000 else 16_384  # odd splits; the long line in many pieces
        pieces = [data[i : i + size] for i in range(0, len(data), size)]
        return await sse(request, pieces)

    result, _ = run(wire, list(variants), stream=True, retries=0)
    assert [r.error for r in result] == [None] * len(variants)
    assert [r.text for r in result] == ["ab", "ab", "split b", long_text, "ab", "ab"]
    assert result[4].usage == {"prompt_tokens": 4, "completion_tokens": 1}


def test_a_json_reply_to_a_stream_request_is_taken_as_it_is() -> None:
    async def ignores_stream(request: web.Request) -> web.StreamResponse:
        return web.json_response(reply("whole reply"))

    result, _ = run(ignores_stream, ["hi"], stream=True)
    assert result[0].ok and result[0].text == "whole reply" and result[0].completion_tokens == 2


@pytest.mark.parametrize("stream", [False, True])
def test_a_web_page_where_the_api_should_be_fails_at_once_and_says_so(stream: bool) -> None:
    async def web_ui(request: web.Request) -> web.StreamResponse:  # a chat UI's fallback page at a wrong base_url
        return web.Response(text="<!doctype html><html><body>My Chat UI</body></html>", content_type="text/html")

    result, seen = run(web_ui, ["hi", "there"], stream=stream, retries=2, concurrency=1)
    assert result[0].attempts == 1 and len(seen) == 1  # the route is wrong for every row: the batch stops
    assert "answered with a web page, not JSON: is base_url an OpenAI-compatible endpoint?" in result[0].error
    assert result[1].status == "not sent" and "answered with a web page" in str(result.failure)


def test_error_bodies_keep_the_servers_message() -> None:
    async def errors(request: web.Request) -> web.StreamResponse:
        kind = (await request.json())["messages"][-1]["content"]
        if kind == "200-error":
            return web.json_response({"error": {"message": "upstream failure"}})
        if kind == "401":
            return web.json_response({"error": {"message": "Incorrect API key", "code": "invalid_api_key"}}, status=401)
        if kind == "ollama":
            return web.json_response({"error": "model 'x' not found"}, status=404)
        if kind == "fastapi":
            return web.json_response({"detail": "Not authenticated"}, status=403)
        return web.Response(status=502, text="<html><body><h1>502 Bad Gateway</h1>nginx</body></html>",
                            content_type="text/html")

    rows = [run(errors, [kind], retries=0)[0][0] for kind in ("200-error", "401", "ollama", "fastapi", "gateway")]
    assert [(r.error, r.error_kind, r.status_code) for r in rows] == [
        ("the server answered 200 with an error: upstream failure", "server", None),
        ("HTTP 401 Unauthorized: invalid_api_key: Incorrect API key", "auth", 401),
        ("HTTP 404 Not Found: model 'x' not found", "not_found", 404),
        ("HTTP 403 Forbidden: Not authenticated", "permission", 403),
        ("HTTP 502 Bad Gateway: an error page from a proxy or gateway in front of the server", "server", 502),
    ]


def test_model_discovery_skips_models_that_cannot_chat() -> None:
    async def models(request: web.Request) -> web.Response:  # Ollama and LM Studio list embedding models too
        listed = ["nomic-embed-text:latest", "text-embedding-3-small", "llama3.2:1b", "qwen2.5:7b"]
        return web.json_response({"object": "list", "data": [{"id": m, "object": "model"} for m in listed]})

    async def chat(request: web.Request) -> web.Response:
        return web.json_response(reply("ok"))

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat)
    with serve_app(app) as url:
        result = nbtools.batch(["hi"], base_url=url + "/v1", cache=False)
    assert result.model == "llama3.2:1b" and result[0].ok
