"""Chat endpoints that enforce each provider's structured-output rules, written from their references, not from nbtools.

- OpenAI strict mode (https://platform.openai.com/docs/guides/structured-outputs, "Supported schemas": every
  object needs ``additionalProperties: false`` and every property in ``required``). A schema that breaks a
  rule is refused with a 400. The whole body, as quoted in dottxt-ai/outlines issue 844: ``{"error": {"message":
  "Invalid schema for response_format 'default': In context=(), 'additionalProperties' is required to be
  supplied and to be false.", "type": "invalid_request_error", "param": "response_format", "code": null}}``;
  a nested context reads ``In context=('properties', 'etymology')`` (moeru-ai/xsai issue 202); for
  ``required`` (vercel/ai issue 6484): "In context=('properties', 'organizations', 'items'), 'required' is
  required to be supplied and to be an array including every key in properties. Missing 'roles'."
- llama-cpp-python's server: ``response_format`` is the TypedDict ``{"type": Literal["text", "json_object"],
  "schema": NotRequired[JsonType]}`` (llama_cpp/llama_types.py, ChatCompletionRequestResponseFormat), checked by
  FastAPI, whose default handler answers 422 ``{"detail": <pydantic's errors>}``: the body below is made by
  running that very check with pydantic.
- llama.cpp's older ``llama-server``: 500 ``{"error": {"code": 500, "message": "response_format type must be one
  of \\"text\\" or \\"json_object\\", but got: json_schema", "type": "server_error"}}`` (ik_llama.cpp issue 778).
- vLLM and Ollama's /v1: ``response_format`` ``json_schema`` without ``strict``.
- Anthropic's OpenAI SDK compatibility layer: ``response_format`` is ignored
  (https://docs.claude.com/en/api/openai-sdk); the model follows the system message.

The "model" answers with JSON built from the schema it was given; a prompt containing MISSING_FIELD gets a
reply without the schema's first required field (as a model that ignores the schema would write it).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from aiohttp import web
from typing_extensions import NotRequired, TypedDict

MISSING_FIELD = "MISSING-FIELD"


class _LlamaCppResponseFormat(TypedDict):  # llama_cpp/llama_types.py
    type: Literal["text", "json_object"]
    schema: NotRequired[Any]


class _LlamaCppRequest(TypedDict):
    response_format: NotRequired[_LlamaCppResponseFormat]


def value_for(node: dict[str, Any], defs: dict[str, Any], prompt: str) -> Any:
    """A value that fits ``node``: the first choice, the prompt's length, the prompt as text."""
    if "$ref" in node:
        node = defs[node["$ref"].split("/")[-1]]
    if "anyOf" in node:
        return value_for(next(o for o in node["anyOf"] if o.get("type") != "null"), defs, prompt)
    if "enum" in node:
        return node["enum"][0]
    kind = node.get("type")
    kind = next(k for k in kind if k != "null") if isinstance(kind, list) else kind
    if kind == "object":
        return {k: value_for(v, defs, prompt) for k, v in node.get("properties", {}).items()}
    if kind == "array":
        return [value_for(node.get("items", {}), defs, prompt)]
    return {"integer": len(prompt), "number": 0.5, "boolean": True}.get(kind, prompt)  # type: ignore[arg-type]


def answer(schema: dict[str, Any], prompt: str) -> str:
    value = value_for(schema, schema.get("$defs", {}), prompt)
    if MISSING_FIELD in prompt:
        value.pop(schema.get("required", list(value))[0])
    return json.dumps(value)


def strict_problem(node: Any, context: tuple[str, ...] = ()) -> str | None:
    """What OpenAI's strict mode refuses in ``node``, in its words, or None."""
    if not isinstance(node, dict):
        return None
    if node.get("type") == "object":
        if node.get("additionalProperties") is not False:
            return f"In context={context}, 'additionalProperties' is required to be supplied and to be false."
        missing = [k for k in node.get("properties", {}) if k not in node.get("required", [])]
        if missing:
            return (f"In context={context}, 'required' is required to be supplied and to be an array including "
                    f"every key in properties. Missing '{missing[0]}'.")
    children = [(("properties", k), v) for k, v in node.get("properties", {}).items()]
    children += [(("items",), node["items"])] if isinstance(node.get("items"), dict) else []
    children += [(("anyOf", str(i)), v) for i, v in enumerate(node.get("anyOf", []))]
    children += [(("$defs", k), v) for k, v in node.get("$defs", {}).items()]
    for path, child in children:
        if (problem := strict_problem(child, context + path)) is not None:
            return problem
    return None


def chat_body(content: str, model: str) -> dict[str, Any]:
    """A chat.completion object (platform.openai.com/docs/api-reference/chat/object)."""
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1767225600, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content, "refusal": None},
                         "logprobs": None, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30}}


class StructuredServer:
    """One provider's rules: ``openai``, ``llama-cpp-python``, ``llama.cpp-old``, ``vllm`` or ``anthropic``."""

    def __init__(self, rules: str) -> None:
        self.rules = rules
        self.bodies: list[dict[str, Any]] = []  # every request, as sent
        self.refused = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        return app

    @property
    def prompts(self) -> list[str]:
        return [str(b["messages"][-1]["content"]) for b in self.bodies]

    def _refuse(self, status: int, body: dict[str, Any]) -> web.Response:
        self.refused += 1
        return web.json_response(body, status=status)

    async def _chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.bodies.append(body)
        rf = body.get("response_format")
        prompt = str(body["messages"][-1]["content"])
        schema: dict[str, Any] | None = None
        if self.rules == "openai" and rf is not None:
            spec = rf.get("json_schema", {})
            if rf.get("type") == "json_schema" and spec.get("strict"):
                problem = strict_problem(spec["schema"])
                if problem:
                    return self._refuse(400, {"error": {
                        "message": f"Invalid schema for response_format '{spec['name']}': {problem}",
                        "type": "invalid_request_error", "param": "response_format", "code": None}})
            schema = spec.get("schema")
        elif self.rules == "llama-cpp-python" and rf is not None:
            from pydantic import TypeAdapter, ValidationError

            try:
                TypeAdapter(_LlamaCppRequest).validate_python({"response_format": rf})
            except ValidationError as exc:  # FastAPI: 422 {"detail": errors} with loc under "body"
                errors = [{**e, "loc": ["body", *e["loc"]]} for e in exc.errors(include_url=False)]
                return self._refuse(422, {"detail": json.loads(json.dumps(errors, default=str))})
            schema = rf.get("schema")
        elif self.rules == "llama.cpp-old" and rf is not None:
            if rf.get("type") not in ("text", "json_object"):
                return self._refuse(500, {"error": {"code": 500, "type": "server_error", "message":
                    f"response_format type must be one of \"text\" or \"json_object\", but got: {rf.get('type')}"}})
            schema = rf.get("schema")
        elif self.rules == "vllm" and rf is not None:
            schema = rf.get("json_schema", {}).get("schema")
        elif self.rules == "anthropic":  # response_format ignored: the model reads the system message
            system = " ".join(str(m["content"]) for m in body["messages"] if m["role"] == "system")
            start = system.find("{")
            schema = json.loads(system[start:]) if "JSON Schema" in system and start >= 0 else None
        content = answer(schema, prompt) if schema else f"answer: {prompt}"
        return web.json_response(chat_body(content, body["model"]))
