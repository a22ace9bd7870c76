"""What providers answer when a model refuses a request field that every row of a batch sends.

Each refusal is an ErrorReply (tests/provider_errors.py) of kind ``parameter``, with the batch options that
send the refused field and the fix the stop message must name. Sources as in provider_errors.py: a public
issue quoting the provider's reply in full, ids replaced by placeholders. The values a message echoes
(``0.7``) are the ones the options send.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from nbtools._engine.failures import PARAMETER
from tests.support.provider_errors import ANTHROPIC_HEADERS, JSON, OPENAI_HEADERS, ErrorReply, _anthropic, _openai

# Google APIs answer JSON errors with this content type (the Gemini issues below show the same body).
GOOGLE_JSON = {"content-type": "application/json; charset=UTF-8"}


@dataclass(frozen=True)
class Refusal:
    reply: ErrorReply
    options: dict[str, Any]  # batch() options that send the refused field
    field: str               # the request field as sent
    fix: str                 # what the stop message must tell the user to do

    @property
    def id(self) -> str:
        return self.reply.id


def _gemini(message: str) -> list[dict[str, Any]]:
    """Gemini's OpenAI-compatible endpoint: a JSON list holding one google.rpc error."""
    return [{"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT", "details": [
        {"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [{"description": message}]}]}}]


REFUSALS = [
    Refusal(ErrorReply(
        "openai", "temperature_unsupported_value", 400,
        _openai("Unsupported value: 'temperature' does not support 0.7 with this model. Only the default (1) "
                "value is supported.", "invalid_request_error", "unsupported_value", "temperature"),
        PARAMETER, "gpt-5 family and o-series: github.com/owndev/Open-WebUI-Functions/issues/98 and "
        "johny-b/llmcomp/issues/69 (full body quoted; the value echoed is the one sent)", OPENAI_HEADERS),
        {"temperature": 0.7}, "temperature", "leave temperature= out (magic: -t/--temperature)"),
    Refusal(ErrorReply(
        "openai", "temperature_unsupported_parameter", 400,
        _openai("Unsupported parameter: 'temperature' is not supported with this model.", "invalid_request_error",
                "unsupported_parameter", "temperature"),
        PARAMETER, "o3-mini: github.com/appatalks/eva-agent/issues/83 (full body quoted)", OPENAI_HEADERS),
        {"temperature": 0.2}, "temperature", "leave temperature= out (magic: -t/--temperature)"),
    Refusal(ErrorReply(
        "openai", "logprobs_unsupported_parameter", 400,
        _openai("Unsupported parameter: 'logprobs' is not supported with this model.", "invalid_request_error",
                "unsupported_parameter", "logprobs"),
        PARAMETER, "the same unsupported_parameter body as for temperature (eva-agent/issues/83) naming logprobs, "
        "which reasoning models refuse (UKGovernmentBEIS/inspect_ai/pull/2739); this wording not quoted in full",
        OPENAI_HEADERS, documented=False),
        {"params": {"logprobs": True}}, "logprobs", "leave 'logprobs' out of params= (magic: --params)"),
    Refusal(ErrorReply(
        "xai", "presence_penalty", 400,
        {"code": "Client specified an invalid argument", "error": "Argument not supported on this model: presencePenalty"},
        PARAMETER, "grok-3-mini: github.com/yym68686/uni-api/issues/105 (full body quoted); xAI names the field "
        "in camelCase", JSON),
        {"params": {"presence_penalty": 0.5}}, "presence_penalty",
        "leave 'presence_penalty' out of params= (magic: --params)"),
    Refusal(ErrorReply(
        "anthropic", "temperature_range", 400, _anthropic("invalid_request_error", "temperature: range: -1 or 0..1"),
        PARAMETER, "temperature above 1: github.com/anthropics/anthropic-sdk-python/issues/893 (body quoted; "
        "request_id added as on every Anthropic error). Through the OpenAI-compatible endpoint the same body is "
        "assumed; no quote of that endpoint's own reply was found", ANTHROPIC_HEADERS),
        {"temperature": 1.5}, "temperature", "leave temperature= out (magic: -t/--temperature)"),
    Refusal(ErrorReply(
        "anthropic", "temperature_and_top_p", 400,
        _anthropic("invalid_request_error", "`temperature` and `top_p` cannot both be specified for this model. "
                   "Please use only one."),
        PARAMETER, "github.com/iOfficeAI/AionUi/issues/2081 (full body quoted)", ANTHROPIC_HEADERS),
        {"temperature": 0.5, "params": {"top_p": 0.9}}, "temperature",
        "leave temperature= out (magic: -t/--temperature)"),
    Refusal(ErrorReply(
        "gemini", "unknown_field", 400, _gemini('Invalid JSON payload received. Unknown name "store": Cannot find field.'),
        PARAMETER, "generativelanguage.googleapis.com/v1beta/openai: github.com/liliMozi/openhanako/issues/394 "
        "(full list body quoted); the same shape in FuzzAnything/PromptFuzz/issues/42", GOOGLE_JSON),
        {"params": {"store": False}}, "store", "leave 'store' out of params= (magic: --params)"),
    Refusal(ErrorReply(
        "groq", "property_unsupported", 400,
        {"error": {"message": "property 'reasoning_effort' is unsupported, did you mean 'reasoning_format'?",
                   "type": "invalid_request_error"}},
        PARAMETER, "message: github.com/CherryHQ/cherry-studio/issues/1099; body shape (no param, no code): "
        "fanenr/chatbot/issues/21 and musistudio/llms/pull/64", JSON),
        {"params": {"reasoning_effort": "low"}}, "reasoning_effort",
        "leave 'reasoning_effort' out of params= (magic: --params)"),
]

# OpenAI's refusal of max_tokens on its reasoning models: not a stop, the request goes again under the new name.
MAX_TOKENS_REFUSED = ErrorReply(
    "openai", "max_tokens_unsupported_parameter", 400,
    _openai("Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' "
            "instead.", "invalid_request_error", "unsupported_parameter", "max_tokens"),
    PARAMETER, "github.com/ITSpecialist111/ai_automation_suggester/issues/38 and fish2018/YPrompt/issues/26 "
    "(full body quoted)", OPENAI_HEADERS)

# What an older OpenAI-compatible server says to the newer name (the pre-1.0 openai-python's wording for an
# argument the API does not know: github.com/openai/openai-python/issues/433).
MAX_COMPLETION_TOKENS_UNKNOWN = dataclasses.replace(
    MAX_TOKENS_REFUSED, case="max_completion_tokens_unrecognized",
    body=_openai("Unrecognized request argument supplied: max_completion_tokens", "invalid_request_error", None),
    source="message: github.com/openai/openai-python/issues/433 (for logprobs); no param, as there")
