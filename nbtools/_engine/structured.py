"""Structured output on the wire: which way each endpoint is asked for the schema, and what a reply becomes.

Each endpoint is asked the strongest way it supports (nbtools._base.schemas names the forms):

- OpenAI and xAI take ``response_format`` ``json_schema`` with ``strict: true``, and refuse (400) a schema
  that is not strict (https://platform.openai.com/docs/guides/structured-outputs, "Supported schemas").
- vLLM, llama.cpp's server and Ollama take ``json_schema`` without ``strict``; so does any other server.
  A server of the older dialect refuses that form, and the client asks it once per batch the old way,
  ``{"type": "json_object", "schema": ...}`` (llama-cpp-python's server, llama_cpp/server/types.py).
- Anthropic's OpenAI-compatible endpoint ignores ``response_format``
  (https://docs.claude.com/en/api/openai-sdk, "response_format ... ignored"): the schema goes into the
  system message, and the reply is validated like any other. Its Message Batches API takes native tool use:
  one tool whose ``input_schema`` is the schema, and ``tool_choice`` forcing it.

A new provider is one line in FORMS. (The Responses API asks through ``text.format`` instead of
``response_format``: its body builder maps these same forms.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nbtools._base.schemas import JSON_SCHEMA, STRICT, SYSTEM, TOOL

if TYPE_CHECKING:
    from nbtools._engine.endpoints import Endpoint

FORMS: dict[str, str] = {  # provider -> how it is asked; others get JSON_SCHEMA
    "openai": STRICT,
    "xai": STRICT,
    # Documented to take json_schema with strict: true on their OpenAI-compatible endpoints.
    "gemini": STRICT,
    "groq": STRICT,
    "openrouter": STRICT,
    "mistral": STRICT,
    "cerebras": STRICT,
    "sim": STRICT,  # the simulator enforces OpenAI's strict rules
    "anthropic": SYSTEM,
    "vllm": JSON_SCHEMA,
    "ollama": JSON_SCHEMA,
}


def form_for(endpoint: Endpoint, *, batch_api: bool = False) -> str:
    """How this endpoint is asked first (the client may fall back to JSON_OBJECT once). Anthropic's own
    Message Batches API takes native tool use, which its OpenAI-compatible endpoint does not."""
    if batch_api and endpoint.provider == "anthropic":
        return TOOL
    return STRICT if endpoint.simulated else FORMS.get(endpoint.provider, JSON_SCHEMA)


def older_dialect(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with a plain json_schema response_format rewritten as ``{"type": "json_object", "schema": ...}``."""
    rf = body.get("response_format")
    if not (isinstance(rf, dict) and rf.get("type") == "json_schema"):
        return body
    schema = (rf.get("json_schema") or {}).get("schema")
    return {**body, "response_format": {"type": "json_object", "schema": schema}}


def refuses_json_schema(status: int | None, message: str, body: dict[str, Any]) -> bool:
    """Did the server turn down the json_schema form itself (not this row)? Only plain (non-strict) requests
    fall back: a strict-mode 400 is about the schema, and saying so is more use than asking another way.

    Seen: llama.cpp's older server answers 500 'response_format type must be one of "text" or "json_object",
    but got: json_schema' (ik-llama.cpp issue 778); llama-cpp-python's FastAPI model answers 422 naming
    ``response_format`` / ``type`` with "Input should be 'text' or 'json_object'".
    """
    rf = body.get("response_format")
    if not (isinstance(rf, dict) and rf.get("type") == "json_schema") or (rf.get("json_schema") or {}).get("strict"):
        return False
    text = message.lower()
    return status in (400, 422, 500) and ("json_schema" in text or "json_object" in text or "response_format" in text)
