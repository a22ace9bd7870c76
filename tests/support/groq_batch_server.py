"""Groq's Batch API as its own cookbook shows it (github.com/groq/groq-api-cookbook,
tutorials/batch-processing/README.md, linking console.groq.com/docs/batch), not from nbtools' simulator:

- ``POST /openai/v1/files``, multipart with ``purpose=batch`` and the JSONL ``file``; answers the file's ``id``
  (ids such as ``file_01jpthgx92e3ts09bma0bfchmt``);
- ``POST /openai/v1/batches`` with ``input_file_id``, ``endpoint`` "/v1/chat/completions" and
  ``completion_window`` "24h"; answers the batch (``batch_01jp...``);
- ``GET /openai/v1/batches/{id}``: ``status`` validating, then in_progress, then completed with ``output_file_id``
  (the cookbook's example run shows exactly those three, one per poll here);
- ``GET /openai/v1/files/{id}/content``: output lines ``{"id": "batch_req_out_...", "custom_id", "response":
  {"status_code": 200, "request_id", "body": <chat.completion with Groq's usage timings and x_groq>},
  "error": null}``, as in the cookbook's example output.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

PREFIX = "/openai/v1"


@dataclass
class GroqBatchServer:
    key: str
    files: dict[str, bytes] = field(default_factory=dict)
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)
    bodies: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(f"{PREFIX}/files", self.upload)
        app.router.add_get(PREFIX + "/files/{id}/content", self.content)
        app.router.add_post(f"{PREFIX}/batches", self.create)
        app.router.add_get(PREFIX + "/batches/{id}", self.retrieve)
        return app

    def _refused(self, request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") != f"Bearer {self.key}":
            return web.json_response({"error": {"message": "Invalid API Key", "type": "invalid_request_error",
                                                "code": "invalid_api_key"}}, status=401)
        return None

    async def upload(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        form = await request.post()
        if form.get("purpose") != "batch":
            return web.json_response({"error": {"message": "purpose must be batch", "type": "invalid_request_error"}},
                                     status=400)
        file_id = f"file_01jp{len(self.files):022d}"
        self.files[file_id] = form["file"].file.read()  # type: ignore[union-attr]
        return web.json_response({"id": file_id, "object": "file", "bytes": len(self.files[file_id]),
                                  "created_at": 1742425200, "filename": "batch_file.jsonl", "purpose": "batch"})

    async def content(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        return web.Response(body=self.files[request.match_info["id"]], content_type="application/octet-stream")

    async def create(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        ask = await request.json()
        if ask.get("endpoint") != "/v1/chat/completions" or ask.get("completion_window") != "24h":
            return web.json_response({"error": {"message": "endpoint and completion_window are required",
                                                "type": "invalid_request_error"}}, status=400)
        batch_id = f"batch_01jp{len(self.batches):022d}"
        lines = [json.loads(raw) for raw in self.files[ask["input_file_id"]].splitlines() if raw.strip()]
        self.batches[batch_id] = {"id": batch_id, "object": "batch", "endpoint": ask["endpoint"], "errors": None,
                                  "input_file_id": ask["input_file_id"], "completion_window": "24h",
                                  "status": "validating", "output_file_id": None, "error_file_id": None,
                                  "created_at": 1742425200, "metadata": ask.get("metadata"),
                                  "request_counts": {"total": len(lines), "completed": 0, "failed": 0}}
        return web.json_response(self.batches[batch_id])

    async def retrieve(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        batch = self.batches[request.match_info["id"]]
        if batch["status"] == "validating":
            batch["status"] = "in_progress"
        elif batch["status"] == "in_progress":
            out = [self._answer(json.loads(raw)) for raw in self.files[batch["input_file_id"]].splitlines() if raw.strip()]
            file_id = f"file_01jq{len(self.files):022d}"
            self.files[file_id] = "".join(out).encode()
            batch.update(status="completed", output_file_id=file_id,
                         request_counts={"total": len(out), "completed": len(out), "failed": 0})
        return web.json_response(batch)

    def _answer(self, line: dict[str, Any]) -> str:
        body = line["body"]
        self.bodies.append(body)
        text = "answer: " + str(body["messages"][-1]["content"])
        completion = {
            "id": f"chatcmpl-{line['custom_id']}", "object": "chat.completion", "created": 1742425217,
            "model": body["model"], "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                                 "logprobs": None, "finish_reason": "stop"}],
            "usage": {"queue_time": 1.0087, "prompt_tokens": 12, "prompt_time": 0.0099, "completion_tokens": 3,
                      "completion_time": 0.0733, "total_tokens": 15, "total_time": 0.0832},
            "system_fingerprint": "fp_076aab041c", "x_groq": {"id": "req_01jpra5n2qef6s66k65v8sy51h"}}
        return json.dumps({"id": f"batch_req_out_{line['custom_id']}", "custom_id": line["custom_id"],
                           "response": {"status_code": 200, "request_id": "req_01jpra5n2qef6s66k65v8sy51h",
                                        "body": completion}, "error": None}) + "\n"
