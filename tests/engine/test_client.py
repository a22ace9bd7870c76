"""The HTTP client's streams against a server that answers with llama.cpp's own stream bytes
(tests/support/provider_errors.py): a cut reply is never "ok", it is retried, and what arrived of it is kept."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

import nbtools
from nbtools._engine.rows import RequestResult
from nbtools._result import BatchResult
from tests.support.helpers import serve_app, shown_html
from tests.support.provider_errors import LLAMA_CPP_COMPLETE_STREAM, LLAMA_CPP_CUT_STREAM

# -- a server that ends streams the way llama.cpp's does ---------------------------------------------
# The cut stream (role chunk, then [DONE], no finish_reason) and the complete one come from
# tests/support/provider_errors.py. The same chunks stopped after the content ("Hello", "!") but before the final
# chunk that carries finish_reason make a cut that did deliver text.
_EVENTS = LLAMA_CPP_COMPLETE_STREAM.split(b"\n\n")
CUT_AFTER_TEXT = b"\n\n".join(_EVENTS[:3]) + b"\n\ndata: [DONE]\n\n"
MODEL = "Llama-3.2-1B-Instruct-Q4_K_M.gguf"


def _llama_models() -> dict[str, Any]:
    # GET /v1/models as llama.cpp's server answers it (ggml-org/llama.cpp tools/server/README.md, "GET /v1/models").
    return {"object": "list", "data": [{"id": MODEL, "object": "model", "created": 1735142223, "owned_by": "llamacpp",
                                        "meta": {"vocab_type": 2, "n_vocab": 128256, "n_ctx_train": 131072}}]}


@pytest.fixture
def llama() -> Iterator[tuple[str, dict[str, int]]]:
    """(base_url, arrivals by prompt). Each prompt's first arrival gets the cut stream, later ones the whole
    reply; a prompt containing "always" is cut every time ("text" in it: cut after the text arrived)."""
    arrivals: dict[str, int] = {}

    async def models(request: web.Request) -> web.Response:
        return web.json_response(_llama_models())

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        prompt = body["messages"][-1]["content"]
        arrivals[prompt] = arrivals.get(prompt, 0) + 1
        if "always" in prompt:
            payload = CUT_AFTER_TEXT if "text" in prompt else LLAMA_CPP_CUT_STREAM
        else:
            payload = LLAMA_CPP_CUT_STREAM if arrivals[prompt] == 1 else LLAMA_CPP_COMPLETE_STREAM
        # llama.cpp streams as text/event-stream (tools/server/server.cpp, the chunked content provider).
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(payload)
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat)
    with serve_app(app) as url:
        yield url + "/v1", arrivals


def _never_ok_and_empty(result: BatchResult) -> None:
    for row in result:
        assert not (row.ok and not row.text), row


def test_a_cut_stream_is_retried_and_the_retry_is_the_reply(llama: tuple[str, dict[str, int]]) -> None:
    url, arrivals = llama
    prompts = [f"question {i}" for i in range(6)]
    result = nbtools.batch(prompts, base_url=url, stream=True, concurrency=3, retries=2, cache=False)
    assert [r.status for r in result] == ["ok"] * 6
    assert [r.attempts for r in result] == [2] * 6 and arrivals == {p: 2 for p in prompts}
    assert all(r.text == "Hello!" and r.finish_reason == "stop" and r.error_kind is None and r.partial is None
               for r in result)
    s = result.summary()
    assert (s.ok, s.errors, s.retries, s.error_kinds) == (6, 0, 6, {})
    _never_ok_and_empty(result)


def test_a_stream_cut_every_time_is_an_error_of_kind_cut_with_what_arrived_kept(llama: tuple[str, dict[str, int]]) -> None:
    url, arrivals = llama
    prompts = ["fine", "always cut", "always cut after text"]
    result = nbtools.batch(prompts, base_url=url, stream=True, concurrency=3, retries=1, cache=False)
    fine, bare, texty = result
    assert fine.ok and fine.text == "Hello!" and fine.attempts == 2
    for row in (bare, texty):
        assert row.status == "error" and row.error_kind == "cut" and row.attempts == 2 and row.text is None
        assert "cut off" in row.error and "after 2 attempts" in row.error
        assert row.finish_reason is None
    assert arrivals["always cut"] == 2 and arrivals["always cut after text"] == 2
    assert bare.partial == "" and texty.partial == "Hello!"  # what arrived stays on the row, for inspection
    s = result.summary()
    assert (s.ok, s.errors, s.error_kinds) == (1, 2, {"cut": 2})
    assert "2 errors" in str(s) and "cut 2" in str(s)
    table = repr(result)
    assert table.count("error: cut") == 2 and "| ok" in table
    assert "error: cut" in shown_html(result)
    _never_ok_and_empty(result)


def test_the_header_names_the_model_the_server_listed(llama: tuple[str, dict[str, int]]) -> None:
    url, _ = llama
    seen: list[str] = []

    def watch(row: RequestResult) -> None:  # while the batch runs: the live header
        live = result.live_view()
        seen.append(live.header_text() + live.header_html(None))

    async def run() -> BatchResult:
        nonlocal result
        result = nbtools.start(["a", "b"], base_url=url, stream=True, on_result=watch, cache=False)
        return await result

    result: Any = None
    asyncio.run(run())
    assert result.model == MODEL and len(seen) == 2
    assert all(MODEL in shown and "not known" not in shown for shown in seen)
