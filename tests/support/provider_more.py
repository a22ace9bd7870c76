"""What Gemini, OpenRouter, DeepSeek, Groq and Cerebras really send: error replies, stream events and
rate-limit headers, as plain data with their sources (the conventions of tests/provider_errors.py)."""

from __future__ import annotations

import json
from typing import Any

from nbtools._engine.failures import OVERLOADED, QUOTA, RATE_LIMIT, SERVER
from tests.support.provider_errors import JSON, ErrorReply

GOOGLE_JSON = {"content-type": "application/json; charset=UTF-8"}


def _google_429(message: str, quota_ids: list[str], retry_delay: str | None = None) -> list[dict[str, Any]]:
    """Gemini's OpenAI-compatible 429: a list holding one google.rpc error with QuotaFailure details."""
    details: list[dict[str, Any]] = [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [
            {"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests", "quotaId": q,
             "quotaDimensions": {"location": "global", "model": "gemini-2.5-flash"}} for q in quota_ids]},
        {"@type": "type.googleapis.com/google.rpc.Help", "links": [
            {"description": "Learn more about Gemini API quotas", "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]}]
    if retry_delay is not None:
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay})
    return [{"error": {"code": 429, "message": message, "status": "RESOURCE_EXHAUSTED", "details": details}}]


_GEMINI_QUOTA_TEXT = ("You exceeded your current quota, please check your plan and billing details. For more "
                      "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.")

GEMINI_PER_DAY = ErrorReply(
    "gemini", "quota_per_day", 429,
    _google_429(_GEMINI_QUOTA_TEXT, ["GenerateRequestsPerDayPerProjectPerModel-FreeTier"]),
    QUOTA, "details and message: github.com/google-gemini/gemini-cli/issues/8437 (QuotaFailure with quotaIds, "
    "Help links), trimmed to the per-day violation as in langgenius/dify/issues/19838; the list wrapping of the "
    "OpenAI-compatible endpoint: gemini-cli/issues/14811", GOOGLE_JSON)

GEMINI_PER_MINUTE = ErrorReply(
    "gemini", "rate_per_minute", 429,
    _google_429(_GEMINI_QUOTA_TEXT, ["GenerateContentInputTokensPerModelPerMinute-FreeTier",
                                     "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"], "0.05s"),
    RATE_LIMIT, "gemini-cli/issues/8437 (its two per-minute violations); RetryInfo as google.rpc defines it "
    "(retryDelay a Duration, e.g. 'Please retry in 45.578569677s' in continuedev/continue/issues/9570), "
    "shortened to 50 ms so a test waits briefly", GOOGLE_JSON)

# OpenRouter: openrouter.ai/docs/api/reference/errors-and-debugging: {"error": {"code", "message", "metadata"}},
# the HTTP status equal to error.code for a bad request or an account out of credits; any error while the model
# produces its output comes with status 200, in the body or as an SSE data event; SSE comments
# ": OPENROUTER PROCESSING" keep a queued stream open (openrouter.ai/docs/api-reference/streaming).
OPENROUTER_402 = ErrorReply(
    "openrouter", "insufficient_credits", 402,
    {"error": {"code": 402, "message": "Your account or API key has insufficient credits. Add more credits and "
                                       "retry the request."}},
    QUOTA, "shape and status: the errors page above; the message is that page's description of 402 (the live "
    "wording was not found quoted)", JSON, documented=False)

OPENROUTER_ERROR_IN_200 = ErrorReply(
    "openrouter", "error_in_200_body", 200,
    {"error": {"code": 502, "message": "Provider returned error", "metadata": {"provider_name": "placeholder"}}},
    SERVER, "shape: the errors page (an error while the model produces output, status 200, code 502 'Your chosen "
    "model is down or we received an invalid response from it'); the message is not quoted from a real reply",
    JSON, documented=False)


def openrouter_stream_error(text_before: str) -> bytes:
    """A stream that starts, then fails: OpenRouter's mid-stream error chunk (errors page, 'errors during
    streaming': the error object next to a choice whose finish_reason is 'error')."""
    head = {"id": "gen-placeholder", "object": "chat.completion.chunk", "created": 1767225600,
            "model": "openai/gpt-4o-mini", "provider": "OpenAI"}
    chunks = [b": OPENROUTER PROCESSING\n\n",
              _sse({**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": text_before},
                                         "finish_reason": None}]}),
              _sse({**head, "error": {"code": "server_error", "message": "Provider disconnected unexpectedly"},
                    "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}]})]
    return b"".join(chunks)


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


# DeepSeek: api-docs.deepseek.com/quick_start/rate_limit: while a request waits to be scheduled the connection
# stays open and the server "continuously returns empty lines (non-streaming) or SSE keep-alive comments
# (: keep-alive, streaming)"; a request not started within 30 minutes is closed.
DEEPSEEK_BLANK_LINE = b"\n"
DEEPSEEK_KEEP_ALIVE = b": keep-alive\n\n"

# Groq: console.groq.com/docs/rate-limits ("Rate Limit Headers", its example values): x-ratelimit-limit-requests is
# the requests per DAY, x-ratelimit-limit-tokens the tokens per MINUTE; resets as Go durations; retry-after on 429s.
GROQ_HEADERS = {"x-ratelimit-limit-requests": "14400", "x-ratelimit-limit-tokens": "18000",
                "x-ratelimit-remaining-requests": "14370", "x-ratelimit-remaining-tokens": "17997",
                "x-ratelimit-reset-requests": "2m59.56s", "x-ratelimit-reset-tokens": "7.66s"}

# Cerebras: inference-docs.cerebras.ai/support/rate-limits ("Rate Limit Headers"): the window is in the name;
# resets in seconds (the page's table lists these six; the values here are placeholders).
CEREBRAS_HEADERS = {"x-ratelimit-limit-requests-day": "14400", "x-ratelimit-limit-tokens-minute": "60000",
                    "x-ratelimit-remaining-requests-day": "14399", "x-ratelimit-remaining-tokens-minute": "59000",
                    "x-ratelimit-reset-requests-day": "33011.38", "x-ratelimit-reset-tokens-minute": "11.38"}

# Flex tiers with no capacity at the moment. OpenAI (platform.openai.com/docs/guides/flex-processing, "Resource
# unavailable errors"): a 429 "Resource Unavailable", not charged, to be retried with backoff; no full body is
# quoted there, so only the documented status and words are used. Groq (console.groq.com/docs/flex-processing):
# "requests will fail quickly with status 498 and error capacity_exceeded".
OPENAI_FLEX_UNAVAILABLE = ErrorReply(
    "openai", "flex_resource_unavailable", 429,
    {"error": {"message": "Resource Unavailable", "type": None, "param": None, "code": "resource_unavailable"}},
    OVERLOADED, "status and words: the flex guide above; the body's shape is OpenAI's error object, its code a guess",
    JSON, documented=False)
GROQ_FLEX_CAPACITY = ErrorReply(
    "groq", "flex_capacity_exceeded", 498,
    {"error": {"message": "Flex tier capacity exceeded. This is a known issue and we are working on it.",
               "type": "capacity_exceeded", "code": "capacity_exceeded"}},
    OVERLOADED, "status 498 and code capacity_exceeded: Groq's flex page; the message is not quoted from a real reply",
    JSON, documented=False)
