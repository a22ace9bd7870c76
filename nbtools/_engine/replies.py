"""Replies as the engine keeps them: one Completion, whichever wire format it came in, and the readers that make it.

A chat completion (openai-python ``types/chat/chat_completion.py``: ``choices[0].message.content``, ``refusal``,
``finish_reason``; ``usage`` with ``prompt_tokens_details.cached_tokens`` and
``completion_tokens_details.reasoning_tokens``) is read by one parser, ``chat_completion``, for the online
client and the Batch API's result lines alike. A streamed one arrives as chunks (``chat_completion_chunk.py``:
``choices[].delta``, a last chunk with ``usage``), read by ``ChatStream``.

A Responses API reply (platform.openai.com/docs/api-reference/responses) is a ``response`` object whose
``output`` holds items; the text is in the ``output_text`` parts of its ``message`` items; ``usage`` has
``input_tokens``, ``output_tokens`` and their details; ``status`` is ``completed``, ``incomplete``
(``incomplete_details.reason``: ``max_output_tokens`` or ``content_filter``) or ``failed`` (with ``error``).
A stream of it is typed events, read by ``ResponsesStream``: ``response.output_text.delta`` carries text, and
the last event, ``response.completed`` / ``response.incomplete`` / ``response.failed``, the whole response.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nbtools._engine import failures
from nbtools._engine.sse import DONE, StreamError


@dataclass(slots=True)
class Completion:
    text: str
    model: str | None
    prompt_tokens: int | None
    completion_tokens: int | None  # all output tokens, reasoning included (as providers bill them)
    finish_reason: str | None
    cached_tokens: int | None = None  # prompt tokens read from the provider's prompt cache (billed lower)
    headers: Any = None  # the response headers (rate-limit hints); not kept in results
    headers_at: float | None = None  # when they arrived (time.monotonic): a stream ends long after
    reasoning_tokens: int | None = None  # output tokens the model spent thinking (part of completion_tokens)
    refusal: str | None = None  # message.refusal: the model declined to give the structured value
    system_fingerprint: str | None = None  # the backend configuration that answered (OpenAI's system_fingerprint)
    request_id: str | None = None  # the provider's id of this request: its request-id header, else the reply's id
    cache_write_tokens: int | None = None  # prompt tokens written to the prompt cache, where billed apart (Anthropic)


# The header naming a request, as each provider's support asks for it: OpenAI (and Groq, Mistral, ...)
# ``x-request-id`` (platform.openai.com/docs/api-reference/debugging-requests); Anthropic ``request-id``
# (docs.anthropic.com/en/api/overview, "Response Headers").
REQUEST_ID_HEADERS = ("x-request-id", "request-id")


def request_id_of(headers: Any) -> str | None:
    """The provider's request id from the response headers, where it sends one."""
    if headers is None:
        return None
    for name in REQUEST_ID_HEADERS:
        value = headers.get(name)
        if value:
            return str(value)
    return None


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


class StreamCut(Exception):
    """A stream that ended before its reply was finished; the message says how (e.g. "ended the stream")."""


def text_of(content: Any) -> str:
    """Message content as text: some servers send a list of parts ({"type": "text", "text": ...})."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return "" if content is None else str(content)


def _count(usage: dict[str, Any], details: str, name: str) -> int | None:
    node = usage.get(details)
    value = node.get(name) if isinstance(node, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def cached_tokens_of(usage: dict[str, Any], details: str = "prompt_tokens_details") -> int | None:
    """usage.<details>.cached_tokens, where the server reports it (openai-python: types/completion_usage.py,
    PromptTokensDetails; types/responses/response_usage.py, InputTokensDetails)."""
    return _count(usage, details, "cached_tokens")


def reasoning_tokens_of(usage: dict[str, Any], details: str = "completion_tokens_details") -> int | None:
    """usage.<details>.reasoning_tokens (CompletionTokensDetails; the Responses API's OutputTokensDetails)."""
    return _count(usage, details, "reasoning_tokens")


def refusal_of(message: Any) -> str | None:
    """message.refusal (openai-python: src/openai/types/chat/chat_completion_message.py), where sent."""
    refusal = message.get("refusal") if isinstance(message, dict) else None
    return refusal if isinstance(refusal, str) and refusal else None


# -- chat completions ------------------------------------------------------------------------------
def chat_completion(data: dict[str, Any]) -> Completion:
    """A chat-completions body as a Completion: its first choice (none: an empty reply), usage and refusal."""
    choice = (data.get("choices") or [{}])[0]
    usage = data.get("usage") or {}
    reply = choice.get("message") or {}
    return Completion(text_of(reply.get("content")), data.get("model"), usage.get("prompt_tokens"),
                      usage.get("completion_tokens"), choice.get("finish_reason"), cached_tokens_of(usage),
                      reasoning_tokens=reasoning_tokens_of(usage), refusal=refusal_of(reply),
                      system_fingerprint=_text_or_none(data.get("system_fingerprint")),
                      request_id=_text_or_none(data.get("id")))


class ChatStream:
    """The chunks of one streamed chat completion, taken one by one; ``ended`` once ``[DONE]`` came."""

    def __init__(self) -> None:
        self.parts: list[str] = []  # the text so far
        self.ended = False
        self._model: str | None = None
        self._fingerprint: str | None = None
        self._id: str | None = None
        self._finish: str | None = None
        self._usage: dict[str, Any] = {}
        self._refusals: list[str] = []

    def take(self, chunk: Any) -> str:
        """The text this chunk adds ('' for most but the content deltas)."""
        if chunk is DONE:
            self.ended = True
            return ""
        if not isinstance(chunk, dict):
            return ""
        self._model = chunk.get("model") or self._model
        self._fingerprint = _text_or_none(chunk.get("system_fingerprint")) or self._fingerprint
        self._id = self._id or _text_or_none(chunk.get("id"))
        if isinstance(chunk.get("usage"), dict):
            self._usage = chunk["usage"]
        added = "".join(self._take_choice(choice) for choice in chunk.get("choices") or () if isinstance(choice, dict))
        if self._finish == "error":  # OpenRouter: the upstream provider failed mid-reply
            raise StreamError("the reply ended with finish_reason 'error'")
        return added

    def _take_choice(self, choice: dict[str, Any]) -> str:
        delta = choice.get("delta")
        text = text_of(delta.get("content")) if isinstance(delta, dict) else ""
        if refusal := refusal_of(delta):
            self._refusals.append(refusal)
        if text:
            self.parts.append(text)
        self._finish = choice.get("finish_reason") or self._finish
        return text

    def completion(self) -> Completion:
        """The reply; StreamCut if it did not finish, [DONE] or not (llama.cpp ends queued ones so)."""
        if failures.classify_finish(self._finish, stream=True) == failures.CUT:
            how = "sent [DONE] without a finish_reason" if self.ended else "ended the stream"
            raise StreamCut(f"{how} before the reply was finished")
        usage = self._usage
        return Completion("".join(self.parts), self._model, usage.get("prompt_tokens"), usage.get("completion_tokens"),
                          self._finish, cached_tokens_of(usage), reasoning_tokens=reasoning_tokens_of(usage),
                          refusal="".join(self._refusals) or None, system_fingerprint=self._fingerprint,
                          request_id=self._id)


# -- the Responses API -----------------------------------------------------------------------------
def finish_of(response: dict[str, Any]) -> str | None:
    """The chat ``finish_reason`` a response's status means: ``length`` when cut by max_output_tokens."""
    status = response.get("status")
    if status == "completed":
        return "stop"
    if status == "incomplete":
        details = response.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, dict) else None
        return {"max_output_tokens": "length", "content_filter": "content_filter"}.get(str(reason), "length")
    return None


def _message_parts(response: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """The content parts of type ``kind`` of every ``message`` item, in order."""
    return [part for item in response.get("output") or () if isinstance(item, dict) and item.get("type") == "message"
            for part in item.get("content") or () if isinstance(part, dict) and part.get("type") == kind]


def parse_response(response: dict[str, Any]) -> Completion:
    """A ``response`` object (not failed) as a Completion."""
    usage = response.get("usage") if isinstance(response.get("usage"), dict) else {}
    assert isinstance(usage, dict)
    text = "".join(str(part.get("text") or "") for part in _message_parts(response, "output_text"))
    refusal = "".join(str(part.get("refusal") or "") for part in _message_parts(response, "refusal")) or None
    return Completion(text, response.get("model"), usage.get("input_tokens"), usage.get("output_tokens"),
                      finish_of(response), cached_tokens_of(usage, "input_tokens_details"),
                      reasoning_tokens=reasoning_tokens_of(usage, "output_tokens_details"), refusal=refusal,
                      request_id=_text_or_none(response.get("id")))


def failure_of(response: dict[str, Any]) -> dict[str, Any] | None:
    """The error of a failed response, as an error body the failure classifier reads, or None."""
    if response.get("status") != "failed":
        return None
    error = response.get("error") if isinstance(response.get("error"), dict) else {}
    return {"error": {"message": (error or {}).get("message") or "the response failed",
                      "code": (error or {}).get("code"), "type": "server_error"}}


class ResponsesStream:
    """The events of one streamed response, taken one by one; ``ended`` once a terminal event came."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.final: dict[str, Any] | None = None

    @property
    def ended(self) -> bool:
        return self.final is not None

    def take(self, event: Any) -> str:
        """The text this event adds ('' for most); the terminal events keep the whole response."""
        if not isinstance(event, dict):
            return ""
        kind = event.get("type")
        if kind == "response.output_text.delta":
            text = str(event.get("delta") or "")
            if text:
                self.parts.append(text)
            return text
        if kind in ("response.completed", "response.incomplete", "response.failed"):
            response = event.get("response")
            self.final = response if isinstance(response, dict) else {}
        return ""

    def completion(self) -> Completion:
        """The reply; StreamCut if no terminal event came. A failed response is for the caller (``failure_of``)."""
        if self.final is None:
            raise StreamCut("ended the stream before the response was finished")
        completion = parse_response(self.final)
        completion.text = completion.text or "".join(self.parts)  # the final event repeats the text; trust the deltas
        return completion
