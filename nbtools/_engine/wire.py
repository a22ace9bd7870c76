"""What goes on the wire: the request body for each API, each provider and each server's dialect.

Every rule about the form of a request lives here, so a server that wants something else is one change here:

- **The chat body** (``POST /v1/chat/completions``): the messages (the system message first), the options that
  map to request fields, ``params`` as given, ``stream_options`` when streaming.
- **The schema** (``schema=``), asked for the strongest way each endpoint supports (``FORMS``):
  OpenAI and xAI take ``response_format`` ``json_schema`` with ``strict: true`` and refuse (400) a schema that
  is not strict (platform.openai.com/docs/guides/structured-outputs, "Supported schemas"); vLLM, llama.cpp's
  server and Ollama take ``json_schema`` without ``strict`` (so does any other server); a server of the older
  dialect refuses that, and is asked once per batch ``{"type": "json_object", "schema": ...}``
  (llama-cpp-python's server, llama_cpp/server/types.py); Anthropic's OpenAI-compatible endpoint ignores
  ``response_format`` (docs.claude.com/en/api/openai-sdk), so the schema goes into the system message; its
  Message Batches take native tool use: one tool whose ``input_schema`` is the schema, ``tool_choice`` forcing it
  (docs.claude.com/en/docs/agents-and-tools/tool-use/overview).
- **The Responses API** (``POST /v1/responses``, platform.openai.com/docs/api-reference/responses): ``input``
  (the messages), ``instructions`` (the system message), ``max_output_tokens``, ``text.format`` (the schema, its
  fields one level up), and ``store: false`` always (nothing is kept at the provider).
- **A server's dialect** (``Dialect``), learnt from its refusals, each switch once per batch: the name of the
  reply bound (OpenAI's own API wants ``max_completion_tokens``, its reasoning models refuse ``max_tokens``; most
  other servers know only ``max_tokens``), ``stream_options`` (older Azure and strict proxies refuse them), the
  older schema form, and the models that answer only on /v1/responses.
- **Images and PDFs** (``images=``, ``files=``): a body holds each as a chat content part whose value is the
  Attachment itself (its hash keys the reply cache); only ``encode`` writes its bytes, as each API takes them:
  chat ``{"type": "image_url", "image_url": {"url": "data:...", "detail"}}`` and ``{"type": "file", "file":
  {"filename", "file_data": "data:application/pdf;base64,..."}}`` (platform.openai.com/docs/api-reference/chat/create);
  the Responses API's ``input_text``, ``input_image`` (``image_url``, ``detail`` required) and ``input_file``
  (``filename``, ``file_data``); Anthropic's ``{"type": "image" | "document", "source": {"type": "base64",
  "media_type", "data"}}`` or ``{"type": "url", "url"}`` (docs.claude.com/en/docs/build-with-claude/vision, /pdf-support).
- **Batch API lines**: OpenAI / xAI ``{"custom_id", "method", "url", "body"}``
  (platform.openai.com/docs/api-reference/batch/request-input); Anthropic ``{"custom_id", "params"}`` with the
  native Messages API fields (``system`` apart from ``messages``, ``max_tokens`` required;
  docs.claude.com/en/api/creating-message-batches).
"""

from __future__ import annotations

import copy
import functools
import json
from typing import TYPE_CHECKING, Any

from nbtools._base.attachments import Attachment
from nbtools._base.options import BatchOptions
from nbtools._base.prompts import Message, Prompt
from nbtools._base.schemas import Schema
from nbtools._engine import failures
from nbtools._engine.failures import RequestFailed
from nbtools._engine.replies import text_of

if TYPE_CHECKING:
    from nbtools._engine.endpoints import Endpoint

# -- how a schema is asked for, strongest first -----------------------------------------------------
STRICT = "json_schema strict"  # response_format json_schema, strict: true (OpenAI, xAI, ...)
JSON_SCHEMA = "json_schema"  # response_format json_schema without strict (vLLM, llama.cpp, Ollama)
JSON_OBJECT = "json_object + schema"  # the older dialect: {"type": "json_object", "schema": ...} (llama-cpp-python)
SYSTEM = "system message"  # the schema written into the system message (Anthropic's compatible endpoint)
TOOL = "tool use"  # one tool whose input is the schema, and the model made to call it (Anthropic's Batch API)

FORMS: dict[str, str] = {  # provider -> how it is asked; others get JSON_SCHEMA. A new provider is one line here.
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

CHAT_PATH = "/chat/completions"
RESPONSES_PATH = "/responses"
BATCH_CHAT_URL = "/v1/chat/completions"
BATCH_RESPONSES_URL = "/v1/responses"  # lines in the Responses API's format (platform.openai.com/docs/api-reference/batch)
ANTHROPIC_MAX_TOKENS = 1024  # the Messages API requires max_tokens; used when none is given
ANTHROPIC_CACHE = {"type": "ephemeral", "ttl": "1h"}  # a cache_control breakpoint kept for an hour
# What OpenAI answers on /v1/chat/completions for a model that speaks only the Responses API (a 404, "param":
# "model"): github.com/n8n-io/n8n/issues/18352 quotes the body in full.
ONLY_RESPONSES = "only supported in v1/responses"

# The two names of the reply bound: whichever a server refuses, it is asked again with the other.
_OTHER_NAME = {"max_tokens": "max_completion_tokens", "max_completion_tokens": "max_tokens"}
# Chat fields with another name (or none) on /v1/responses; any other field goes as it is.
_RESPONSES_NAMES = {"max_tokens": "max_output_tokens", "max_completion_tokens": "max_output_tokens"}
_NOT_ON_RESPONSES = frozenset({"messages", "stream_options", "n", "model"})

# Models that answered ONLY_RESPONSES, by base URL: later batches ask /v1/responses first.
_responses_only: set[tuple[str, str]] = set()


def schema_form(endpoint: Endpoint, *, batch_api: bool = False) -> str:
    """How this endpoint is asked for a schema first (a server may take only the older form: see Dialect)."""
    if batch_api and endpoint.provider == "anthropic":
        return TOOL
    return STRICT if endpoint.simulated else FORMS.get(endpoint.provider, JSON_SCHEMA)


# -- the chat body ---------------------------------------------------------------------------------
def messages(options: BatchOptions, prompt: Prompt) -> list[Message]:
    """The prompt as chat messages, with the batch's system message first unless the prompt has its own."""
    if isinstance(prompt, str):
        found: list[Message] = [{"role": "user", "content": prompt}]
    else:
        found = list(prompt)
    if options.system and not any(m.get("role") == "system" for m in found):
        found.insert(0, {"role": "system", "content": options.system})
    return found


def chat_body(options: BatchOptions, prompt: Prompt, model: str, form: str | None = None) -> dict[str, Any]:
    """The chat request for ``prompt``; with a schema, asked in ``form`` (``schema_form`` picks it per endpoint)."""
    schema = options.schema
    sent = messages(options, prompt)
    if schema is not None and form == SYSTEM:
        sent = _with_instruction(sent, instruction(schema))
    body: dict[str, Any] = {"model": model, "messages": sent}
    if options.temperature is not None:
        body["temperature"] = options.temperature
    if options.max_tokens is not None:
        body["max_tokens"] = options.max_tokens
    if options.tier is not None:
        body["service_tier"] = options.tier
    body.update(options.params)
    if schema is not None and form == TOOL:
        body.update(tool_fields(schema))
    elif schema is not None and form is not None and form != SYSTEM:
        body["response_format"] = response_format(schema, form)
    if options.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def _with_instruction(sent: list[Message], text: str) -> list[Message]:
    """The schema's instruction in the system message (added to the user's own, or as a new first one)."""
    for i, message in enumerate(sent):
        if message.get("role") == "system":
            return [*sent[:i], {**message, "content": f"{message.get('content')}\n\n{text}"}, *sent[i + 1:]]
    return [{"role": "system", "content": text}, *sent]


# -- the schema's encodings ------------------------------------------------------------------------
def response_format(schema: Schema, form: str) -> dict[str, Any] | None:
    """The request's ``response_format`` in ``form`` (None for SYSTEM and TOOL: they go elsewhere)."""
    if form == STRICT:
        return {"type": "json_schema", "json_schema": {"name": schema.name, "strict": True, "schema": strict(schema)}}
    if form == JSON_SCHEMA:
        return {"type": "json_schema", "json_schema": {"name": schema.name, "schema": schema.json_schema}}
    if form == JSON_OBJECT:
        return {"type": "json_object", "schema": schema.json_schema}
    return None


def tool_fields(schema: Schema) -> dict[str, Any]:
    """Anthropic Messages API fields that force one tool call whose input is the value."""
    return {"tools": [{"name": schema.name, "description": "Record the answer in this exact structure.",
                       "input_schema": schema.json_schema}],
            "tool_choice": {"type": "tool", "name": schema.name}}


def instruction(schema: Schema) -> str:
    """The system-message text for servers that ignore response_format."""
    return ("Reply with one JSON object and nothing else (no prose, no code fence), matching this JSON Schema:\n"
            + json.dumps(schema.json_schema, separators=(",", ":")))


@functools.lru_cache(maxsize=64)
def strict(schema: Schema) -> dict[str, Any]:
    """The schema as strict mode takes it: every object closed (additionalProperties false), every property
    required, the optional ones nullable, no defaults. Computed once per schema (every row sends it)."""
    return _strictify(copy.deepcopy(schema.json_schema))  # type: ignore[no-any-return]


def _strictify(node: Any) -> Any:
    """OpenAI's strict rules, applied in place through the whole tree ($defs included)."""
    if isinstance(node, list):
        return [_strictify(n) for n in node]
    if not isinstance(node, dict):
        return node
    node.pop("default", None)
    if "$ref" in node and len(node) > 1:  # siblings of a $ref are not allowed: keep the ref alone
        node = {"$ref": node["$ref"]}
    for key in ("items", "anyOf", "oneOf", "allOf", "$defs", "definitions"):
        if key in node:
            sub = node[key]
            named = isinstance(sub, dict) and key in ("$defs", "definitions")
            node[key] = {k: _strictify(v) for k, v in sub.items()} if named else _strictify(sub)
    if "oneOf" in node:  # strict mode takes anyOf only
        node["anyOf"] = node.pop("oneOf")
    properties = node.get("properties")
    if isinstance(properties, dict):
        _close(node, properties)
    elif node.get("type") == "object":
        node["additionalProperties"] = False
        node.setdefault("properties", {})
        node["required"] = []
    return node


def _close(node: dict[str, Any], properties: dict[str, Any]) -> None:
    """An object as strict mode wants it: every property required (the optional ones nullable), no others."""
    required = set(node.get("required", ()))
    for key, sub in list(properties.items()):
        sub = _strictify(sub)
        if key not in required and not _is_null_union(sub):
            sub = {"anyOf": [sub, {"type": "null"}]}
        properties[key] = sub
    node["required"] = list(properties)
    node["additionalProperties"] = False


def _is_null_union(node: dict[str, Any]) -> bool:
    kind = node.get("type")
    return kind == "null" or (isinstance(kind, list) and "null" in kind) or any(
        isinstance(o, dict) and o.get("type") == "null" for o in node.get("anyOf", ()))


def older_schema_form(body: dict[str, Any]) -> dict[str, Any]:
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


# -- the Responses API -----------------------------------------------------------------------------
def remember_responses_only(base_url: str, model: str) -> None:
    _responses_only.add((base_url, model))


def wants_responses(api: str, base_url: str, model: str) -> bool:
    """Does a request for ``model`` go to /v1/responses? ``api`` is the batch option: chat, responses or auto
    (chat, unless the model has answered that it speaks only the Responses API)."""
    return api == "responses" or (api == "auto" and (base_url, model) in _responses_only)


def responses_body(body: dict[str, Any]) -> dict[str, Any]:
    """A chat body as a Responses API body: system messages become ``instructions``, content parts the Responses
    API's own."""
    sent = body.get("messages") or []
    system = [text_of(m.get("content")) for m in sent if m.get("role") in ("system", "developer")]
    out: dict[str, Any] = {"model": body.get("model")}
    out["input"] = [{"role": m.get("role"), "content": _parts(m.get("content"), _responses_part)} for m in sent
                    if m.get("role") not in ("system", "developer")]
    if system:
        out["instructions"] = "\n\n".join(system)
    for key, value in body.items():
        if key == "response_format":
            out["text"] = {"format": _text_format(value)}
        elif key not in _NOT_ON_RESPONSES:
            out[_RESPONSES_NAMES.get(key, key)] = value
    out["store"] = False
    return out


def _text_format(value: Any) -> Any:
    """Chat's ``response_format`` as the Responses API's ``text.format``: the json_schema's fields one level up."""
    if isinstance(value, dict) and value.get("type") == "json_schema":
        inner = value.get("json_schema")
        return {"type": "json_schema", **(inner if isinstance(inner, dict) else {})}
    return value


# -- content parts: images and PDFs ----------------------------------------------------------------
def _parts(content: Any, part: Any) -> Any:
    """A message's content with each part as ``part`` writes it (a string content stays as it is)."""
    return [part(p) for p in content] if isinstance(content, list) else content


def _uri(value: Any) -> str:
    return value.data_uri() if isinstance(value, Attachment) else str(value)


def with_chat_parts(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with each attachment written out as chat takes it (the same body when it has none)."""
    sent = body.get("messages") or []
    if not any(isinstance(m.get("content"), list) for m in sent):
        return body
    return {**body, "messages": [{**m, "content": _parts(m.get("content"), _chat_part)} for m in sent]}


def _chat_part(part: Any) -> Any:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "image_url" and isinstance(part["image_url"].get("url"), Attachment):
        return {**part, "image_url": {**part["image_url"], "url": _uri(part["image_url"]["url"])}}
    if kind == "file" and isinstance(part["file"].get("file_data"), Attachment):
        return {**part, "file": {**part["file"], "file_data": _uri(part["file"]["file_data"])}}
    return part


def _responses_part(part: Any) -> Any:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "text":
        return {"type": "input_text", "text": part.get("text")}
    if kind == "image_url":
        image = part["image_url"]
        return {"type": "input_image", "image_url": _uri(image.get("url")), "detail": image.get("detail") or "auto"}
    if kind == "file":
        file = part["file"]
        return {"type": "input_file", "filename": file.get("filename"), "file_data": _uri(file.get("file_data"))}
    return part


def _anthropic_part(part: Any) -> Any:
    """A chat part (its attachments already written as data: URIs or URLs) as a native Messages API block."""
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "image_url":
        return {"type": "image", "source": _source(_uri(part["image_url"].get("url")))}
    if kind == "file":
        return {"type": "document", "source": _source(_uri(part["file"].get("file_data")))}
    return part


def _source(uri: str) -> dict[str, Any]:
    if not uri.startswith("data:"):
        return {"type": "url", "url": uri}
    head, _, data = uri.partition(",")
    return {"type": "base64", "media_type": head[5:].split(";")[0], "data": data}


# -- a server's dialect ----------------------------------------------------------------------------
class Dialect:
    """How one server takes a request: learnt from what it refuses, each switch once per batch."""

    def __init__(self, endpoint: Endpoint, api: str = "chat") -> None:
        self.base_url = endpoint.base_url
        self.api = api  # "chat", "responses", or "auto": chat until a model answers that it speaks only responses
        self.stream_options = True  # until the server refuses them
        self.tokens_field = endpoint.tokens_field  # the name max_tokens= is sent under
        self._tokens_renamed = False  # asked again under the other name already
        self.older_schema = False  # the server refused response_format json_schema: ask {"type": "json_object", ...}

    def on_responses(self, model: str) -> bool:
        """Does a request for ``model`` go to /v1/responses (not /v1/chat/completions)?"""
        return wants_responses(self.api, self.base_url, model)

    def encode(self, body: dict[str, Any], on_responses: bool = False) -> dict[str, Any]:
        """``body`` as this server takes it: no stream_options once refused, the schema in the form it takes, the
        reply bound under its name here; in the Responses API's form with ``on_responses``."""
        if "stream_options" in body and not self.stream_options:
            body = {k: v for k, v in body.items() if k != "stream_options"}
        if self.older_schema:
            body = older_schema_form(body)
        name = self.tokens_field
        if name != "max_tokens" and "max_tokens" in body and name not in body:
            body = {(name if k == "max_tokens" else k): v for k, v in body.items()}
        return responses_body(body) if on_responses else with_chat_parts(body)

    def learn(self, body: dict[str, Any], sent: dict[str, Any], refusal: RequestFailed, on_responses: bool) -> bool:
        """Did the server refuse something it has another form for? Then switch to it: the request goes again."""
        model = str(body.get("model"))
        if not on_responses and self.api == "auto" and ONLY_RESPONSES in str(refusal).lower():
            remember_responses_only(self.base_url, model)  # for this batch and the next
            return True
        if refusal.status in (400, 422) and "stream_options" in str(refusal) and "stream_options" in sent:
            self.stream_options = False  # this server streams without them: no usage, but it works
            return True
        if self._renamed_bound(body, sent, refusal):
            return True
        if not self.older_schema and refuses_json_schema(refusal.status, str(refusal), body):
            self.older_schema = True  # every later request is asked the old way
            return True
        return False

    def _renamed_bound(self, body: dict[str, Any], sent: dict[str, Any], refusal: RequestFailed) -> bool:
        """Did the server refuse the reply bound's name, so that this request goes again under the other?
        Switched once per batch; requests already sent under the refused name follow the switch."""
        name = refusal.field if refusal.kind == failures.PARAMETER and refusal.field in _OTHER_NAME else None
        if name is None or "max_tokens" not in body or name not in sent:
            return False
        other = _OTHER_NAME[name]
        # max_tokens is renamed only when the server names the other field; the newer name, ours, always.
        if name == self.tokens_field and not self._tokens_renamed and (name != "max_tokens" or other in str(refusal)):
            self.tokens_field, self._tokens_renamed = other, True
        return self.tokens_field != name


# -- Batch API lines -------------------------------------------------------------------------------
def anthropic_params(body: dict[str, Any], *, cache_system: bool = False) -> dict[str, Any]:
    """A chat body as native Messages API params: system messages move to ``system``; with ``cache_system``, as a
    text block whose ``cache_control`` caches it (and all before it) for an hour, the TTL for batches, whose
    requests may run far apart (docs.claude.com/en/docs/build-with-claude/prompt-caching, "1-hour cache duration";
    below the model's minimum length Anthropic skips caching silently)."""
    params = {k: v for k, v in body.items() if k != "messages"}
    system = [str(m["content"]) for m in body["messages"] if m.get("role") == "system"]
    params["messages"] = [{**m, "content": _parts(m.get("content"), _anthropic_part)} for m in body["messages"]
                          if m.get("role") != "system"]
    if system:
        text = "\n\n".join(system)
        params["system"] = [{"type": "text", "text": text, "cache_control": ANTHROPIC_CACHE}] if cache_system else text
    params.setdefault("max_tokens", ANTHROPIC_MAX_TOKENS)
    return params


def batch_line(provider_format: str, custom_id: str, body: dict[str, Any], url: str = BATCH_CHAT_URL, *,
               cache_system: bool = False) -> bytes:
    """One request of a Batch API job, as a JSONL line in the provider's format ("openai" or "anthropic")."""
    if provider_format == "anthropic":
        record: dict[str, Any] = {"custom_id": custom_id, "params": anthropic_params(body, cache_system=cache_system)}
    else:
        record = {"custom_id": custom_id, "method": "POST", "url": url, "body": body}
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
