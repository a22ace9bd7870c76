"""The Responses API (``POST /v1/responses``) as a second wire format: requests built from a chat body,
replies and streamed events read into the same Completion as chat completions.

From OpenAI's API reference (platform.openai.com/docs/api-reference/responses): a request takes ``input``
(the messages), ``instructions`` (the system message), ``max_output_tokens``, and ``store`` (we always send
false: nothing is kept at the provider). A reply is a ``response`` object whose ``output`` holds items;
the text is in the ``output_text`` parts of its ``message`` items; ``usage`` has ``input_tokens``,
``output_tokens`` and their details (``cached_tokens``, ``reasoning_tokens``); ``status`` is ``completed``,
``incomplete`` (``incomplete_details.reason``: ``max_output_tokens`` or ``content_filter``) or ``failed``
(with ``error``). A stream is typed events: ``response.output_text.delta`` carries text, and the last
event, ``response.completed`` / ``response.incomplete`` / ``response.failed``, the whole response.
"""

from __future__ import annotations

from typing import Any

from nbtools._engine.completion import Completion, cached_tokens_of, reasoning_tokens_of, text_of

PATH = "/responses"
# What OpenAI answers on /v1/chat/completions for a model that speaks only the Responses API (a 404, "param":
# "model"): github.com/n8n-io/n8n/issues/18352 quotes the body in full.
ONLY_RESPONSES = "only supported in v1/responses"

# Chat fields with another name (or none) on /v1/responses; any other field goes as it is.
_RENAMED = {"max_tokens": "max_output_tokens", "max_completion_tokens": "max_output_tokens"}
_DROPPED = frozenset({"messages", "stream_options", "n"})

# Models that answered ONLY_RESPONSES, by base URL: later batches ask /v1/responses first.
_responses_only: set[tuple[str, str]] = set()


def remember_responses_only(base_url: str, model: str) -> None:
    _responses_only.add((base_url, model))


def responses_only(base_url: str, model: str) -> bool:
    return (base_url, model) in _responses_only


def wants_responses(api: str, base_url: str, model: str) -> bool:
    """Does a request for ``model`` go to /v1/responses? ``api`` is the batch option: chat, responses or auto
    (chat, unless the model has answered that it speaks only the Responses API)."""
    return api == "responses" or (api == "auto" and responses_only(base_url, model))


def to_responses(body: dict[str, Any]) -> dict[str, Any]:
    """A chat-completions body as a Responses API body: system messages become ``instructions``."""
    messages = body.get("messages") or []
    system = [text_of(m.get("content")) for m in messages if m.get("role") in ("system", "developer")]
    out: dict[str, Any] = {"model": body.get("model")}
    out["input"] = [{"role": m.get("role"), "content": m.get("content")} for m in messages
                    if m.get("role") not in ("system", "developer")]
    if system:
        out["instructions"] = "\n\n".join(system)
    for key, value in body.items():
        if key == "response_format":
            out["text"] = {"format": _text_format(value)}
        elif key not in _DROPPED and key != "model":
            out[_RENAMED.get(key, key)] = value
    out["store"] = False
    return out


def _text_format(response_format: Any) -> Any:
    """Chat's ``response_format`` as the Responses API's ``text.format``: the json_schema's fields one level up."""
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        inner = response_format.get("json_schema")
        return {"type": "json_schema", **(inner if isinstance(inner, dict) else {})}
    return response_format


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


def output_text(response: dict[str, Any]) -> str:
    """The text of every ``output_text`` part of every ``message`` item, in order."""
    parts: list[str] = []
    for item in response.get("output") or ():
        if isinstance(item, dict) and item.get("type") == "message":
            for part in item.get("content") or ():
                if isinstance(part, dict) and part.get("type") == "output_text":
                    parts.append(str(part.get("text") or ""))
    return "".join(parts)


def refusal_of(response: dict[str, Any]) -> str | None:
    """The text of the ``refusal`` parts of a response's messages (the model declined a schema), if any."""
    parts = [str(part.get("refusal") or "") for item in response.get("output") or () if isinstance(item, dict)
             for part in item.get("content") or () if isinstance(part, dict) and part.get("type") == "refusal"]
    return "".join(parts) or None


def parse_response(response: dict[str, Any]) -> Completion:
    """A ``response`` object (not failed) as a Completion."""
    usage = response.get("usage") if isinstance(response.get("usage"), dict) else {}
    assert isinstance(usage, dict)
    return Completion(output_text(response), response.get("model"), usage.get("input_tokens"),
                      usage.get("output_tokens"), finish_of(response),
                      cached_tokens_of(usage, "input_tokens_details"),
                      reasoning_tokens=reasoning_tokens_of(usage, "output_tokens_details"), refusal=refusal_of(response))


def failure_of(response: dict[str, Any]) -> dict[str, Any] | None:
    """The error of a failed response, as an error body the failure classifier reads, or None."""
    if response.get("status") != "failed":
        return None
    error = response.get("error") if isinstance(response.get("error"), dict) else {}
    return {"error": {"message": (error or {}).get("message") or "the response failed",
                      "code": (error or {}).get("code"), "type": "server_error"}}


class StreamState:
    """The events of one streamed response, taken one by one; ``final`` is the response once it ended."""

    def __init__(self) -> None:
        self.final: dict[str, Any] | None = None

    def take(self, event: dict[str, Any]) -> str:
        """The text this event adds ('' for most); the terminal events keep the whole response."""
        kind = event.get("type")
        if kind == "response.output_text.delta":
            return str(event.get("delta") or "")
        if kind in ("response.completed", "response.incomplete", "response.failed"):
            response = event.get("response")
            self.final = response if isinstance(response, dict) else {}
        return ""
