"""What answered, kept: the served model id, system_fingerprint and request ids on every row, through streams,
the reply cache and the Batch API; the run manifest (no key in it) and the diff of two runs."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from itertools import count

import pytest
from aiohttp import web

import nbtools
from nbtools._manifest import Manifest
from tests.engine.test_batch_api import FAST, anthropic_server, openai_server  # noqa: F401  (fixtures)
from tests.support.helpers import serve_app

KEY = "sk-test-not-a-real-key-0123456789"
DATED = "gpt-4o-mini-2024-07-18"  # what OpenAI answers for the alias gpt-4o-mini
FINGERPRINT = "fp_44709d6fcb"


class RecordingServer:
    """Chat completions as OpenAI answers them: a dated model id, a system_fingerprint, the request id in the
    ``x-request-id`` header (platform.openai.com/docs/api-reference/debugging-requests) and ``chatcmpl-`` ids."""

    def __init__(self) -> None:
        self.numbers = count(1)
        self.sent = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat)
        return app

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        n = next(self.numbers)
        self.sent += 1
        headers = {"x-request-id": f"req_{n:04d}"}
        text = str(body["messages"][-1]["content"]).upper()
        usage = {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9,
                 "prompt_tokens_details": {"cached_tokens": 0}}
        if not body.get("stream"):
            return web.json_response({
                "id": f"chatcmpl-{n}", "object": "chat.completion", "created": 1700000000, "model": DATED,
                "system_fingerprint": FINGERPRINT, "usage": usage,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]},
                headers=headers)
        response = web.StreamResponse(headers={**headers, "Content-Type": "text/event-stream"})
        await response.prepare(request)
        base = {"id": f"chatcmpl-{n}", "object": "chat.completion.chunk", "created": 1700000000, "model": DATED,
                "system_fingerprint": FINGERPRINT}
        for chunk in ({**base, "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]},
                      {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
                      {**base, "choices": [], "usage": usage}):
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        return response


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[RecordingServer, str]]:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    recording = RecordingServer()
    with serve_app(recording.app()) as url:
        yield recording, url + "/v1"


def run(url: str, **options) -> nbtools.BatchResult:
    return nbtools.batch([f"prompt {i}" for i in range(6)], provider="openai", base_url=url, model="gpt-4o-mini",
                         **{"cache": False, **options})


@pytest.mark.parametrize("stream", [False, True])
def test_each_row_keeps_the_served_model_fingerprint_and_request_id(server, stream, tmp_path) -> None:
    _, url = server
    result = run(url, stream=stream)
    assert [r.served_model for r in result] == [DATED] * 6 and {r.system_fingerprint for r in result} == {FINGERPRINT}
    ids = [r.request_id for r in result]
    assert len(set(ids)) == 6 and all(i.startswith("req_") for i in ids)  # the header, not the body's chatcmpl- id
    frame = result.to_pandas()
    assert list(frame["request_id"]) == ids and set(frame["served_model"]) == {DATED}
    result.to_jsonl(tmp_path / "rows.jsonl")
    lines = [json.loads(line) for line in (tmp_path / "rows.jsonl").read_text().splitlines()]
    assert [line["request_id"] for line in lines] == ids and lines[0]["system_fingerprint"] == FINGERPRINT


def test_the_reply_cache_keeps_what_answered(server) -> None:
    recording, url = server
    first = run(url, cache=True)
    again = run(url, cache=True)
    assert recording.sent == 6 and all(r.cached for r in again)
    assert [r.request_id for r in again] == [r.request_id for r in first]
    assert {(r.served_model, r.system_fingerprint) for r in again} == {(DATED, FINGERPRINT)}


def test_the_manifest_lists_what_answered_and_never_the_key(server, tmp_path) -> None:
    _, url = server
    result = run(url, temperature=0.2, system="Be brief.")
    manifest = result.manifest()
    assert manifest["model"] == "gpt-4o-mini" and manifest["served_models"] == [DATED]
    assert manifest["system_fingerprints"] == [FINGERPRINT]
    assert manifest["request_ids"] == [r.request_id for r in result]
    assert manifest["provider"] == "openai" and manifest["base_url"] == url and manifest["options"]["temperature"] == 0.2
    assert manifest["hashes"]["system"] is not None and manifest["concurrency"]["peak"] >= 1
    assert manifest["totals"]["rows"] == 6 and manifest["ended"] is not None
    path = result.save_manifest(tmp_path / "run.json")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert KEY not in path.read_text() and KEY not in json.dumps(manifest)
    assert Manifest.load(path) == json.loads(json.dumps(manifest))

    warmer = run(url, temperature=0.7, system="Be brief.")
    changed = warmer.manifest().diff(path)  # against the saved file
    assert changed == {"options.temperature": (0.7, 0.2)}
    assert "hashes.system" in warmer.manifest().diff(run(url, temperature=0.7).manifest())


def test_batch_api_rows_keep_the_line_request_ids(openai_server) -> None:  # noqa: F811
    result = nbtools.batch(["a", "b", "c"], via="batch", provider="openai", base_url=openai_server.url,
                           model="gpt-4o-mini", **FAST)
    assert sorted(r.request_id for r in result) == ["req_0", "req_1", "req_2"]


def test_anthropic_batch_rows_keep_the_message_id(anthropic_server) -> None:  # noqa: F811
    result = nbtools.batch(["a", "b"], via="batch", provider="anthropic", base_url=anthropic_server.url,
                           model="claude-haiku-4-5", **FAST)
    assert [r.request_id for r in result] == ["msg_test", "msg_test"]
    assert result.manifest()["served_models"] == ["claude-haiku-4-5"]


def test_a_several_model_manifest_has_each_endpoints_record_and_no_key_given_in_an_item() -> None:
    secret = "sk-item-secret-0123456789"
    items = ["sim:sim-mini", {"provider": "sim", "model": "sim-pro", "api_key": secret, "label": "pro"}]
    result = nbtools.batch(["a", "b"], models=items)
    manifest = result.manifest()
    assert set(manifest["by_model"]) == {"sim:sim-mini", "pro"} and secret not in json.dumps(manifest)
    assert manifest["by_model"]["pro"]["served_models"] == ["sim-pro"]
    other = nbtools.batch(["a", "b"], models=["sim:sim-mini", "sim:sim-standard"])
    changed = manifest.diff(other.manifest())
    assert changed["by_model.pro"] == (True, False) and "by_model.sim:sim-mini.request_ids" not in changed
