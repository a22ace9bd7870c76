"""What kind of failure a failed attempt was, from its HTTP status, body and headers.

One function, :func:`classify`, for every provider we support. Their error bodies differ (see
tests/support/provider_errors.py for the documented replies, each with its source):

- OpenAI, and servers copying it: ``{"error": {"message", "type", "param", "code"}}`` where ``code`` is a
  string such as ``"insufficient_quota"`` that can contradict the status (a 429 that is billing, not speed).
- xAI: ``{"code": "<gRPC status text>", "error": "<message>"}``; an incorrect API key is a 400.
- Anthropic: ``{"type": "error", "error": {"type": "overloaded_error", "message"}}``; a low credit balance
  is a 400 ``invalid_request_error``, a monthly spend cap a 429 ``rate_limit_error`` with
  ``error.details.error_code``, overload a 529.
- Ollama: ``{"error": "model \\"x\\" not found, try pulling it first"}`` natively, ``{"error": {"message",
  "type"}}`` on /v1.
- vLLM: ``{"error": {"message", "type": "NotFoundError", "param", "code": 404}}`` (older releases put the
  same fields at the top level with ``"object": "error"``); its API-key check answers ``{"error":
  "Unauthorized"}``.
- llama.cpp's server: ``{"error": {"code": 400, "message", "type": "exceed_context_size_error"}}``.
- Gemini's OpenAI-compatible endpoint: a JSON *list* holding one Google error, ``[{"error": {"code": 400,
  "message", "status": "INVALID_ARGUMENT", "details"}}]``.
- Groq: OpenAI's shape without ``param``; an unknown field is "property 'x' is unsupported".
- Google's 429 (Gemini) says "You exceeded your current quota" for a per-minute limit too: its
  ``details`` list which quotas (``QuotaFailure.violations[].quotaId``); only a per-day one is a stop.

A 400 naming a request field every row shares (``temperature`` on a reasoning model) is batch-wide: the
server would refuse every row the same way. :func:`refused_field` finds that field, given the request's.

The kinds say what the engine should do; the sets below group them. Messages are the caller's job.
This module only reads what it is given: no I/O, nothing logged, so no key can leak from here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from typing import Any, NamedTuple, cast
from urllib.parse import unquote

AUTH = "auth"                      # the key is missing, wrong or revoked
PERMISSION = "permission"          # the key works but may not do this (region, blocked team, model access)
QUOTA = "quota"                    # out of credits, spend cap, billing
NOT_FOUND = "not_found"            # no such model, or a wrong base URL / route
BAD_REQUEST = "bad_request"        # this row's request is wrong (e.g. longer than the context)
CONTENT_FILTER = "content_filter"  # this row's prompt or reply was refused by a safety filter
RATE_LIMIT = "rate_limit"          # too fast for the account's limits
OVERLOADED = "overloaded"          # the server is busy for everyone (529, 503, a full queue)
SERVER = "server"                  # the server failed (5xx, an error chunk, a gateway page)
TIMEOUT = "timeout"                # no answer in time (ours, or a gateway's 504 / 408)
CONNECTION = "connection"          # no HTTP answer at all: refused, reset, DNS
CUT = "cut"                        # a stream that ended before the reply was finished
PARAMETER = "parameter"            # a request field every row shares is refused (temperature on gpt-5)

KINDS = (AUTH, PERMISSION, QUOTA, NOT_FOUND, PARAMETER, BAD_REQUEST, CONTENT_FILTER,
         RATE_LIMIT, OVERLOADED, SERVER, TIMEOUT, CONNECTION, CUT)
BATCH_WIDE = frozenset({AUTH, PERMISSION, QUOTA, NOT_FOUND, PARAMETER})  # every other row would fail the same way: stop
WAIT = frozenset({RATE_LIMIT, OVERLOADED})                    # wait and send again; never fails the row
RETRYABLE = frozenset({SERVER, TIMEOUT, CONNECTION, CUT})      # send again, within the retry budget
ROW_ONLY = frozenset({BAD_REQUEST, CONTENT_FILTER})            # fail this row only, no retry

# A reply that came back (status 200) but is not the value schema= asked for: kinds of a row, not of an attempt.
INVALID_OUTPUT = "invalid_output"  # it does not validate: the validator's message is the row's error
REFUSAL = "refusal"                # the model refused (message.refusal)
LENGTH = "length"                  # cut by max_tokens (finish_reason 'length') before the value was whole
OUTPUT = frozenset({INVALID_OUTPUT, REFUSAL, LENGTH})
# A row never sent because its image or file could not be (on_bad_input="skip"): the row's error says why.
BAD_INPUT = "bad_input"
# The finish reasons of a reply that is there but not whole: shown and counted apart.
NOTABLE_FINISH = ("length", "content_filter")

# error.code / error.type / details.error_code values, lower-cased, that decide the kind whatever the status.
_BY_CODE = {
    # OpenAI (and servers that copy its codes)
    "invalid_api_key": AUTH,
    "insufficient_quota": QUOTA,
    "billing_hard_limit_reached": QUOTA,
    "billing_not_active": QUOTA,
    "model_not_found": NOT_FOUND,
    "unsupported_country_region_territory": PERMISSION,
    "context_length_exceeded": BAD_REQUEST,
    "content_filter": CONTENT_FILTER,
    "content_policy_violation": CONTENT_FILTER,
    "invalid_prompt": CONTENT_FILTER,  # "Invalid prompt: your prompt was flagged as potentially violating ..."
    "responsibleaipolicyviolation": CONTENT_FILTER,  # Azure OpenAI's innererror.code
    "rate_limit_exceeded": RATE_LIMIT,
    "server_is_overloaded": OVERLOADED,
    # Anthropic error.type (also used by llama.cpp and Ollama's /v1 for some of them)
    "enforced_spend_limit_reached": QUOTA,  # error.details.error_code on a 429 rate_limit_error
    "authentication_error": AUTH,
    "permission_error": PERMISSION,
    "billing_error": QUOTA,
    "not_found_error": NOT_FOUND,
    "request_too_large": BAD_REQUEST,
    "rate_limit_error": RATE_LIMIT,
    "overloaded_error": OVERLOADED,
    "timeout_error": TIMEOUT,
    # llama.cpp's server
    "exceed_context_size_error": BAD_REQUEST,
    "unavailable_error": OVERLOADED,  # 503 while the model loads
    # Service tiers with no capacity now: Groq's flex answers 498 capacity_exceeded (console.groq.com/docs/
    # flex-processing), OpenAI's flex a 429 "Resource Unavailable" (platform.openai.com/docs/guides/flex-processing)
    "capacity_exceeded": OVERLOADED,
    "resource_unavailable": OVERLOADED,
    "not_supported_error": BAD_REQUEST,  # a 501, e.g. an image sent to a text-only model
    # vLLM's exception names (create_error_response)
    "notfounderror": NOT_FOUND,
    "internalservererror": SERVER,
    "notimplementederror": BAD_REQUEST,  # a 501: this server cannot do what the row asks; retrying won't help
}

# Message phrases that decide the kind when the status and type say something vaguer. Checked in order.
_BY_MESSAGE = (
    ("incorrect api key", AUTH),                   # OpenAI 401, and xAI, which answers it with a 400
    ("credit balance is too low", QUOTA),          # Anthropic: a 400 invalid_request_error
    ("reached your specified api usage limits", QUOTA),  # Anthropic: the workspace's own cap, a 400
    ("used all available credits", QUOTA),         # xAI: a 429 (or 403) for an empty team balance
    ("run out of credits", QUOTA),                 # xAI: a 403
    ("exceeded your current quota", QUOTA),        # OpenAI's insufficient_quota text
    ("currently overloaded", OVERLOADED),          # OpenAI: "That model is currently overloaded ..."
    ("server busy", OVERLOADED),                   # Ollama's full queue: a 503
)

_BY_STATUS = {
    401: AUTH,
    402: QUOTA,
    403: PERMISSION,
    404: NOT_FOUND,
    405: NOT_FOUND,  # the method is not served here: a wrong route, not this row
    408: TIMEOUT,
    409: SERVER,     # openai-python retries it too (a lock held on the server side)
    429: RATE_LIMIT,
    498: OVERLOADED,  # Groq's flex tier: no capacity now ("fail quickly ... add jittered backoff and retries")
    501: BAD_REQUEST,  # Not Implemented: the request asks for something this server does not do
    503: OVERLOADED,
    504: TIMEOUT,
    529: OVERLOADED,
}

# Types that only say "the server failed": they decide only when there is no status to go by (an error
# chunk inside a stream); a 503 typed api_error (Ollama's /v1) is still an overload.
_GENERIC = {"server_error": SERVER, "api_error": SERVER, "service_unavailable_error": OVERLOADED}


def classify(status: int | None, body: object | None, text: str = "",
             headers: Mapping[str, str] | None = None, fields: Collection[str] = ()) -> str:
    """The kind of one failed attempt.

    ``status`` is the HTTP status, or None when there was none (an error chunk mid-stream, or no answer
    at all). ``body`` is the parsed JSON of the reply or error chunk, or None; ``text`` the raw text when
    it is not JSON (an HTML page, a plain-text line). ``headers`` are the reply's, names in any case.

    In order: a specific code or type in the body (it can contradict the status: OpenAI's 429
    ``insufficient_quota`` is billing, not speed); a telling phrase in its message (xAI's bad key is a
    400); the status (a 2xx carrying an error uses the status the body names); a generic type such as
    ``api_error``. Unknown 4xx are ``bad_request``, unknown 5xx ``server``; a stream error with nothing
    more specific is ``server``; no status and nothing to read is ``connection``. ``fields``: the
    request's fields every row shares (:func:`shared_fields`); a 400 refusing one of them is ``parameter``.
    """
    if body is None and text:
        body = _json(text)
    error = _read(body)
    named = _named_kind(error, _message(error, body, text, headers))
    if named is not None:
        return named
    status = _status(status, error)
    if fields and status in _REFUSALS and _named_field(error, fields) is not None:
        return PARAMETER
    if status is not None and not 200 <= status < 300:
        return _BY_STATUS.get(status) or (SERVER if status >= 500 else BAD_REQUEST)
    generic = next((_GENERIC[code] for code in error.codes if code in _GENERIC), None)
    return generic or (SERVER if body is not None or text else CONNECTION)


def _named_kind(error: _Error, message: str | None) -> str | None:
    """The kind the error itself names, whatever the status: by Google's quotas, a specific code or type, or
    a telling phrase in ``message``; None when it names none."""
    if error.quotas:  # Google: the quotas it names decide, whatever its message says
        return QUOTA if any("perday" in q for q in error.quotas) else RATE_LIMIT
    for code in error.codes:
        if code in _BY_CODE:
            return _BY_CODE[code]
    for phrase, kind in _BY_MESSAGE:
        if message and phrase in message:
            return kind
    return None


def _message(error: _Error, body: object | None, text: str, headers: Mapping[str, str] | None) -> str | None:
    """The error's message, lower-cased: the body's, or a plain-text reply's (an HTML page has none)."""
    if error.message is None and body is None and text and not _is_html(text, headers):
        return text.lower()  # a plain-text error line
    return error.message


def _status(status: int | None, error: _Error) -> int | None:
    """The status that counts: the reply's, or the one its body names when it has none or a 2xx."""
    return error.status if status is None or 200 <= status < 300 else status


def refused_field(status: int | None, body: object | None, text: str = "",
                  fields: Collection[str] = ()) -> str | None:
    """The shared request field that a refusal (a 400 or 422) names, or None: ``param`` where the server
    gives one (OpenAI, xAI), else the name its message quotes (Groq's "property 'x' is unsupported",
    Gemini's 'Unknown name "x"', Anthropic's "x: range: ..."). Only names in ``fields`` count."""
    if body is None and text:
        body = _json(text)
    error = _read(body)
    return _named_field(error, fields) if _status(status, error) in _REFUSALS else None


def shared_fields(body: Mapping[str, object]) -> frozenset[str]:
    """The fields of a request body that every row of the batch sends alike: all but the prompt itself."""
    return frozenset(body) - _ROW_FIELDS


def classify_finish(finish_reason: str | None, *, stream: bool) -> str | None:
    """The kind of a reply that came back with status 200 but unusable, or None when it is finished.

    ``finish_reason`` is the last one the reply (or any chunk of the stream) gave. A stream that never
    gave one was cut, even when it ended with ``data: [DONE]``: llama.cpp's server ends a running
    stream that way (the opening role chunk, then [DONE]). ``content_filter`` means the reply was
    withheld or truncated by a safety filter; OpenRouter's ``error`` means the upstream failed mid-reply.
    """
    if finish_reason == "content_filter":
        return CONTENT_FILTER
    if finish_reason == "error":
        return SERVER
    if stream and finish_reason is None:
        return CUT
    return None


_REFUSALS = (400, 422)  # the statuses a server refuses a field with (422: FastAPI-style validation)
# The fields that differ from row to row: a refusal naming them is about that row (a prompt too long).
_ROW_FIELDS = frozenset({"messages", "input", "instructions", "prompt", "model", "stream_options"})
# Names a message quotes: 'x', `x`, "x" (Groq, OpenAI, Gemini); "x: ..." at its start (Anthropic); after
# "on this model:" or "does not support parameter" (xAI, in camelCase: presencePenalty) or "argument
# supplied:" (older OpenAI-compatible servers).
_NAMED = re.compile(r"""['`"]([A-Za-z_][A-Za-z0-9_.]*)['`"]|^([A-Za-z_][A-Za-z0-9_]*):"""
                    r"""|(?:on this model:|does not support parameter|argument supplied:)\s*([A-Za-z_][A-Za-z0-9_]*)""")


def _named_field(error: _Error, fields: Collection[str]) -> str | None:
    """The first of ``fields`` that the error names, as the request spells it."""
    shared = {_plain(f): f for f in fields if f not in _ROW_FIELDS}
    names = [error.param] if error.param else []
    if error.raw_message:
        names += ["".join(groups) for groups in _NAMED.findall(error.raw_message)]
    for name in names:
        if _plain(name) in shared:
            return shared[_plain(name)]
    return None


def _plain(name: str) -> str:
    """A field name in any spelling (max_tokens, maxTokens) as one key."""
    return name.replace("_", "").lower()


def _json(text: str) -> object | None:
    try:
        return cast(object, json.loads(text))
    except ValueError:
        return None


def _is_html(text: str, headers: Mapping[str, str] | None) -> bool:
    content_type = next((v for k, v in (headers or {}).items() if k.lower() == "content-type"), "")
    return "html" in content_type.lower() or text.lstrip()[:1] == "<"


class _Error(NamedTuple):
    codes: list[str]      # lower-cased, the most specific first
    message: str | None   # lower-cased, URL-unquoted (old xAI replies were percent-encoded)
    status: int | None    # a status the body names (vLLM's and llama.cpp's "code": 404, Azure's "status")
    param: str | None = None        # the request field the error is about (OpenAI's "param")
    raw_message: str | None = None  # the message as sent (field names keep their case)
    quotas: tuple[str, ...] = ()    # Google's QuotaFailure quotaIds, lower-cased


def _read(body: object) -> _Error:
    """The codes, message and status inside an error body of any of the shapes above."""
    if isinstance(body, list) and len(body) == 1:  # Gemini's OpenAI-compatible endpoint: [{"error": ...}]
        body = body[0]
    if not isinstance(body, dict):
        return _Error([], None, None)
    inner = body.get("error")
    message: object = None
    if isinstance(inner, str):  # xAI, Ollama's native API, vLLM's key check: the message itself
        node, message = body, inner
    else:  # OpenAI-style and Anthropic: a dict; vLLM < 0.9 and llama.cpp stream errors: the top level
        node = inner if isinstance(inner, dict) else body
        message = node.get("message") or node.get("detail")  # "detail": FastAPI
    codes: list[object] = []
    choices = body.get("choices")  # Azure AI Foundry: a 400 whose body is a chat.completion cut by its filter
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        codes.append(choices[0].get("finish_reason"))
    for nested in ("details", "innererror"):  # Anthropic's spend cap; Azure's content filter
        if isinstance(node.get(nested), dict):
            codes.append(node[nested].get("error_code") or node[nested].get("code"))
    status: int | None = None
    code = node.get("code")
    if isinstance(code, int) and not isinstance(code, bool):
        status = code
    elif isinstance(code, str) and code.isdigit():
        status = int(code)
    else:
        codes.append(code)
    codes.append(node.get("type"))
    if status is None and isinstance(node.get("status"), int):
        status = node["status"]
    if status is not None and not 100 <= status < 600:
        status = None
    text = unquote(message) if isinstance(message, str) else None
    param = node.get("param")
    return _Error([c.lower() for c in codes if isinstance(c, str) and c], text.lower() if text else None, status,
                  param if isinstance(param, str) and param else None, text, _google_quotas(node.get("details")))


def _google_quotas(details: object) -> tuple[str, ...]:
    """The quotaIds of a google.rpc.QuotaFailure in an error's ``details`` list."""
    if not isinstance(details, list):
        return ()
    found = [v.get("quotaId") for d in details if isinstance(d, dict) and str(d.get("@type", "")).endswith("QuotaFailure")
             for v in d.get("violations") or () if isinstance(v, dict)]
    return tuple(q.lower() for q in found if isinstance(q, str))


class RequestFailed(Exception):
    """One attempt failed; ``kind`` (one of the kinds above) says what it means for the batch."""

    def __init__(self, message: str, kind: str, *, status: int | None = None, retry_after: float | None = None,
                 headers: Any = None, unreachable: bool = False, partial: str | None = None,
                 field: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.unreachable = unreachable  # nothing answered at all: no server, wrong host or port
        self.status = status
        self.retry_after = retry_after
        self.headers = headers
        self.partial = partial  # what arrived of a reply that was cut off
        self.field = field  # with kind PARAMETER: the request field the server refused
