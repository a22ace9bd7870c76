"""The Responses API wire format (POST /v1/responses), as the simulator speaks it.

Shapes from OpenAI's API reference (platform.openai.com/docs/api-reference/responses): the request's
``input`` (a string, or messages whose content is a string or ``input_text`` parts) and ``instructions``;
the ``response`` object with ``output`` message items and ``usage``; a stream of typed events ending in
``response.completed`` (or ``response.incomplete`` when cut by ``max_output_tokens``).
"""

from __future__ import annotations

import json
from typing import Any

from nbtools.sim.protocol import BadRequest, ChatRequest, chat_request, json_object
from nbtools.sim.replies import Reply

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def parse_responses_request(body: bytes, default_model: str) -> ChatRequest:
    """A /v1/responses request as the chat request the simulator answers."""
    data = json_object(body)
    raw = data.get("input")
    if isinstance(raw, str):
        messages: Any = [{"role": "user", "content": raw}]
    elif isinstance(raw, list) and raw:
        messages = raw
    else:
        raise BadRequest("'input' must be a string or a non-empty list of messages", "input")
    instructions = data.get("instructions")
    if isinstance(instructions, str) and instructions:
        messages = [{"role": "system", "content": instructions}, *messages]
    chat = {"model": data.get("model"), "messages": messages, "stream": data.get("stream") or False,
            "stream_options": {"include_usage": True}, "max_tokens": data.get("max_output_tokens")}
    if chat["model"] is None:
        del chat["model"]
    try:
        return chat_request(chat, default_model, api="responses")
    except BadRequest as exc:  # name the field as this API calls it
        param = "input" if (exc.param or "").startswith("messages") else exc.param
        raise BadRequest(str(exc).replace("'max_tokens'", "'max_output_tokens'").replace("messages", "input"),
                         "max_output_tokens" if param == "max_tokens" else param) from None


def _usage(use: dict[str, Any] | None) -> dict[str, Any] | None:
    if use is None:
        return None
    return {"input_tokens": use["prompt_tokens"],
            "input_tokens_details": {"cached_tokens": use["prompt_tokens_details"]["cached_tokens"]},
            "output_tokens": use["completion_tokens"], "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": use["total_tokens"]}


def response_object(rid: str, created: int, model: str, reply: Reply | None, finish: str,
                    use: dict[str, Any] | None, *, done: bool = True, refusal: str | None = None) -> dict[str, Any]:
    """A ``response`` object: ``reply=None`` gives no output, ``use=None`` no usage, ``done=False`` in progress."""
    status = ("incomplete" if finish == "length" else "completed") if done else "in_progress"
    output = [] if reply is None or not done else [
        {"type": "message", "id": f"msg_{rid}", "status": "completed", "role": "assistant",
         "content": [{"type": "output_text", "text": reply.text, "annotations": []} if refusal is None else
                     {"type": "refusal", "refusal": refusal}]}]
    return {"id": rid, "object": "response", "created_at": created, "status": status, "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
            "model": model, "output": output, "store": False, "usage": _usage(use) if done else None}


def response_body(rid: str, created: int, model: str, reply: Reply | None, finish: str,
                  use: dict[str, Any] | None, refusal: str | None = None) -> bytes:
    return _dumps(response_object(rid, created, model, reply, finish, use, refusal=refusal)).encode()


class EventWriter:
    """Encodes the typed SSE events of one streamed response, numbered as the API numbers them."""

    def __init__(self, rid: str, created: int, model: str) -> None:
        self.rid, self.created, self.model = rid, created, model
        self._seq = 0
        self._item = f"msg_{rid}"

    def _event(self, kind: str, **fields: Any) -> str:
        payload = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return f"event: {kind}\ndata: {_dumps(payload)}\n\n"

    def opening(self) -> str:
        head = response_object(self.rid, self.created, self.model, None, "stop", None, done=False)
        item = {"type": "message", "id": self._item, "status": "in_progress", "role": "assistant", "content": []}
        part = {"type": "output_text", "text": "", "annotations": []}
        return (self._event("response.created", response=head) + self._event("response.in_progress", response=head)
                + self._event("response.output_item.added", output_index=0, item=item)
                + self._event("response.content_part.added", item_id=self._item, output_index=0, content_index=0,
                              part=part))

    def token(self, text: str) -> str:
        return self._event("response.output_text.delta", item_id=self._item, output_index=0, content_index=0,
                           delta=text)

    def closing(self, reply: Reply | None, finish: str, use: dict[str, Any] | None) -> str:
        final = response_object(self.rid, self.created, self.model, reply, finish, use)
        text = reply.text if reply is not None else ""
        part = {"type": "output_text", "text": text, "annotations": []}
        events = ""
        if reply is not None:
            events += (self._event("response.output_text.done", item_id=self._item, output_index=0, content_index=0,
                                   text=text)
                       + self._event("response.content_part.done", item_id=self._item, output_index=0,
                                     content_index=0, part=part)
                       + self._event("response.output_item.done", output_index=0, item=final["output"][0]))
        kind = "response.incomplete" if final["status"] == "incomplete" else "response.completed"
        return events + self._event(kind, response=final)
