"""The OpenAI chat-completions wire format: request parsing and response bodies."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from nbtools.sim.media import PartRefused, Seen, read_content
from nbtools.sim.replies import Reply

DONE = b"data: [DONE]\n\n"
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class BadRequest(ValueError):
    """A request the real API would refuse with 400; ``param`` names the culprit field."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.param, self.code = param, code


@dataclass(frozen=True, slots=True)
class ChatRequest:
    messages: list[tuple[str, str]]  # (role, text)
    last_user: str
    model: str
    stream: bool
    include_usage: bool
    max_tokens: int | None
    response_format: Any = None  # as sent; nbtools.sim.structured reads it
    seen: tuple[Seen, ...] = ()  # what its images and files show (nbtools.sim.media)


def json_object(body: bytes) -> dict[str, Any]:
    """A request body as the JSON object every endpoint of ours takes, else BadRequest."""
    try:
        data = json.loads(body)
    except ValueError:
        raise BadRequest("the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("the request body must be a JSON object")
    return data


def parse_chat_request(body: bytes, default_model: str, api: str = "chat") -> ChatRequest:
    return chat_request(json_object(body), default_model, api)


def chat_request(data: dict[str, Any], default_model: str, api: str = "chat") -> ChatRequest:
    """A parsed chat-completions body (or, ``api="responses"``/``"anthropic"``, one in the chat form whose
    content parts are that API's), checked as the real API checks it."""
    raw_messages = data.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise BadRequest("'messages' must be a non-empty list of {role, content} objects", "messages")
    messages = []
    last_user = ""
    seen: list[Seen] = []
    for i, message in enumerate(raw_messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str) or "content" not in message:
            raise BadRequest(f"messages[{i}] must be an object with 'role' and 'content'", f"messages[{i}]")
        text = _content_text(message["content"], f"messages[{i}].content", api, seen)
        if text is None:
            raise BadRequest(
                f"messages[{i}].content must be a string or a list of text parts", f"messages[{i}].content"
            )
        messages.append((message["role"], text))
        if message["role"] == "user":
            last_user = text
    model = data.get("model", default_model)
    if not isinstance(model, str) or not model:
        raise BadRequest("'model' must be a non-empty string", "model")
    stream = data.get("stream") or False
    if not isinstance(stream, bool):
        raise BadRequest("'stream' must be true or false", "stream")
    max_tokens = data.get("max_completion_tokens", data.get("max_tokens"))
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise BadRequest("'max_tokens' must be a positive integer", "max_tokens")
    options = data.get("stream_options")
    include_usage = stream and isinstance(options, dict) and options.get("include_usage") is True
    return ChatRequest(messages, last_user, model, stream, include_usage, max_tokens, data.get("response_format"),
                       tuple(seen))


def _content_text(content: Any, where: str, api: str, seen: list[Seen]) -> str | None:
    """The content's text, with what its images and files show in brackets (added to ``seen``)."""
    if isinstance(content, str):
        return content
    if content is None:  # assistant turns that only carried tool calls
        return ""
    if not isinstance(content, list) or not all(isinstance(p, dict) for p in content):
        return None
    try:
        text, found = read_content(content, where, api)
    except PartRefused as exc:
        raise BadRequest(str(exc), exc.param, exc.code) from None
    seen.extend(found)
    return " ".join([text, *(f"({s.words})" for s in found)]).strip()


def error_body(message: str, kind: str, code: str | None = None, param: str | None = None) -> bytes:
    return _dumps({"error": {"message": message, "type": kind, "param": param, "code": code}}).encode()


def refused_parameter(field: str, value: Any) -> bytes:
    """OpenAI's 400 for a field the model does not take, worded as its reasoning models word it (see
    tests/provider_params.py for the quoted replies)."""
    if field == "temperature":
        message = (f"Unsupported value: 'temperature' does not support {value} with this model. Only the default (1) "
                   "value is supported.")
        return error_body(message, "invalid_request_error", "unsupported_value", field)
    message = f"Unsupported parameter: '{field}' is not supported with this model."
    if field == "max_tokens":
        message += " Use 'max_completion_tokens' instead."
    return error_body(message, "invalid_request_error", "unsupported_parameter", field)


def refused_field(refuse: tuple[str, ...], model: str, body: dict[str, Any]) -> str | None:
    """The first field of ``body`` that ``refuse`` (entries 'field' or 'model:field') says ``model`` refuses."""
    for entry in refuse:
        only, _, field = entry.rpartition(":")
        if field in body and (not only or only == model) and not (field == "temperature" and body[field] == 1):
            return field
    return None


def usage(prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> dict[str, Any]:
    """OpenAI's usage object (openai-python ``types/completion_usage.py``): the prompt tokens read from the prompt
    cache in ``prompt_tokens_details.cached_tokens``."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached_tokens},
    }


def completion_body(
    cid: str, created: int, model: str, reply: Reply | None, finish: str, use: dict[str, Any] | None,
    refusal: str | None = None,
) -> bytes:
    """A chat.completion object; ``reply=None`` gives ``choices: []``, ``use=None`` omits usage; a
    ``refusal`` is sent as OpenAI does: ``message.refusal`` with ``content: null``."""
    body: dict[str, Any] = {"id": cid, "object": "chat.completion", "created": created, "model": model}
    body["choices"] = (
        []
        if reply is None
        else [
            {"index": 0, "message": {"role": "assistant", "content": reply.text} if refusal is None else
             {"role": "assistant", "content": None, "refusal": refusal}, "finish_reason": finish}
        ]
    )
    if use is not None:
        body["usage"] = use
    return _dumps(body).encode()


class ChunkWriter:
    """Encodes the SSE events of one stream; the constant head is built once per stream."""

    def __init__(self, cid: str, created: int, model: str) -> None:
        self._head = (
            f'data: {{"id":"{cid}","object":"chat.completion.chunk","created":{created},"model":{_dumps(model)},'
        )

    def token(self, text: str, first: bool) -> str:
        role = '"role":"assistant",' if first else ""
        delta = f'{{{role}"content":{_dumps(text)}}}'
        return f'{self._head}"choices":[{{"index":0,"delta":{delta},"finish_reason":null}}]}}\n\n'

    def refusal(self, text: str) -> str:
        delta = f'{{"role":"assistant","refusal":{_dumps(text)}}}'
        return f'{self._head}"choices":[{{"index":0,"delta":{delta},"finish_reason":null}}]}}\n\n'

    def finish(self, reason: str) -> str:
        return f'{self._head}"choices":[{{"index":0,"delta":{{}},"finish_reason":"{reason}"}}]}}\n\n'

    def usage(self, use: dict[str, Any]) -> str:
        return f'{self._head}"choices":[],"usage":{_dumps(use)}}}\n\n'

    def no_choices(self) -> str:
        return f'{self._head}"choices":[]}}\n\n'


def models_body(models: tuple[str, ...], created: int) -> bytes:
    data = [{"id": m, "object": "model", "created": created, "owned_by": "nbtools-sim"} for m in models]
    return _dumps({"object": "list", "data": data}).encode()
