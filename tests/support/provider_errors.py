"""What each provider really answers when a request fails: status, headers and body, as plain data.

Every reply cites where its shape and wording come from: the provider's API reference, the server's
source (repo, path, function), or a public issue quoting a real reply. Ids, dates and organisation
names in quoted replies are replaced by placeholders; echoed keys are masked the way the provider masks
them, built from FAKE_KEY. Where no documented body was found the reply is marked ``documented=False``
and kept minimal; the source line says what is missing.

Used by tests/engine/test_failures.py (classification) and meant for engine tests that serve these replies
from a local aiohttp app (``reply.raw()``, ``reply.headers``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from nbtools._engine import failures

FAKE_KEY = "sk-nbtools-FAKE-7f3e9c1d2b4a-not-a-real-key"
# How providers echo a wrong key: OpenAI keeps the first 8 and last 4 characters, xAI the first and last 2
# (the issues cited below show "sk-VKMIs****...wjh3" and "gs***tF").
OPENAI_MASKED_KEY = FAKE_KEY[:8] + "*" * (len(FAKE_KEY) - 12) + FAKE_KEY[-4:]
XAI_MASKED_KEY = FAKE_KEY[:2] + "***" + FAKE_KEY[-2:]
TEAM = "00000000-0000-0000-0000-000000000000"  # placeholder for account / team / organisation ids

JSON = {"content-type": "application/json"}
GIN_JSON = {"content-type": "application/json; charset=utf-8"}  # Ollama: gin's c.JSON
LLAMA_JSON = {"content-type": "application/json; charset=utf-8"}  # llama.cpp: MIMETYPE_JSON in server-http


@dataclass(frozen=True)
class ErrorReply:
    provider: str
    case: str
    status: int
    body: Any                   # the JSON body, or None when there is none (see ``text``)
    kind: str                   # what nbtools.failures.classify must call it
    source: str                 # where the shape and wording come from
    headers: dict[str, str] = field(default_factory=dict)
    text: str = ""              # a body that is not JSON (an HTML page), sent as is
    documented: bool = True     # False: no documented body found; the fixture is minimal

    @property
    def id(self) -> str:
        return f"{self.provider}-{self.case}"

    def raw(self) -> bytes:
        """The body bytes as the server sends them."""
        return json.dumps(self.body).encode() if self.body is not None else self.text.encode()


# -- OpenAI ------------------------------------------------------------------------------------------
# Headers: https://platform.openai.com/docs/guides/rate-limits ("Rate limits in headers": sample values
# 60 / 150000 / 59 / 149984 / 1s / 6m0s) and /docs/api-reference/debugging-requests (openai-version,
# openai-processing-ms, x-request-id; seen together in community.openai.com/t/x-ratelimit-headers-missing/935514).
# OpenAI does not document retry-after on a 429; openai-python honours retry-after-ms / retry-after when
# present (src/openai/_base_client.py, _parse_retry_after_header), so none is sent here.
OPENAI_HEADERS = {**JSON, "openai-version": "2020-10-01", "openai-processing-ms": "23",
                  "x-request-id": "req_deaa3616cbd15d33b4db96b3ba74d2b4"}
OPENAI_RATE_HEADERS = {"x-ratelimit-limit-requests": "60", "x-ratelimit-limit-tokens": "150000",
                       "x-ratelimit-remaining-requests": "59", "x-ratelimit-remaining-tokens": "149984",
                       "x-ratelimit-reset-requests": "1s", "x-ratelimit-reset-tokens": "6m0s"}


def _openai(message: str, type_: str | None, code: str | None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _openai_rate_limit(kind: str, model: str, *, limit: int, used: int, requested: int, wait: str, source: str,
                       more: str = "") -> ErrorReply:
    """OpenAI's 429 for the per-minute limit of ``kind`` ("requests" or "tokens"): its message (``more`` ends it)
    and type, and the rate-limit headers of the exhausted window (remaining: the limit less what was used)."""
    message = (f"Rate limit reached for {model} in organization org-placeholder on {kind} per min "
               f"({kind[0].upper()}PM): Limit {limit}, Used {used}, Requested {requested}. Please try again in "
               f"{wait}. Visit https://platform.openai.com/account/rate-limits to learn more.{more}")
    headers = {**OPENAI_HEADERS, **OPENAI_RATE_HEADERS, f"x-ratelimit-limit-{kind}": str(limit),
               f"x-ratelimit-remaining-{kind}": str(limit - used), f"x-ratelimit-reset-{kind}": wait}
    return ErrorReply("openai", f"rate_limit_{kind}", 429, _openai(message, kind, "rate_limit_exceeded"), failures.RATE_LIMIT,
                      source, headers)


OPENAI = [
    ErrorReply(
        "openai", "invalid_api_key", 401,
        _openai(f"Incorrect API key provided: {OPENAI_MASKED_KEY}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.", "invalid_request_error", "invalid_api_key"),
        failures.AUTH, "github.com/chatanywhere/GPT_API_free/issues/62 (full body quoted)", OPENAI_HEADERS),
    ErrorReply(
        "openai", "insufficient_quota", 429,
        _openai("You exceeded your current quota, please check your plan and billing details. For more "
                "information on this error, read the docs: "
                "https://platform.openai.com/docs/guides/error-codes/api-errors.",
                "insufficient_quota", "insufficient_quota"),
        failures.QUOTA, "github.com/OpenHands/OpenHands/issues/998; platform.openai.com/docs/guides/error-codes "
        "(429 'You exceeded your current quota')", OPENAI_HEADERS),
    _openai_rate_limit(
        "requests", "gpt-4o-mini", limit=3, used=3, requested=1, wait="20s",
        more=" You can increase your rate limit by adding a payment method to your account at "
        "https://platform.openai.com/account/billing.",
        source="github.com/feder-cr/invisible_playwright_mcp/issues/249 (full body quoted); headers: "
        "rate-limits guide, remaining set to 0 for an exhausted window"),
    _openai_rate_limit(
        "tokens", "gpt-4o", limit=30000, used=14567, requested=24754, wait="18.642s",
        source="message: github.com/semanser/codel/issues/72; type 'tokens' with code "
        "'rate_limit_exceeded': github.com/jorge-menjivar/unsaged/issues/53"),
    ErrorReply(
        "openai", "overloaded_429", 429,
        _openai("The server is currently overloaded with other requests. Sorry about that! You can retry your "
                "request, or contact us through our help center at help.openai.com if the error persists.",
                "server_error", None),
        failures.OVERLOADED, "message and type: github.com/mckaywrigley/repo-chat/issues/13 (error_type=server_error, "
        "code None); status 429: the pre-1.0 openai library raised RateLimitError for it "
        "(github.com/acheong08/ChatGPT/issues/607)", OPENAI_HEADERS),
    ErrorReply(
        "openai", "model_not_found", 404,
        _openai("The model `gpt-4o` does not exist or you do not have access to it.", "invalid_request_error",
                "model_not_found"),
        failures.NOT_FOUND, "github.com/rd-1-2022/ai-openai-helloworld/issues/9 (full body quoted)", OPENAI_HEADERS),
    ErrorReply(
        "openai", "context_length_exceeded", 400,
        _openai("This model's maximum context length is 8192 tokens. However, your messages resulted in 8227 "
                "tokens. Please reduce the length of the messages.", "invalid_request_error",
                "context_length_exceeded", "messages"),
        failures.BAD_REQUEST, "github.com/crewAIInc/crewAI-examples/issues/121 (full body quoted)", OPENAI_HEADERS),
    ErrorReply(
        "openai", "invalid_prompt", 400,
        _openai("Invalid prompt: your prompt was flagged as potentially violating our usage policy. Please try "
                "again with a different prompt: https://platform.openai.com/docs/guides/reasoning#advice-on-prompting",
                "invalid_request_error", "invalid_prompt"),
        failures.CONTENT_FILTER, "github.com/alan-turing-institute/t0-1/issues/69 (full body quoted)", OPENAI_HEADERS),
    ErrorReply(
        "openai", "content_policy_violation", 400,
        {"error": {"code": "content_policy_violation", "message": "Your request was rejected as a result of our "
                   "safety system. Your prompt may contain text that is not allowed by our safety system.",
                   "param": None, "type": "invalid_request_error"}},
        failures.CONTENT_FILTER, "github.com/songquanpeng/one-api/issues/737 (images endpoint; full body quoted)",
        OPENAI_HEADERS),
    ErrorReply(
        "openai", "azure_content_filter", 400,
        {"error": {"message": "The response was filtered due to the prompt triggering Azure OpenAI's content "
                   "management policy. Please modify your prompt and retry. To learn more about our content "
                   "filtering policies please read our documentation: https://go.microsoft.com/fwlink/?linkid=2198766",
                   "type": None, "param": "prompt", "code": "content_filter", "status": 400,
                   "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": {
                       "hate": {"filtered": False, "severity": "safe"},
                       "jailbreak": {"filtered": False, "detected": False},
                       "self_harm": {"filtered": False, "severity": "safe"},
                       "sexual": {"filtered": False, "severity": "safe"},
                       "violence": {"filtered": True, "severity": "medium"}}}}},
        failures.CONTENT_FILTER, "Azure OpenAI, OpenAI-compatible: github.com/compl-ai/compl-ai/issues/20 and "
        "github.com/openai/openai-python/issues/331 (full body quoted)", JSON),
    ErrorReply(
        "openai", "unsupported_region", 403,
        {"error": {"code": "unsupported_country_region_territory",
                   "message": "Country, region, or territory not supported", "param": None,
                   "type": "request_forbidden"}},
        failures.PERMISSION, "github.com/home-assistant/core/issues/120072 and continuedev/continue/issues/11449 "
        "(status 403, full body quoted)", OPENAI_HEADERS),
    ErrorReply(
        "openai", "server_error", 500,
        _openai("The server experienced an error while processing your request. Sorry about that! You can retry "
                "your request, or contact us through our help center at help.openai.com if the error persists.",
                "server_error", None),
        failures.SERVER, "github.com/acheong08/ChatGPT/issues/607 (full body quoted)", OPENAI_HEADERS),
]

# -- xAI ---------------------------------------------------------------------------------------------
# https://docs.x.ai/docs/key-information/debugging: "400 Bad Request ... An incorrect API key is
# supplied"; 401 no or invalid authorization header; 403 key/team lacks permission or is blocked; 404 a
# model not found; 429 rate limit. Bodies are {"code": <gRPC status text>, "error": <message>}: the
# openai SDKs print the bare string, e.g. 400 "Incorrect API key provided: gs***tF. ..." in
# continuedev/continue/issues/10778 and openai/codex/issues/1352. xAI's response headers are not
# documented; none but content-type are sent.
XAI = [
    ErrorReply(
        "xai", "incorrect_api_key", 400,
        {"code": "Client specified an invalid argument",
         "error": f"Incorrect API key provided: {XAI_MASKED_KEY}. You can obtain an API key from "
                  "https://console.x.ai."},
        failures.AUTH, "body: github.com/i-am-bee/beeai-framework/issues/447 (printed by openai-python; the message was "
        "then percent-encoded, today plain: continuedev/continue/issues/10778); status: xAI debugging page", JSON),
    ErrorReply(
        "xai", "no_credits_429", 429,
        {"error": f"Your team {TEAM} has either used all available credits or reached its monthly spending "
                  "limit. To continue making API requests, please purchase more credits or raise your spending limit."},
        failures.QUOTA, "github.com/continuedev/continue/issues/10373 (status 429 and message; the 'code' field is not "
        "shown there, so it is left out)", JSON),
    ErrorReply(
        "xai", "no_credits_403", 403,
        {"error": "You have run out of credits or need a Grok subscription. Add credits at "
                  "https://grok.com/?_s=usage or upgrade at https://grok.com/supergrok."},
        failures.QUOTA, "github.com/Wei-Shaw/sub2api/issues/4069 (403 body quoted with its 'code' redacted, so left out)",
        JSON),
    ErrorReply(
        "xai", "model_not_found", 404,
        {"code": "Some requested entity was not found",
         "error": f"The model grok-beta does not exist or your team {TEAM} does not have access to it. Please "
                  "ensure you're using the correct API key. If you believe this is a mistake, please contact "
                  "support and quote your team ID and the model name."},
        failures.NOT_FOUND, "github.com/yihong0618/bilingual_book_maker/issues/464 (full body quoted)", JSON),
    ErrorReply(
        "xai", "permission_denied", 403, None, failures.PERMISSION,
        "status from the xAI debugging page; no documented body found: minimal, no body", JSON,
        documented=False),
    ErrorReply(
        "xai", "rate_limit", 429, None, failures.RATE_LIMIT,
        "status from the xAI debugging page; no documented body or headers found: minimal, no body", JSON,
        documented=False),
]

# -- Anthropic (api.anthropic.com/v1/, also behind its OpenAI SDK compatibility layer) ----------------
# https://docs.claude.com/en/api/errors: {"type": "error", "error": {"type", "message"}, "request_id"},
# types per status (400 invalid_request_error, 401 authentication_error, 403 permission_error, 404
# not_found_error, 413 request_too_large, 429 rate_limit_error, 500 api_error, 529 overloaded_error) and
# a request-id header on every reply (example value below). Rate-limit headers:
# https://docs.claude.com/en/api/rate-limits (retry-after on a 429; anthropic-ratelimit-{requests,tokens,
# input-tokens,output-tokens}-{limit,remaining,reset}, reset as RFC 3339). Whether the OpenAI-compatible
# endpoint returns this shape or an OpenAI-style one could not be confirmed; classify handles both.
ANTHROPIC_HEADERS = {**JSON, "request-id": "req_018EeWyXxfu5pfWkrYcMdjWG"}


def _anthropic(type_: str, message: str, **extra: Any) -> dict:
    return {"type": "error", "error": {"type": type_, "message": message, **extra},
            "request_id": "req_018EeWyXxfu5pfWkrYcMdjWG"}


ANTHROPIC = [
    ErrorReply(
        "anthropic", "authentication_error", 401, _anthropic("authentication_error", "invalid x-api-key"),
        failures.AUTH, "github.com/Good-player/free-claude-api-and-anthropic/issues/14 (full body with request_id "
        "quoted); also cline/cline/issues/154", ANTHROPIC_HEADERS),
    ErrorReply(
        "anthropic", "invalid_bearer_token", 401, _anthropic("authentication_error", "Invalid bearer token"),
        failures.AUTH, "status and message: the OpenAI SDK against https://api.anthropic.com/v1 printed "
        "'401 Invalid bearer token' (anthropics/anthropic-sdk-typescript/issues/620, dnakov/anon-kode/issues/14); "
        "the envelope around it is not shown there and is assumed Anthropic's", ANTHROPIC_HEADERS,
        documented=False),
    ErrorReply(
        "anthropic", "permission_error", 403,
        _anthropic("permission_error", "Your API key does not have permission to use the specified resource."),
        failures.PERMISSION, "type: errors page; the message is the page's description of the type (no real reply found)",
        ANTHROPIC_HEADERS, documented=False),
    ErrorReply(
        "anthropic", "not_found_error", 404, _anthropic("not_found_error", "The requested resource was not found."),
        failures.NOT_FOUND, "type: errors page; the message is the page's description of the type (no real reply found)",
        ANTHROPIC_HEADERS, documented=False),
    ErrorReply(
        "anthropic", "credit_balance_too_low", 400,
        _anthropic("invalid_request_error", "Your credit balance is too low to access the Anthropic API. Please "
                   "go to Plans & Billing to upgrade or purchase credits."),
        failures.QUOTA, "github.com/anthropics/claude-code/issues/66314 (status 400, full body quoted)", ANTHROPIC_HEADERS),
    ErrorReply(
        "anthropic", "workspace_spend_limit", 400,
        _anthropic("invalid_request_error", "You have reached your specified API usage limits. You will regain "
                   "access on 2026-09-01 at 00:00 UTC."),
        failures.QUOTA, "learn.microsoft.com .../dev-proxy/concepts/anthropic-529-overloaded-error (summarising Anthropic's "
        "rate-limits page: the limit you set is a 400 invalid_request_error); wording as quoted by "
        "third-party clients", ANTHROPIC_HEADERS),
    ErrorReply(
        "anthropic", "tier_spend_limit", 429,
        _anthropic("rate_limit_error", "You have reached your API usage limits: your organization has crossed its "
                   "monthly API usage threshold, set based on your organization's API tier. You will regain "
                   "access on 2026-09-01 at 00:00 UTC.", details={"error_code": "enforced_spend_limit_reached"}),
        failures.QUOTA, "Anthropic rate-limits page as summarised on learn.microsoft.com (429 rate_limit_error, "
        "error.details.error_code enforced_spend_limit_reached, no retry-after: do not retry)", ANTHROPIC_HEADERS),
    ErrorReply(
        "anthropic", "rate_limit_error", 429,
        _anthropic("rate_limit_error", f"This request would exceed the rate limit for your organization ({TEAM}) of "
                   "1,000,000 input tokens per minute. For details, refer to: "
                   "https://docs.anthropic.com/en/api/rate-limits. "
                   "You can see the response headers for current usage. Please reduce the prompt length or the "
                   "maximum tokens requested, or try again later. You may also contact sales at "
                   "https://www.anthropic.com/contact-sales to discuss your options for a rate limit increase."),
        failures.RATE_LIMIT, "message: github.com/stackblitz/bolt.new/issues/8589; headers: rate-limits page",
        {**ANTHROPIC_HEADERS, "retry-after": "13",
         "anthropic-ratelimit-requests-limit": "4000", "anthropic-ratelimit-requests-remaining": "3999",
         "anthropic-ratelimit-requests-reset": "2026-09-01T12:00:01Z",
         "anthropic-ratelimit-input-tokens-limit": "1000000", "anthropic-ratelimit-input-tokens-remaining": "0",
         "anthropic-ratelimit-input-tokens-reset": "2026-09-01T12:00:13Z",
         "anthropic-ratelimit-output-tokens-limit": "80000", "anthropic-ratelimit-output-tokens-remaining": "80000",
         "anthropic-ratelimit-output-tokens-reset": "2026-09-01T12:00:00Z",
         "anthropic-ratelimit-tokens-limit": "1080000", "anthropic-ratelimit-tokens-remaining": "80000",
         "anthropic-ratelimit-tokens-reset": "2026-09-01T12:00:13Z"}),
    ErrorReply(
        "anthropic", "prompt_too_long", 400,
        {"type": "error", "error": {"type": "invalid_request_error",
                                    "message": "prompt is too long: 210266 tokens > 200000 maximum"}},
        failures.BAD_REQUEST, "github.com/onlook-dev/onlook/issues/1354 (full body quoted)", ANTHROPIC_HEADERS),
    ErrorReply(
        "anthropic", "request_too_large", 413,
        _anthropic("request_too_large", "Request exceeds the maximum allowed number of bytes."),
        failures.BAD_REQUEST, "type and status: errors page (sent by Cloudflare before the API); the message is the "
        "page's description", ANTHROPIC_HEADERS, documented=False),
    ErrorReply(
        "anthropic", "api_error", 500, _anthropic("api_error", "Internal server error"),
        failures.SERVER, "type and status: errors page; message not found in a real reply", ANTHROPIC_HEADERS,
        documented=False),
    ErrorReply(
        "anthropic", "overloaded_error", 529,
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        failures.OVERLOADED, "github.com/anthropics/anthropic-sdk-typescript/issues/616 (status 529, headers and body "
        "quoted)", {**ANTHROPIC_HEADERS, "x-should-retry": "true"}),
]

# -- Ollama ------------------------------------------------------------------------------------------
# Native API: ollama/ollama server/routes.go, handleScheduleError: {"error": "<text>"} with 404 for a
# missing model, 503 for a full queue (sched.go ErrMaxQueue), 400 for a missing capability. /v1 (the
# OpenAI-compatible API): middleware/openai.go, BaseWriter.writeError, wraps the same text with
# openai/openai.go NewError: type invalid_request_error (400), not_found_error (404), api_error (else);
# param and code null.
_OLLAMA_MISSING = 'model "llama3.2" not found, try pulling it first'
_OLLAMA_BUSY = "server busy, please try again.  maximum pending requests exceeded"
OLLAMA = [
    ErrorReply("ollama", "model_not_found_native", 404, {"error": _OLLAMA_MISSING}, failures.NOT_FOUND,
               "server/routes.go handleScheduleError (os.ErrNotExist)", GIN_JSON),
    ErrorReply("ollama", "model_not_found_v1", 404,
               {"error": {"message": _OLLAMA_MISSING, "type": "not_found_error", "param": None, "code": None}},
               failures.NOT_FOUND, "middleware/openai.go writeError + openai/openai.go NewError(404)", JSON),
    ErrorReply("ollama", "queue_full_native", 503, {"error": _OLLAMA_BUSY}, failures.OVERLOADED,
               "server/routes.go handleScheduleError (ErrMaxQueue, text from server/sched.go)", GIN_JSON),
    ErrorReply("ollama", "queue_full_v1", 503,
               {"error": {"message": _OLLAMA_BUSY, "type": "api_error", "param": None, "code": None}},
               failures.OVERLOADED, "middleware/openai.go writeError + openai/openai.go NewError(503) -> api_error", JSON),
    ErrorReply("ollama", "empty_messages_v1", 400,
               {"error": {"message": "[] is too short - 'messages'", "type": "invalid_request_error",
                          "param": None, "code": None}},
               failures.BAD_REQUEST, "middleware/openai.go ChatMiddleware (len(req.Messages) == 0)", JSON),
]

# -- vLLM --------------------------------------------------------------------------------------------
# vllm-project/vllm, current layout: vllm/frontend/entrypoints/serve/exception_handling/error_response.py
# create_error_response -> ErrorResponse{error: ErrorInfo{message, type, param, code}} (engine/protocol.py;
# code = the HTTP status; types BadRequestError 400, UnprocessableEntityError 422, NotFoundError 404,
# NotImplementedError 501, InternalServerError 500). Older releases (entrypoints/openai/protocol.py, e.g.
# v0.4) put the same fields at the top level with "object": "error". _check_model (serving engine): 404
# "The model `x` does not exist." param "model". vllm/entrypoints/serve/middleware/authenticate.py
# AuthenticationMiddleware: JSONResponse({"error": "Unauthorized"}, 401). The context-overflow text is a
# ValueError -> 400 BadRequestError.
VLLM = [
    ErrorReply("vllm", "model_not_found", 404,
               {"error": {"message": "The model `gpt-4o` does not exist.", "type": "NotFoundError",
                          "param": "model", "code": 404}},
               failures.NOT_FOUND, "serving engine _check_model; create_error_response / ErrorResponse", JSON),
    ErrorReply("vllm", "model_not_found_old", 404,
               {"object": "error", "message": "The model `gpt-4o` does not exist.", "type": "NotFoundError",
                "param": None, "code": 404},
               failures.NOT_FOUND, "older entrypoints/openai/serving_engine.py _check_model (top-level fields)", JSON),
    ErrorReply("vllm", "context_length", 400,
               {"error": {"message": "This model's maximum context length is 32768 tokens. However, your request "
                                     "has 65521 input tokens. Please reduce the length of the input messages.",
                          "type": "BadRequestError", "param": None, "code": 400}},
               failures.BAD_REQUEST, "message from the serving engine's input-length check; status and type as quoted in "
               "a real reply found via code search (its truncated '(parameter=...' suffix left out)", JSON),
    ErrorReply("vllm", "context_length_old", 400,
               {"object": "error", "message": "This model's maximum context length is 262144 tokens. However, "
                "your request has 372027 input tokens. Please reduce the length of the input messages. None",
                "type": "BadRequestError", "code": 400},
               failures.BAD_REQUEST, "a vLLM reply quoted inside a LiteLLM ContextWindowExceededError (code search)", JSON),
    ErrorReply("vllm", "unauthorized", 401, {"error": "Unauthorized"}, failures.AUTH,
               "vllm/entrypoints/serve/middleware/authenticate.py AuthenticationMiddleware", JSON),
    ErrorReply("vllm", "not_implemented", 501,
               {"error": {"message": "placeholder: the exception's text", "type": "NotImplementedError",
                          "param": None, "code": 501}},
               failures.BAD_REQUEST, "error_response.py create_error_response (NotImplementedError -> 501); the message "
               "is a placeholder", JSON, documented=False),
]

# -- llama.cpp server --------------------------------------------------------------------------------
# ggml-org/llama.cpp tools/server/server-common.cpp format_error_response: {"code", "message", "type"}
# with invalid_request_error 400, authentication_error 401, not_found_error 404, server_error 500,
# permission_error 403, not_supported_error 501, unavailable_error 503, exceed_context_size_error 400;
# the HTTP layer wraps it as {"error": {...}} with that status (res_error). server-task.cpp
# server_task_result_error::to_json adds n_prompt_tokens and n_ctx to a context overflow.
LLAMA_CPP = [
    ErrorReply("llama.cpp", "invalid_api_key", 401,
               {"error": {"code": 401, "message": "Invalid API Key", "type": "authentication_error"}},
               failures.AUTH, "server.cpp middleware_validate_api_key", LLAMA_JSON),
    ErrorReply("llama.cpp", "exceed_context_size", 400,
               {"error": {"code": 400, "message": "request (5000 tokens) exceeds the available context size "
                          "(4096 tokens), try increasing it", "type": "exceed_context_size_error",
                          "n_prompt_tokens": 5000, "n_ctx": 4096}},
               failures.BAD_REQUEST, "server-context.cpp (send_error ERROR_TYPE_EXCEED_CONTEXT_SIZE) and "
               "server-task.cpp server_task_result_error::to_json", LLAMA_JSON),
    ErrorReply("llama.cpp", "route_not_found", 404,
               {"error": {"code": 404, "message": "File Not Found", "type": "not_found_error"}},
               failures.NOT_FOUND, "a real reply logged in github.com/ggml-org/llama.cpp/issues/12137", LLAMA_JSON),
    ErrorReply("llama.cpp", "loading_model", 503,
               {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}},
               failures.OVERLOADED, "server.cpp middleware_server_state (SERVER_STATE_LOADING_MODEL)", LLAMA_JSON),
    ErrorReply("llama.cpp", "server_error", 500,
               {"error": {"code": 500, "message": "placeholder: the exception's text", "type": "server_error"}},
               failures.SERVER, "type and status: format_error_response (ERROR_TYPE_SERVER; the exception handler "
               "puts e.what() in the message)", LLAMA_JSON,
               documented=False),
]

# -- In front of any of them -------------------------------------------------------------------------
# nginx's built-in error page (src/http/ngx_http_special_response.c, ngx_http_error_502_page and the
# tail), which reverse proxies in front of vLLM / Ollama / llama.cpp answer with when the backend is down.
NGINX_502 = ("<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
             "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")
NGINX_504 = ("<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n"
             "<center><h1>504 Gateway Time-out</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")
NGINX_404 = ("<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n"
             "<center><h1>404 Not Found</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")
HTML = {"content-type": "text/html"}
GATEWAY = [
    ErrorReply("gateway", "nginx_502", 502, None, failures.SERVER, "ngx_http_special_response.c", HTML, NGINX_502),
    ErrorReply("gateway", "nginx_504", 504, None, failures.TIMEOUT, "ngx_http_special_response.c", HTML, NGINX_504),
    ErrorReply("gateway", "nginx_404", 404, None, failures.NOT_FOUND, "ngx_http_special_response.c (a wrong base URL)",
               HTML, NGINX_404),
    ErrorReply("gateway", "503_no_body", 503, None, failures.OVERLOADED, "RFC 9110 15.6.4: temporarily unable to handle "
               "the request; sent with no body by many proxies", {"content-length": "0"}),
]

ALL = OPENAI + XAI + ANTHROPIC + OLLAMA + VLLM + LLAMA_CPP + GATEWAY


# -- Errors inside a 200 stream (classify with status None) --------------------------------------------
@dataclass(frozen=True)
class StreamError:
    provider: str
    case: str
    event: bytes        # the raw SSE bytes of the error event
    body: Any           # the parsed payload
    kind: str
    source: str

    @property
    def id(self) -> str:
        return f"{self.provider}-{self.case}"


def _event(payload: Any, prefix: bytes = b"data: ") -> bytes:
    return prefix + json.dumps(payload).encode() + b"\n\n"


_PLACEHOLDER = "placeholder: the server's own text"
_VLLM_STREAM_ERROR = {"error": {"message": _PLACEHOLDER, "type": "BadRequestError", "param": None, "code": 400}}
_LLAMA_STREAM_ERROR = {"code": 500, "message": _PLACEHOLDER, "type": "server_error"}
_ANTHROPIC_STREAM_ERROR = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
STREAM_ERRORS = [
    StreamError("vllm", "error_chunk_400", _event(_VLLM_STREAM_ERROR), _VLLM_STREAM_ERROR, failures.BAD_REQUEST,
                "serving engine create_streaming_error_response: data: {\"error\": ErrorInfo}; the message is "
                "a placeholder"),
    StreamError("llama.cpp", "error_line", _event(_LLAMA_STREAM_ERROR, b"error: "), _LLAMA_STREAM_ERROR, failures.SERVER,
                "tools/server/server.cpp handle_completions_impl: server_sent_event(sink, \"error\", error_data) "
                "writes 'error: <format_error_response json>' (builds before the server-http split); the message "
                "is a placeholder"),
    StreamError("anthropic", "overloaded_event", b"event: error\n" + _event(_ANTHROPIC_STREAM_ERROR),
                _ANTHROPIC_STREAM_ERROR, failures.OVERLOADED,
                "Anthropic's streaming docs ('Error events'); a mid-stream overloaded_error event after a 200 is the "
                "subject of github.com/anthropics/anthropic-sdk-python/issues/1258"),
]


# -- llama.cpp streams -------------------------------------------------------------------------------
# Chunk shapes from tools/server/server-task.cpp: server_task_result_cmpl_partial::to_json_oaicompat_chat
# (the first token sends a {"role": "assistant", "content": null} delta, then content deltas) and
# server_task_result_cmpl_final::to_json_oaicompat_chat_stream (an empty delta with finish_reason, usage
# and timings); every event is "data: <json>\n\n" and the stream ends "data: [DONE]\n\n". Field order and
# the id / fingerprint / timings values follow the reply logged in ggml-org/llama.cpp/issues/12137; the
# per-chunk timings of partial chunks are left out.
def _llama_chunk(delta: dict, finish: str | None = None, **extra: Any) -> bytes:
    chunk = {"choices": [{"finish_reason": finish, "index": 0, "delta": delta}], "created": 1740866276,
             "id": "chatcmpl-eWACYYovPVwZUlX94o2w9BeOsAhfN3z7", "model": "gpt-3.5-turbo",
             "system_fingerprint": "b4764-7ad0779f", "object": "chat.completion.chunk", **extra}
    return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"


LLAMA_CPP_COMPLETE_STREAM = b"".join([
    _llama_chunk({"role": "assistant", "content": None}),
    _llama_chunk({"content": "Hello"}),
    _llama_chunk({"content": "!"}),
    _llama_chunk({}, "stop", usage={"completion_tokens": 2, "prompt_tokens": 43, "total_tokens": 45},
                 timings={"prompt_n": 43, "prompt_ms": 246.082, "prompt_per_token_ms": 5.722837209302326,
                          "prompt_per_second": 174.73850180021293, "predicted_n": 2, "predicted_ms": 0.028,
                          "predicted_per_token_ms": 0.014, "predicted_per_second": 71428.57142857142}),
    b"data: [DONE]\n\n",
])
# While another request waits, llama.cpp's server ends a running stream with only the opening role
# chunk and then [DONE]: no content, no finish_reason (observed on a real llama.cpp server); the bytes are
# the same chunk shapes as above.
LLAMA_CPP_CUT_STREAM = _llama_chunk({"role": "assistant", "content": None}) + b"data: [DONE]\n\n"
