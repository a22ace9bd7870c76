"""A test server written from OpenAI's API reference, not from nbtools' simulator: chat completions and the
Responses API side by side, plain and streamed, and the files + batches routes for both.

- Chat completions: platform.openai.com/docs/api-reference/chat/object (``chat.completion``; usage with
  ``prompt_tokens_details.cached_tokens`` and ``completion_tokens_details.reasoning_tokens``) and
  /chat/streaming (``chat.completion.chunk``, ``stream_options.include_usage``: a last chunk with empty
  choices and the usage, then ``data: [DONE]``).
- Responses: /docs/api-reference/responses/create (``input``: a string or a list of messages whose content is
  a string or ``input_text`` parts; ``instructions``; ``max_output_tokens``; ``store``), /responses/object
  (``status`` completed or incomplete with ``incomplete_details.reason`` "max_output_tokens"; ``output`` items
  of type ``reasoning`` and ``message`` with ``output_text`` parts; ``usage.input_tokens``,
  ``input_tokens_details.cached_tokens``, ``output_tokens``, ``output_tokens_details.reasoning_tokens``) and
  /responses-streaming (``event:`` lines named like the ``type`` of their data: response.created,
  response.output_item.added, response.content_part.added, response.output_text.delta, response.output_text.done,
  response.content_part.done, response.output_item.done, response.completed / response.incomplete; no [DONE]).
- Batch: /docs/api-reference/batch (``endpoint`` "/v1/chat/completions" or "/v1/responses", each line's
  ``url`` the same); output lines ``{"id", "custom_id", "response": {"status_code", "request_id", "body"}}``.
- A model that speaks only the Responses API answers chat with the 404 quoted in
  github.com/n8n-io/n8n/issues/18352: "This model is only supported in v1/responses and not in v1/chat/completions."

Replies are deterministic: "answer: <the last user text>", one token per word, cut to the reply bound.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.support.batch_servers import openai_batch_routes

ONLY_RESPONSES_MODEL = "o-pro-test"
REASONING = 3  # reasoning tokens every reply reports, inside its output tokens
FAIL = "TOO-LONG"  # a prompt holding this is refused as longer than the context, on either endpoint
_TOO_LONG = {"error": {"message": "This model's maximum context length is 8192 tokens. However, your messages "
                                  "resulted in 8227 tokens. Please reduce the length of the messages.",
                       "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}


def _text(content: Any) -> str:
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content)


@dataclass
class Turn:
    """One request, read from either format."""

    system: str
    messages: list[tuple[str, str]]
    bound: int | None

    @property
    def answer_words(self) -> list[str]:
        last = next(text for role, text in reversed(self.messages) if role == "user")
        words = ["answer:", *last.split()]
        return words[: self.bound] if self.bound is not None else words

    @property
    def cut(self) -> bool:
        last = next(text for role, text in reversed(self.messages) if role == "user")
        return self.bound is not None and self.bound < 1 + len(last.split())

    @property
    def input_tokens(self) -> int:
        return len(self.system.split()) + sum(len(text.split()) for _, text in self.messages)


def _chat_turn(body: dict[str, Any]) -> Turn:
    system = " ".join(_text(m["content"]) for m in body["messages"] if m["role"] == "system")
    messages = [(m["role"], _text(m["content"])) for m in body["messages"] if m["role"] != "system"]
    return Turn(system, messages, body.get("max_completion_tokens", body.get("max_tokens")))


def _responses_turn(body: dict[str, Any]) -> Turn:
    raw = body["input"]
    messages = [("user", raw)] if isinstance(raw, str) else [(m["role"], _text(m["content"])) for m in raw]
    return Turn(str(body.get("instructions") or ""), messages, body.get("max_output_tokens"))


def _words(turn: Turn) -> list[str]:
    """The reply's tokens: words, with the space before each but the first."""
    words = turn.answer_words
    return [w if i == 0 else " " + w for i, w in enumerate(words)]


def chat_completion(body: dict[str, Any], n: int) -> dict[str, Any]:
    turn = _chat_turn(body)
    output = len(turn.answer_words) + REASONING
    return {"id": f"chatcmpl-{n}", "object": "chat.completion", "created": 1767225600, "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(_words(turn)), "refusal": None},
                         "logprobs": None, "finish_reason": "length" if turn.cut else "stop"}],
            "usage": {"prompt_tokens": turn.input_tokens, "completion_tokens": output,
                      "total_tokens": turn.input_tokens + output,
                      "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                      "completion_tokens_details": {"reasoning_tokens": REASONING, "audio_tokens": 0}}}


def response_object(body: dict[str, Any], n: int, *, final: bool = True) -> dict[str, Any]:
    turn = _responses_turn(body)
    output = len(turn.answer_words) + REASONING
    status = "incomplete" if turn.cut else "completed"
    return {
        "id": f"resp_{n}", "object": "response", "created_at": 1767225600, "status": status if final else "in_progress",
        "error": None, "incomplete_details": {"reason": "max_output_tokens"} if turn.cut and final else None,
        "instructions": body.get("instructions"), "max_output_tokens": body.get("max_output_tokens"),
        "model": body["model"], "parallel_tool_calls": True, "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0), "text": {"format": {"type": "text"}}, "tool_choice": "auto",
        "tools": [], "top_p": 1.0, "truncation": "disabled", "metadata": {},
        "output": [] if not final else [
            {"type": "reasoning", "id": f"rs_{n}", "summary": []},
            {"type": "message", "id": f"msg_{n}", "status": status, "role": "assistant",
             "content": [{"type": "output_text", "text": "".join(_words(turn)), "annotations": []}]}],
        "usage": None if not final else {
            "input_tokens": turn.input_tokens, "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output, "output_tokens_details": {"reasoning_tokens": REASONING},
            "total_tokens": turn.input_tokens + output},
    }


@dataclass
class ResponsesServer:
    """Counts what arrives on each route and keeps every body."""

    calls: dict[str, int] = field(default_factory=lambda: {"chat": 0, "responses": 0})
    bodies: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {"chat": [], "responses": []})
    files: dict[str, bytes] = field(default_factory=dict)
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)

    def app(self) -> web.Application:
        app = web.Application()
        app.add_routes([web.post("/v1/chat/completions", self.chat), web.post("/v1/responses", self.responses),
                        *openai_batch_routes(self)])
        return app

    # -- the two request formats ---------------------------------------------------------------------
    def _answer(self, route: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.calls[route] += 1
        self.bodies[route].append(body)
        n = self.calls["chat"] + self.calls["responses"]
        if route == "chat" and body["model"] == ONLY_RESPONSES_MODEL:
            return 404, {"error": {"message": "This model is only supported in v1/responses and not in "
                                              "v1/chat/completions.", "type": "invalid_request_error",
                                   "param": "model", "code": None}}
        last = body["messages"][-1]["content"] if route == "chat" else _responses_turn(body).messages[-1][1]
        if FAIL in str(last):
            return 400, _TOO_LONG
        return 200, chat_completion(body, n) if route == "chat" else response_object(body, n)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        status, reply = self._answer("chat", body)
        if status != 200 or not body.get("stream"):
            return web.json_response(reply, status=status)
        words = _words(_chat_turn(body))
        head = {"id": reply["id"], "object": "chat.completion.chunk", "created": reply["created"], "model": reply["model"]}
        events = [{**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}]
        events += [{**head, "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": None}]} for w in words]
        events.append({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": reply["choices"][0]["finish_reason"]}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append({**head, "choices": [], "usage": reply["usage"]})
        return await self._sse(request, "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n")

    async def responses(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        status, reply = self._answer("responses", body)
        if status != 200 or not body.get("stream"):
            return web.json_response(reply, status=status)
        n = int(reply["id"].removeprefix("resp_"))
        start = response_object(body, n, final=False)
        item = {"type": "message", "id": f"msg_{n}", "status": "in_progress", "role": "assistant", "content": []}
        message = reply["output"][1]
        text = message["content"][0]["text"]
        typed = [("response.created", {"response": start}), ("response.in_progress", {"response": start}),
                 ("response.output_item.added", {"output_index": 0, "item": reply["output"][0]}),
                 ("response.output_item.done", {"output_index": 0, "item": reply["output"][0]}),
                 ("response.output_item.added", {"output_index": 1, "item": item}),
                 ("response.content_part.added", {"item_id": item["id"], "output_index": 1, "content_index": 0,
                                                  "part": {"type": "output_text", "text": "", "annotations": []}})]
        typed += [("response.output_text.delta", {"item_id": item["id"], "output_index": 1, "content_index": 0,
                                                  "delta": w}) for w in _words(_responses_turn(body))]
        typed += [("response.output_text.done", {"item_id": item["id"], "output_index": 1, "content_index": 0,
                                                 "text": text}),
                  ("response.content_part.done", {"item_id": item["id"], "output_index": 1, "content_index": 0,
                                                  "part": message["content"][0]}),
                  ("response.output_item.done", {"output_index": 1, "item": message}),
                  ("response.incomplete" if reply["status"] == "incomplete" else "response.completed", {"response": reply})]
        sse = "".join(f"event: {kind}\ndata: {json.dumps({'type': kind, 'sequence_number': i, **data})}\n\n"
                      for i, (kind, data) in enumerate(typed))
        return await self._sse(request, sse)

    @staticmethod
    async def _sse(request: web.Request, text: str) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
        await response.prepare(request)
        for line in text.split("\n\n")[:-1]:  # one event per write, as a server streaming them would
            await response.write((line + "\n\n").encode())
        await response.write_eof()
        return response

    # -- files + batches: jobs finish on their first retrieve -------------------------------------------
    async def upload(self, request: web.Request) -> web.Response:
        form = await request.post()
        upload = form["file"]
        file_id = f"file-{len(self.files) + 1:04d}"
        self.files[file_id] = upload.file.read()  # type: ignore[union-attr]
        return web.json_response({"id": file_id, "object": "file", "bytes": len(self.files[file_id]),
                                  "created_at": 1767225600, "filename": "batch.jsonl", "purpose": "batch"})

    async def content(self, request: web.Request) -> web.Response:
        return web.Response(body=self.files[request.match_info["id"]], content_type="application/jsonl")

    async def create(self, request: web.Request) -> web.Response:
        ask = await request.json()
        endpoint = ask.get("endpoint")
        lines = [json.loads(line) for line in self.files[ask["input_file_id"]].splitlines() if line.strip()]
        if endpoint not in ("/v1/chat/completions", "/v1/responses") or any(line["url"] != endpoint for line in lines):
            return web.json_response({"error": {"message": "every line's url must be the batch's endpoint",
                                                "type": "invalid_request_error", "param": "endpoint", "code": None}},
                                     status=400)
        batch_id = f"batch_{len(self.batches) + 1}"
        self.batches[batch_id] = {"id": batch_id, "object": "batch", "endpoint": endpoint, "errors": None,
                                  "input_file_id": ask["input_file_id"], "completion_window": "24h",
                                  "status": "validating", "output_file_id": None, "error_file_id": None,
                                  "created_at": 1767225600, "metadata": ask.get("metadata") or {},
                                  "request_counts": {"total": len(lines), "completed": 0, "failed": 0}}
        return web.json_response(self.batches[batch_id])

    async def list(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": list(self.batches.values()), "has_more": False})

    async def retrieve(self, request: web.Request) -> web.Response:
        batch = self.batches[request.match_info["id"]]
        if batch["status"] == "validating":
            route = "responses" if batch["endpoint"] == "/v1/responses" else "chat"
            out = []
            for line in (json.loads(raw) for raw in self.files[batch["input_file_id"]].splitlines() if raw.strip()):
                status, reply = self._answer(route, line["body"])
                out.append(json.dumps({"id": f"batch_req_{line['custom_id']}", "custom_id": line["custom_id"],
                                       "response": {"status_code": status, "request_id": "req_1", "body": reply},
                                       "error": None}))
            file_id = f"{batch['id']}-output"
            self.files[file_id] = ("\n".join(out) + "\n").encode()
            batch.update(status="completed", output_file_id=file_id,
                         request_counts={"total": len(out), "completed": len(out), "failed": 0})
        return web.json_response(batch)
