"""The simulator's Batch APIs: OpenAI files + batches (also xAI's) and Anthropic Message Batches.

Compressed time: a job is validating for the first tenth of ``batch_delay``, in progress (its lines
finishing in order, evenly) until nine tenths, finalizing, then completed. ``batch_expire`` seconds
after creation an unfinished job expires with what it had finished; a cancel ends it the same way.
Per-line failures come from the prompt's directives (``[[sim:500]]`` fails that line with a 500 in
the error file; ``[[sim:429]]``, ``[[sim:503]]`` likewise), and a model the server does not list fails
its line with 404. Limits are checked like the providers': too many requests, a duplicate
``custom_id`` (OpenAI: the job fails validation; Anthropic: 400 at create), an oversized file.

Shapes follow the providers' references (see nbtools/_engine/batchapi/clients.py for the sources).
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any, Protocol, cast

from nbtools._engine.transport.local import Exchange
from nbtools.sim import directives as sim_directives
from nbtools.sim.config import SimConfig
from nbtools.sim.lineup import LINEUP
from nbtools.sim.protocol import ChatRequest, completion_body, error_body, parse_chat_request, usage
from nbtools.sim.replies import Reply, count_words
from nbtools.sim.responses import parse_responses_request, response_body
from nbtools.sim.structured import schema_of


class Simulator(Protocol):
    """What a batch job needs of the simulator that runs it (sim/server.py): its live knobs, and its replies."""

    config: SimConfig

    def make_reply(self, req: ChatRequest, directives: sim_directives.Directives,
                   schema: dict[str, Any] | None) -> tuple[Reply, str, str | None]: ...


Answer = tuple[int, bytes, str]  # status, body, content type
Route = Callable[[Exchange, str], Awaitable[None]]  # answers a request; the str is the path's {id} ("" if none)

_JSON = "application/json"
_RESPONSES = "/v1/responses"
OPENAI_MAX_REQUESTS = 50_000  # https://platform.openai.com/docs/api-reference/batch/create
OPENAI_MAX_BYTES = 200 * 2**20
ANTHROPIC_MAX_REQUESTS = 100_000  # https://docs.claude.com/en/api/creating-message-batches
ANTHROPIC_MAX_BYTES = 256 * 2**20
_FAILS = {"500": (500, "server_error"), "503": (503, "server_error"), "429": (429, "rate_limit_error"),
          "flaky": (503, "server_error")}


@dataclass
class _Line:
    custom_id: str
    body: dict[str, Any]  # the chat-completions body (Anthropic params converted back)


@dataclass
class _Job:
    id: str
    kind: str  # "openai" or "anthropic"
    lines: list[_Line]
    created: float
    input_file_id: str | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)  # validation failures (OpenAI)
    ended_at: float | None = None
    end_status: str | None = None  # completed, expired, cancelled, failed
    cancel_at: float | None = None
    output: dict[str, bytes] = field(default_factory=dict)  # file kind -> JSONL
    metadata: dict[str, Any] = field(default_factory=dict)
    endpoint: str = "/v1/chat/completions"  # OpenAI: the one endpoint its lines go to (or /v1/responses)
    finished: int = 0  # lines run (answered or failed)
    failed: int = 0  # lines run that failed


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat().replace("+00:00", "Z")


class BatchSim:
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.files: dict[str, bytes] = {}
        self.jobs: dict[str, _Job] = {}
        self.counts = {"uploads": 0, "jobs": 0, "lines": 0, "cancels": 0}
        self._ids = itertools.count(1)
        # (method, path) -> handler; ``{id}`` stands for one path segment, handed to the handler.
        table: dict[tuple[str, str], Callable[[Exchange, str], Awaitable[Answer]]] = {
            ("POST", "/v1/files"): self.upload,
            ("GET", "/v1/files/{id}/content"): self.file_content,
            ("POST", "/v1/batches"): self.create_openai,
            ("GET", "/v1/batches"): self.list_openai,
            ("GET", "/v1/batches/{id}"): self.get_openai,
            ("POST", "/v1/batches/{id}/cancel"): self.cancel_openai,
            ("POST", "/v1/messages/batches"): self.create_anthropic,
            ("GET", "/v1/messages/batches/{id}"): self.get_anthropic,
            ("POST", "/v1/messages/batches/{id}/cancel"): self.cancel_anthropic,
            ("GET", "/v1/messages/batches/{id}/results"): self.results_anthropic,
            ("GET", "/sim/batches"): self.stats,
        }
        self.routes: dict[tuple[str, str], Route] = {key: _sent(handler) for key, handler in table.items()}

    def match(self, method: str, path: str) -> tuple[Route, str] | None:
        """The route answering ``path`` and the {id} it names, as an HTTP server's router finds them."""
        for (route_method, template), route in self.routes.items():
            found = route_method == method and re.fullmatch(template.replace("{id}", "([^/]+)"), path)
            if found:
                return route, found[1] if found.re.groups else ""
        return None

    def snapshot(self) -> dict[str, int]:
        return dict(self.counts)

    async def stats(self, exchange: Exchange, _: str) -> Answer:
        return _json(self.snapshot())

    # -- time ------------------------------------------------------------------------------------------
    def _progress(self, job: _Job, now: float) -> tuple[str, int]:
        """(status, lines finished) of ``job`` at ``now``; ends it (and writes its files) when due."""
        delay = self.sim.config.batch_delay
        if job.end_status is None:
            elapsed = now - job.created
            expire = self.sim.config.batch_expire
            if job.errors and elapsed >= 0.1 * delay:
                self._end(job, "failed", 0, now)
            elif job.cancel_at is not None:
                self._end(job, "cancelled", self._done_at(job, job.cancel_at), now)
            elif elapsed >= delay:
                self._end(job, "completed", len(job.lines), now)
            elif expire is not None and elapsed >= expire:
                self._end(job, "expired", self._done_at(job, job.created + expire), now)
        if job.end_status is not None:
            return job.end_status, job.finished
        elapsed = now - job.created
        status = "validating" if elapsed < 0.1 * delay else ("in_progress" if elapsed < 0.9 * delay else "finalizing")
        return status, self._done_at(job, now)

    def _done_at(self, job: _Job, t: float) -> int:
        delay = self.sim.config.batch_delay
        share = 1.0 if delay <= 0 else min(1.0, max(0.0, (t - job.created - 0.1 * delay) / (0.8 * delay)))
        return int(len(job.lines) * share)

    def _end(self, job: _Job, status: str, finished: int, now: float) -> None:
        job.end_status, job.ended_at = status, now
        job.finished = finished
        if status == "failed":
            return
        answers: list[bytes] = []
        errors: list[bytes] = []
        for i, line in enumerate(job.lines):
            if i >= finished:
                errors.append(self._not_run(job, line, "expired" if status == "expired" else "cancelled"))
                continue
            ok, record = self._answer(job, line)
            (answers if ok else errors).append(record)
            job.failed += not ok
        if job.kind == "anthropic":
            job.output["results"] = b"".join(answers + errors)
        else:
            job.output["output"], job.output["error"] = b"".join(answers), b"".join(errors)
            for kind in ("output", "error"):
                if job.output[kind]:
                    self.files[f"{job.id}-{kind}"] = job.output[kind]
        self.counts["lines"] += finished

    def _answer(self, job: _Job, line: _Line) -> tuple[bool, bytes]:
        """(succeeded?, the result line) for one request the job ran."""
        config = self.sim.config
        raw = json.dumps(line.body).encode()
        try:
            parse = parse_responses_request if job.endpoint == _RESPONSES else parse_chat_request
            req = parse(raw, config.models[0]) if job.kind != "anthropic" else parse_chat_request(
                raw, config.models[0], "anthropic")
            directives = sim_directives.parse(req.last_user)
            fault = directives.fault
            schema, _ = schema_of(req.response_format)
        except ValueError as exc:
            return False, self._line_error(job, line, 400, "invalid_request_error", str(exc))
        named = LINEUP.get(req.model)  # a model of the lineup: served by name, with its own replies
        if req.model not in config.models and named is None:
            error_type = "not_found_error" if job.kind == "anthropic" else "invalid_request_error"
            return False, self._line_error(job, line, 404, error_type,
                                           f"The model `{req.model}` does not exist (simulated; this server lists "
                                           f"{', '.join(config.models)})")
        if fault in _FAILS:
            status, kind = _FAILS[fault]
            return False, self._line_error(job, line, status, kind,
                                           f"The server had an error processing this line. (simulated {fault})")
        reply, finish, refusal = self.sim.make_reply(req, directives, schema)
        prompt_tokens = sum(count_words(text) for _, text in req.messages) + sum(s.tokens for s in req.seen)
        n = next(self._ids)
        if job.kind == "anthropic":
            tool = (req.response_format or {}).get("tool") if isinstance(req.response_format, dict) else None
            content: list[dict[str, Any]] = [{"type": "text", "text": refusal or reply.text}]
            stop = "max_tokens" if finish == "length" else "end_turn"
            if tool is not None and refusal is None and finish != "length":
                try:  # a tool call's input is an object: a reply that is not one (an invalid share) stays text
                    content, stop = [{"type": "tool_use", "id": f"toolu_sim{n}", "name": tool,
                                      "input": json.loads(reply.text)}], "tool_use"
                except ValueError:
                    pass
            message = {"id": f"msg_sim{n}", "type": "message", "role": "assistant", "model": req.model,
                       "content": content,
                       "stop_reason": stop, "stop_sequence": None,
                       "usage": {"input_tokens": prompt_tokens, "output_tokens": len(reply.tokens)}}
            record: dict[str, Any] = {"custom_id": line.custom_id, "result": {"type": "succeeded", "message": message}}
        else:
            encode = response_body if job.endpoint == _RESPONSES else completion_body
            prefix = "resp_sim" if job.endpoint == _RESPONSES else "chatcmpl-sim"
            body = json.loads(encode(f"{prefix}{n}", int(time.time()), req.model, reply, finish,
                                     usage(prompt_tokens, len(reply.tokens)), refusal))
            record = {"id": f"batch_req_sim{n}", "custom_id": line.custom_id,
                      "response": {"status_code": 200, "request_id": f"req_sim{n}", "body": body}, "error": None}
        return True, json.dumps(record).encode() + b"\n"

    def _line_error(self, job: _Job, line: _Line, status: int, kind: str, message: str) -> bytes:
        n = next(self._ids)
        if job.kind == "anthropic":
            record: dict[str, Any] = {"custom_id": line.custom_id, "result": {
                "type": "errored", "error": {"type": "error", "error": {"type": kind, "message": message}}}}
        else:
            record = {"id": f"batch_req_sim{n}", "custom_id": line.custom_id, "response": {
                "status_code": status, "request_id": f"req_sim{n}",
                "body": json.loads(error_body(message, kind))}, "error": None}
        return json.dumps(record).encode() + b"\n"

    def _not_run(self, job: _Job, line: _Line, why: str) -> bytes:
        if job.kind == "anthropic":
            record: dict[str, Any] = {"custom_id": line.custom_id,
                                      "result": {"type": "canceled" if why == "cancelled" else "expired"}}
        else:
            record = {"id": f"batch_req_sim{next(self._ids)}", "custom_id": line.custom_id, "response": None,
                      "error": {"code": f"batch_{why}",
                                "message": f"This request could not be executed before the batch was {why}."}}
        return json.dumps(record).encode() + b"\n"

    # -- OpenAI: files ---------------------------------------------------------------------------------
    async def upload(self, exchange: Exchange, _: str) -> Answer:
        form = _form(exchange.headers.get("Content-Type", ""), await exchange.read())
        purpose, (filename, content) = form.get("purpose", (None, b""))[1], form.get("file", (None, b""))
        if purpose != b"batch" or filename is None:
            return _error(400, "invalid_request_error", "expected multipart fields 'file' and purpose='batch' (simulated)")
        limit = OPENAI_MAX_BYTES
        if len(content) > limit:
            return _error(400, "invalid_request_error",
                          f"File is too large: {len(content)} bytes, the limit is {limit} (simulated)")
        file_id = f"file-sim{next(self._ids)}"
        self.files[file_id] = content
        self.counts["uploads"] += 1
        return _json({"id": file_id, "object": "file", "bytes": len(content), "created_at": int(time.time()),
                      "filename": filename, "purpose": "batch"})

    async def file_content(self, exchange: Exchange, file_id: str) -> Answer:
        content = self.files.get(file_id)
        if content is None:
            return _error(404, "invalid_request_error", "No such File object (simulated)")
        return 200, content, "application/octet-stream"

    # -- OpenAI: batches -------------------------------------------------------------------------------
    async def create_openai(self, exchange: Exchange, _: str) -> Answer:
        try:
            ask = json.loads(await exchange.read())
        except ValueError:
            return _error(400, "invalid_request_error", "the body is not JSON (simulated)")
        content = self.files.get(ask.get("input_file_id"))
        if content is None:
            return _error(404, "invalid_request_error", f"No such File object: {ask.get('input_file_id')} (simulated)")
        if ask.get("endpoint") not in ("/v1/chat/completions", _RESPONSES) or ask.get("completion_window") != "24h":
            return _error(400, "invalid_request_error", "this simulator batches endpoint='/v1/chat/completions' or "
                          "'/v1/responses' with completion_window='24h'")
        lines, errors = [], []
        for n, raw in enumerate(content.splitlines(), 1):
            try:
                record = json.loads(raw)
                lines.append(_Line(str(record["custom_id"]), record["body"]))
            except (ValueError, KeyError, TypeError):
                errors.append({"code": "invalid_json_line", "message": "This line is not valid JSON with custom_id and body.",
                               "line": n})
        limit = self.sim.config.batch_max_requests or OPENAI_MAX_REQUESTS
        if len(lines) > limit:
            errors.append({"code": "too_many_requests", "message": f"The batch has {len(lines)} requests; the limit is {limit}.",
                           "line": None})
        seen: set[str] = set()
        for n, line in enumerate(lines, 1):
            if line.custom_id in seen:
                errors.append({"code": "duplicate_custom_id",
                               "message": f"The custom_id {line.custom_id!r} is used more than once.", "line": n})
                break
            seen.add(line.custom_id)
        job = self._new("openai", lines, ask.get("metadata") or {})
        job.input_file_id, job.errors, job.endpoint = ask["input_file_id"], errors, ask["endpoint"]
        return _json(self._openai_view(job))

    async def get_openai(self, exchange: Exchange, job_id: str) -> Answer:
        job = self.jobs.get(job_id)
        if job is None or job.kind != "openai":
            return _error(404, "invalid_request_error", "No such Batch object (simulated)")
        return _json(self._openai_view(job))

    async def list_openai(self, exchange: Exchange, _: str) -> Answer:
        data = [self._openai_view(j) for j in self.jobs.values() if j.kind == "openai"]
        return _json({"object": "list", "data": data, "has_more": False})

    async def cancel_openai(self, exchange: Exchange, job_id: str) -> Answer:
        job = self.jobs.get(job_id)
        if job is None or job.kind != "openai":
            return _error(404, "invalid_request_error", "No such Batch object (simulated)")
        view = self._openai_view(job)
        if job.end_status is None and job.cancel_at is None:
            job.cancel_at = time.time()
            self.counts["cancels"] += 1
            view["status"] = "cancelling"  # the next retrieve says cancelled
        return _json(view)

    def _openai_view(self, job: _Job) -> dict[str, Any]:
        now = time.time()
        status, finished = self._progress(job, now)
        failed = job.failed
        created = int(job.created)
        return {
            "id": job.id, "object": "batch", "endpoint": job.endpoint,
            "errors": {"object": "list", "data": job.errors} if job.errors else None,
            "input_file_id": job.input_file_id, "completion_window": "24h", "status": status,
            "output_file_id": f"{job.id}-output" if job.output.get("output") else None,
            "error_file_id": f"{job.id}-error" if job.output.get("error") else None,
            "created_at": created, "in_progress_at": None, "expires_at": created + 86400,
            "finalizing_at": None, "completed_at": int(job.ended_at) if status == "completed" and job.ended_at else None,
            "failed_at": None, "expired_at": None, "cancelling_at": None, "cancelled_at": None,
            "request_counts": {"total": len(job.lines), "completed": finished - failed, "failed": failed},
            "metadata": job.metadata,
        }

    # -- Anthropic message batches ---------------------------------------------------------------------
    async def create_anthropic(self, exchange: Exchange, _: str) -> Answer:
        raw = await exchange.read()
        try:
            requests = json.loads(raw)["requests"]
            lines = [_Line(str(r["custom_id"]), _from_anthropic(r["params"])) for r in requests]
        except (ValueError, KeyError, TypeError):
            return _anthropic_error(400, "invalid_request_error", "requests: each needs custom_id and params (simulated)")
        limit = self.sim.config.batch_max_requests or ANTHROPIC_MAX_REQUESTS
        if len(lines) > limit or len(raw) > ANTHROPIC_MAX_BYTES:
            return _anthropic_error(400, "invalid_request_error",
                                    f"requests: at most {limit} requests and 256 MB per batch (simulated)")
        ids = [line.custom_id for line in lines]
        if len(set(ids)) != len(ids):
            return _anthropic_error(400, "invalid_request_error", "requests: custom_id values must be unique (simulated)")
        job = self._new("anthropic", lines, {})
        return _json(self._anthropic_view(job, exchange))

    async def get_anthropic(self, exchange: Exchange, job_id: str) -> Answer:
        job = self.jobs.get(job_id)
        if job is None or job.kind != "anthropic":
            return _anthropic_error(404, "not_found_error", "message batch not found (simulated)")
        return _json(self._anthropic_view(job, exchange))

    async def cancel_anthropic(self, exchange: Exchange, job_id: str) -> Answer:
        job = self.jobs.get(job_id)
        if job is None or job.kind != "anthropic":
            return _anthropic_error(404, "not_found_error", "message batch not found (simulated)")
        if job.end_status is None and job.cancel_at is None:
            job.cancel_at = time.time()
            self.counts["cancels"] += 1
            view = self._anthropic_view(job, exchange)
            view["processing_status"] = "canceling"
            return _json(view)
        return _json(self._anthropic_view(job, exchange))

    async def results_anthropic(self, exchange: Exchange, job_id: str) -> Answer:
        job = self.jobs.get(job_id)
        if job is None or job.kind != "anthropic":
            return _anthropic_error(404, "not_found_error", "message batch not found (simulated)")
        self._progress(job, time.time())
        if job.end_status is None:
            return _anthropic_error(400, "invalid_request_error", "the batch is still processing (simulated)")
        return 200, job.output.get("results", b""), "application/binary"

    def _anthropic_view(self, job: _Job, exchange: Exchange) -> dict[str, Any]:
        status, finished = self._progress(job, time.time())
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if job.end_status is None:
            counts["succeeded"], counts["processing"] = finished, len(job.lines) - finished
        else:
            for line in job.output.get("results", b"").splitlines():
                kind = json.loads(line)["result"]["type"]
                counts[kind] += 1
        ended = job.end_status is not None
        base = f"http://{exchange.headers.get('Host', '')}"  # the simulator speaks plain HTTP only
        return {
            "id": job.id, "type": "message_batch", "processing_status": "ended" if ended else "in_progress",
            "request_counts": counts, "ended_at": _iso(job.ended_at) if ended and job.ended_at else None,
            "created_at": _iso(job.created), "expires_at": _iso(job.created + 86400), "archived_at": None,
            "cancel_initiated_at": _iso(job.cancel_at) if job.cancel_at else None,
            "results_url": f"{base}/v1/messages/batches/{job.id}/results" if ended else None,
        }

    def _new(self, kind: str, lines: list[_Line], metadata: dict[str, Any]) -> _Job:
        prefix = "msgbatch_sim" if kind == "anthropic" else "batch_sim"
        job = _Job(f"{prefix}{next(self._ids)}", kind, lines, time.time(), metadata=dict(metadata))
        self.jobs[job.id] = job
        self.counts["jobs"] += 1
        return job


def _from_anthropic(params: dict[str, Any]) -> dict[str, Any]:
    """Native Messages params as a chat body, so one parser checks both."""
    messages = list(params["messages"])
    if params.get("system"):
        system = params["system"]
        text = system if isinstance(system, str) else "".join(b.get("text", "") for b in system)
        messages.insert(0, {"role": "system", "content": text})
    body = {"model": params["model"], "messages": messages, "max_tokens": params["max_tokens"]}
    choice, tools = params.get("tool_choice"), params.get("tools") or []
    if isinstance(choice, dict) and choice.get("type") == "tool":  # a forced tool call: answered as its input
        tool = next((t for t in tools if isinstance(t, dict) and t.get("name") == choice.get("name")), None)
        if tool is None:
            raise ValueError(f"tool_choice names {choice.get('name')!r}, which is not in tools")
        body["response_format"] = {"type": "json_object", "schema": tool.get("input_schema"), "tool": tool["name"]}
    return body


def _form(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """A multipart/form-data body's fields: name -> (file name or None, value); {} if it is not one."""
    head = b"Content-Type: " + content_type.encode("latin-1", "replace") + b"\r\n\r\n"
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    if not message.is_multipart():
        return {}
    return {str(part.get_param("name", header="content-disposition")):
            (part.get_filename(), cast(bytes, part.get_payload(decode=True))) for part in message.iter_parts()}


def _sent(handler: Callable[[Exchange, str], Awaitable[Answer]]) -> Route:
    async def answer(exchange: Exchange, named: str) -> None:
        status, body, content_type = await handler(exchange, named)
        await exchange.send(status, body, {}, content_type)

    return answer


def _json(payload: dict[str, Any], status: int = 200) -> Answer:
    return status, json.dumps(payload).encode(), _JSON


def _error(status: int, kind: str, message: str) -> Answer:
    return status, error_body(message, kind), _JSON


def _anthropic_error(status: int, kind: str, message: str) -> Answer:
    # https://docs.claude.com/en/api/errors: {"type": "error", "error": {"type", "message"}}
    return _json({"type": "error", "error": {"type": kind, "message": message}}, status)
