"""Test servers written from the providers' Batch API references, not from nbtools' simulator.

- OpenAI (and xAI, which serves the same routes): https://platform.openai.com/docs/api-reference/files
  (``POST /v1/files`` multipart with ``purpose=batch``, ``GET /v1/files/{id}/content``) and
  https://platform.openai.com/docs/api-reference/batch (``POST /v1/batches`` with input_file_id,
  endpoint, completion_window "24h"; the Batch object; ``POST /v1/batches/{id}/cancel``); input lines
  ``{"custom_id", "method", "url", "body"}``; output/error lines ``{"id", "custom_id", "response":
  {"status_code", "request_id", "body"}, "error"}``, and ``batch_expired`` errors for lines an expired job
  never ran (https://platform.openai.com/docs/guides/batch). Limits: 50,000 requests, 200 MB per file.
- Anthropic: https://docs.claude.com/en/api/creating-message-batches (``{"requests": [{"custom_id",
  "params"}]}``; 100,000 requests / 256 MB; ``custom_id`` matches ``^[a-zA-Z0-9_-]{1,64}$``),
  retrieving-message-batches (``processing_status``, ``request_counts``, ``results_url``),
  retrieving-message-batch-results (JSONL, "not guaranteed to be in the same order as requests";
  ``result.type`` succeeded / errored / canceled / expired), https://docs.claude.com/en/api/errors (error body),
  headers ``x-api-key`` and ``anthropic-version``. The Messages API takes ``system`` as a top-level field:
  a ``system`` role inside ``messages`` is refused. A forced tool call (https://docs.claude.com/en/docs/agents-and-
  tools/tool-use/implement-tool-use: ``tool_choice`` ``{"type": "tool", "name"}``) is answered with one
  ``{"type": "tool_use", "id", "name", "input"}`` content block and ``stop_reason`` ``tool_use``.
- Requests with a JSON schema (``response_format`` json_schema, or a tool's ``input_schema``) get JSON that fits
  it, from tests/structured_servers.py.

Time is counted in polls, not seconds: a job moves one state further each time it is retrieved, so tests
wait on states, never on clocks. Results are written in reverse order, as both references allow.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.typedefs import Handler

from tests.support.helpers import serve_app
from tests.support.structured_servers import answer

FAIL = "FAIL-THIS-LINE"  # a prompt containing this fails in the provider's result file
_CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def _answer(messages: list[dict[str, Any]]) -> str:
    return "answer: " + str(messages[-1]["content"])


@contextmanager
def serving_batches(server: OpenAIBatchServer | AnthropicBatchServer, monkeypatch: pytest.MonkeyPatch,
                    *key_envs: str) -> Iterator[str]:
    """``server`` on 127.0.0.1 with its key in the environment variables ``key_envs``; yields its base URL (``.../v1``)."""
    for name in key_envs:
        monkeypatch.setenv(name, server.key)
    with serve_app(server.app()) as url:
        yield url + "/v1"


def checked_app(check: Callable[[web.Request], web.Response | None], routes: list[web.RouteDef]) -> web.Application:
    """An app of ``routes`` where a request that ``check`` refuses gets its refusal (a 401) instead of its handler,
    taking uploads as large as the providers' (300 MB)."""

    @web.middleware
    async def refuse(request: web.Request, handler: Handler) -> web.StreamResponse:
        refused = check(request)
        return refused if refused is not None else await handler(request)

    app = web.Application(client_max_size=300 * 2**20, middlewares=[refuse])
    app.add_routes(routes)
    return app


def openai_batch_routes(server: Any) -> list[web.RouteDef]:
    """OpenAI's files and batches routes, served by ``server``'s upload, content, create, list and retrieve."""
    return [web.post("/v1/files", server.upload), web.get("/v1/files/{id}/content", server.content),
            web.post("/v1/batches", server.create), web.get("/v1/batches", server.list),
            web.get("/v1/batches/{id}", server.retrieve)]


@dataclass
class OpenAIBatchServer:
    """Files + batches, as OpenAI documents them. ``expire_after_polls`` ends jobs ``expired`` half done."""

    key: str = "sk-test-openai"
    max_requests: int = 50_000
    expire: bool = False
    lose_create_answers: bool = False  # create the job, then answer 500 (an answer lost on the way)
    hang_ups: dict[str, int] = field(default_factory=dict)  # "create"/"retrieve" -> requests to hang up on first
    usage: dict[str, Any] = field(default_factory=lambda: {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10})
    uploads: int = 0
    creates: int = 0
    cancels: int = 0
    auth_failures: int = 0
    files: dict[str, bytes] = field(default_factory=dict)
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)

    def app(self) -> web.Application:
        return checked_app(self._check, [*openai_batch_routes(self), web.post("/v1/batches/{id}/cancel", self.cancel),
                                         web.post("/v1/chat/completions", self.chat)])

    def _check(self, request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") == f"Bearer {self.key}":
            return None
        self.auth_failures += 1
        return self._error(401, "Incorrect API key provided.")

    @staticmethod
    def _error(status: int, message: str, kind: str = "invalid_request_error") -> web.Response:
        return web.json_response({"error": {"message": message, "type": kind, "param": None, "code": None}}, status=status)

    async def upload(self, request: web.Request) -> web.Response:
        form = await request.post()
        file = form.get("file")
        if form.get("purpose") != "batch" or not isinstance(file, web.FileField):
            return self._error(400, "purpose must be 'batch' and file a JSONL upload")
        content = file.file.read()
        if len(content) > 200 * 2**20:
            return self._error(400, "File exceeds 200 MB")
        self.uploads += 1
        file_id = f"file-{len(self.files) + 1:04d}"
        self.files[file_id] = content
        return web.json_response({"id": file_id, "object": "file", "bytes": len(content), "created_at": 1700000000,
                                  "filename": file.filename, "purpose": "batch"})

    async def content(self, request: web.Request) -> web.Response:
        data = self.files.get(request.match_info["id"])
        return web.Response(body=data) if data is not None else self._error(404, "No such File object")

    def _hangs_up(self, request: web.Request, route: str) -> bool:
        """Close the connection without an answer (before acting), if ``hang_ups`` says so for ``route``."""
        if self.hang_ups.get(route, 0) <= 0 or request.transport is None:
            return False
        self.hang_ups[route] -= 1
        request.transport.close()
        return True

    async def create(self, request: web.Request) -> web.Response:
        if self._hangs_up(request, "create"):
            return web.Response()  # never sent: the connection is closed
        body = await request.json()
        if body.get("endpoint") != "/v1/chat/completions" or body.get("completion_window") != "24h":
            return self._error(400, "endpoint and completion_window='24h' are required")
        lines = [json.loads(line) for line in self.files.get(body.get("input_file_id"), b"").splitlines()]
        errors = []
        if len(lines) > self.max_requests:
            errors.append({"code": "batch_too_large", "message": f"at most {self.max_requests} requests", "line": None})
        ids = [line["custom_id"] for line in lines]
        if len(set(ids)) != len(ids):
            errors.append({"code": "duplicate_custom_id", "message": "custom_id must be unique", "line": None})
        if any(line.get("method") != "POST" or line.get("url") != "/v1/chat/completions" for line in lines):
            errors.append({"code": "invalid_line", "message": "method POST and url /v1/chat/completions", "line": None})
        self.creates += 1
        batch_id = f"batch_{self.creates:04d}"
        self.batches[batch_id] = {
            "id": batch_id, "object": "batch", "endpoint": "/v1/chat/completions", "errors": None,
            "input_file_id": body["input_file_id"], "completion_window": "24h", "status": "validating",
            "output_file_id": None, "error_file_id": None, "created_at": 1700000000, "metadata": body.get("metadata"),
            "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
            "_lines": lines, "_errors": errors,
        }
        if self.lose_create_answers:
            return self._error(500, "The server had an error while processing your request.", "server_error")
        return web.json_response(self._public(self.batches[batch_id]))

    @staticmethod
    def _public(batch: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in batch.items() if not k.startswith("_")}

    async def list(self, request: web.Request) -> web.Response:
        """``GET /v1/batches?limit=N``: a cursor page, newest first."""
        limit = int(request.query.get("limit", "20"))
        data = [self._public(b) for b in reversed(list(self.batches.values()))][:limit]
        return web.json_response({"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
                                  "last_id": data[-1]["id"] if data else None, "has_more": len(self.batches) > limit})

    async def retrieve(self, request: web.Request) -> web.Response:
        if self._hangs_up(request, "retrieve"):
            return web.Response()  # never sent: the connection is closed
        batch = self.batches.get(request.match_info["id"])
        if batch is None:
            return self._error(404, "No batch found")
        self._advance(batch)
        return web.json_response(self._public(batch))

    async def cancel(self, request: web.Request) -> web.Response:
        batch = self.batches.get(request.match_info["id"])
        if batch is None:
            return self._error(404, "No batch found")
        self.cancels += 1
        if batch["status"] in ("validating", "in_progress", "finalizing"):
            batch["status"] = "cancelling"
        return web.json_response(self._public(batch))

    def _advance(self, batch: dict[str, Any]) -> None:
        status = batch["status"]
        if status == "validating":
            if batch["_errors"]:
                batch["status"], batch["errors"] = "failed", {"object": "list", "data": batch["_errors"]}
            else:
                batch["status"] = "in_progress"
        elif status == "in_progress":
            batch["status"] = "expired" if self.expire else "finalizing"
            if self.expire:
                self._write(batch, len(batch["_lines"]) // 2, "batch_expired")
        elif status == "finalizing":
            batch["status"] = "completed"
            self._write(batch, len(batch["_lines"]), None)
        elif status == "cancelling":
            batch["status"] = "cancelled"
            self._write(batch, 0, "batch_cancelled")

    def _write(self, batch: dict[str, Any], ran: int, not_run_code: str | None) -> None:
        out, err = [], []
        for i, line in enumerate(batch["_lines"]):
            rid = f"batch_req_{batch['id']}_{i}"
            if i >= ran:
                err.append({"id": rid, "custom_id": line["custom_id"], "response": None,
                            "error": {"code": not_run_code,
                                      "message": "This request could not be executed before the batch ended."}})
            elif FAIL in json.dumps(line["body"]["messages"]):
                err.append({"id": rid, "custom_id": line["custom_id"], "error": None, "response": {
                    "status_code": 400, "request_id": f"req_{i}",
                    "body": {"error": {"message": "Invalid 'messages': refused by the test server.",
                                       "type": "invalid_request_error", "param": "messages", "code": None}}}})
            else:
                out.append({"id": rid, "custom_id": line["custom_id"], "error": None, "response": {
                    "status_code": 200, "request_id": f"req_{i}", "body": _chat_body(line["body"], i, self.usage)}})
        batch["request_counts"]["completed"] = len(out)
        batch["request_counts"]["failed"] = sum(1 for e in err if e["response"] is not None)
        for kind, records in (("output", out), ("error", err)):
            if records:
                file_id = f"file-{kind}-{batch['id']}"
                self.files[file_id] = "".join(json.dumps(r) + "\n" for r in reversed(records)).encode()
                batch[f"{kind}_file_id"] = file_id

    async def chat(self, request: web.Request) -> web.Response:
        return web.json_response(_chat_body(await request.json(), 0, self.usage))


def _system_text(system: Any) -> str:
    """The Messages API's ``system``: a string, or a list of text blocks (docs.claude.com/en/api/messages)."""
    if isinstance(system, list):
        return "".join(str(block.get("text", "")) for block in system if isinstance(block, dict))
    return str(system or "")


def _chat_body(body: dict[str, Any], i: int, usage: dict[str, Any]) -> dict[str, Any]:
    """A chat.completion; a cached prompt shows in ``usage.prompt_tokens_details.cached_tokens`` (openai-python
    ``src/openai/types/completion_usage.py``), the batch output's ``response.body`` being that same object."""
    schema = (body.get("response_format") or {}).get("json_schema", {}).get("schema")  # structured output: JSON
    content = answer(schema, str(body["messages"][-1]["content"])) if schema else _answer(body["messages"])
    return {"id": f"chatcmpl-{i}", "object": "chat.completion", "created": 1700000000, "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": "stop"}],
            "usage": usage}


@dataclass
class AnthropicBatchServer:
    """Message Batches, as Anthropic documents them."""

    key: str = "sk-ant-test"
    max_requests: int = 100_000
    # The Messages API usage; a prompt-cache hit adds cache_read_input_tokens (and cache_creation_input_tokens),
    # which input_tokens leaves out (https://docs.claude.com/en/docs/build-with-claude/prompt-caching).
    usage: dict[str, Any] = field(default_factory=lambda: {"input_tokens": 11, "output_tokens": 5})
    creates: int = 0
    header_failures: int = 0
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)

    def app(self) -> web.Application:
        return checked_app(self._check, [web.post("/v1/messages/batches", self.create),
                                         web.get("/v1/messages/batches/{id}", self.retrieve),
                                         web.get("/v1/messages/batches/{id}/results", self.results)])

    def _check(self, request: web.Request) -> web.Response | None:
        if request.headers.get("x-api-key") != self.key or not request.headers.get("anthropic-version"):
            self.header_failures += 1
            return self._error(401, "authentication_error", "invalid x-api-key or missing anthropic-version")
        return None

    @staticmethod
    def _error(status: int, kind: str, message: str) -> web.Response:
        return web.json_response({"type": "error", "error": {"type": kind, "message": message}}, status=status)

    async def create(self, request: web.Request) -> web.Response:
        requests = (await request.json())["requests"]
        if len(requests) > self.max_requests:
            return self._error(400, "invalid_request_error", f"requests: at most {self.max_requests}")
        ids = [r["custom_id"] for r in requests]
        if len(set(ids)) != len(ids) or not all(_CUSTOM_ID.match(i) for i in ids):
            return self._error(400, "invalid_request_error", "custom_id must be unique and match ^[a-zA-Z0-9_-]{1,64}$")
        for r in requests:
            params = r["params"]
            if "max_tokens" not in params or "model" not in params:
                return self._error(400, "invalid_request_error", "params: model and max_tokens are required")
            if any(m.get("role") not in ("user", "assistant") for m in params["messages"]):
                return self._error(400, "invalid_request_error",
                                   "messages: roles must be user or assistant (system goes in 'system')")
        self.creates += 1
        batch_id = f"msgbatch_{self.creates:04d}"
        self.batches[batch_id] = {"_requests": requests, "_polls": 0, "id": batch_id}
        return web.json_response(self._view(batch_id, request))

    def _view(self, batch_id: str, request: web.Request) -> dict[str, Any]:
        batch = self.batches[batch_id]
        n = len(batch["_requests"])
        ended = batch["_polls"] >= 2
        failed = sum(1 for r in batch["_requests"] if FAIL in json.dumps(r["params"]["messages"]))
        counts = ({"processing": 0, "succeeded": n - failed, "errored": failed, "canceled": 0, "expired": 0} if ended
                  else {"processing": n, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0})
        return {"id": batch_id, "type": "message_batch", "processing_status": "ended" if ended else "in_progress",
                "request_counts": counts, "ended_at": "2024-08-20T18:37:24.100435Z" if ended else None,
                "created_at": "2024-08-20T18:37:24.100435Z", "expires_at": "2024-08-21T18:37:24.100435Z",
                "archived_at": None, "cancel_initiated_at": None,
                "results_url": f"http://{request.host}/v1/messages/batches/{batch_id}/results" if ended else None}

    async def retrieve(self, request: web.Request) -> web.Response:
        batch_id = request.match_info["id"]
        if batch_id not in self.batches:
            return self._error(404, "not_found_error", "batch not found")
        self.batches[batch_id]["_polls"] += 1
        return web.json_response(self._view(batch_id, request))

    def _usage(self, system: Any, cached: set[str]) -> dict[str, Any]:
        """``usage``; a system block marked ``cache_control`` is written to the cache by the first line that sends
        it (``cache_creation_input_tokens``, a word a token) and read by the lines after it (``cache_read_input_tokens``)."""
        marked = [b["text"] for b in system or () if isinstance(b, dict) and b.get("cache_control")]
        if not marked or isinstance(system, str):
            return self.usage
        words = sum(len(text.split()) for text in marked)
        key = "cache_read_input_tokens" if marked[0] in cached else "cache_creation_input_tokens"
        cached.add(marked[0])
        return {**self.usage, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, key: words}

    async def results(self, request: web.Request) -> web.Response:
        batch = self.batches[request.match_info["id"]]
        cached: set[str] = set()  # the cached system texts: read once written
        lines = []
        for r in reversed(batch["_requests"]):
            params = r["params"]
            if FAIL in json.dumps(params["messages"]):
                result: dict[str, Any] = {"type": "errored", "error": {"type": "error", "error": {
                    "type": "invalid_request_error", "message": "refused by the test server"}}}
            elif params.get("tool_choice", {}).get("type") == "tool":  # a forced tool call: its input is the answer
                tool = next(t for t in params["tools"] if t["name"] == params["tool_choice"]["name"])
                value = json.loads(answer(tool["input_schema"], str(params["messages"][-1]["content"])))
                result = {"type": "succeeded", "message": {
                    "id": "msg_test", "type": "message", "role": "assistant", "model": params["model"],
                    "content": [{"type": "tool_use", "id": "toolu_test", "name": tool["name"], "input": value}],
                    "stop_reason": "tool_use", "stop_sequence": None, "usage": {"input_tokens": 11, "output_tokens": 5}}}
            else:
                system = _system_text(params.get("system"))
                text = _answer(params["messages"]) + (f" [system: {system}]" if system else "")
                result = {"type": "succeeded", "message": {
                    "id": "msg_test", "type": "message", "role": "assistant", "model": params["model"],
                    "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None,
                    "usage": self._usage(params.get("system"), cached)}}
            lines.append(json.dumps({"custom_id": r["custom_id"], "result": result}) + "\n")
        return web.Response(body="".join(lines).encode(), content_type="application/binary")
