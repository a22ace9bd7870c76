"""Which 400s refuse a field every row shares: classification from the documented bodies alone."""

from __future__ import annotations

import pytest

from nbtools._engine import failures
from nbtools._engine.failures import BAD_REQUEST, PARAMETER, classify, refused_field, shared_fields
from tests.support import provider_errors as pe
from tests.support import provider_params as pp

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def sent(refusal: pp.Refusal) -> frozenset[str]:
    """The fields a batch with the refusal's options sends."""
    body = {**CHAT, **refusal.options.get("params", {})}
    body.update({k: v for k, v in refusal.options.items() if k != "params"})
    return shared_fields(body)


@pytest.mark.parametrize("refusal", pp.REFUSALS, ids=lambda r: r.id)
def test_each_providers_refusal_names_the_field_sent(refusal: pp.Refusal) -> None:
    reply = refusal.reply
    assert classify(reply.status, reply.body, headers=reply.headers, fields=sent(refusal)) == PARAMETER
    assert classify(reply.status, None, reply.raw().decode(), fields=sent(refusal)) == PARAMETER  # from the text
    assert refused_field(reply.status, reply.body, fields=sent(refusal)) == refusal.field


@pytest.mark.parametrize("refusal", pp.REFUSALS, ids=lambda r: r.id)
def test_a_refusal_of_a_field_not_sent_is_a_bad_request(refusal: pp.Refusal) -> None:
    reply = refusal.reply
    assert classify(reply.status, reply.body, fields=shared_fields(CHAT)) == BAD_REQUEST
    assert classify(reply.status, reply.body) == BAD_REQUEST
    assert refused_field(reply.status, reply.body, fields=shared_fields(CHAT)) is None


@pytest.mark.parametrize("reply", [r for r in pe.ALL if r.status in (400, 422)], ids=lambda r: r.id)
def test_the_other_documented_400s_keep_their_kind_with_every_field_sent(reply: pe.ErrorReply) -> None:
    """A long prompt (param 'messages'), a bad key as a 400 (xAI), a content filter: not a refused field."""
    fields = shared_fields({**CHAT, "temperature": 1, "max_tokens": 5, "top_p": 1, "stream": True, "seed": 1})
    assert classify(reply.status, reply.body, reply.text, reply.headers, fields) == reply.kind


def test_field_names_match_in_any_spelling_and_the_prompt_never_counts() -> None:
    xai = {"code": "Client specified an invalid argument", "error": "Argument not supported on this model: presencePenalty"}
    assert refused_field(400, xai, fields={"presence_penalty", "temperature"}) == "presence_penalty"
    openai = {"error": {"message": "too long", "type": "invalid_request_error", "param": "messages", "code": None}}
    assert classify(400, openai, fields=shared_fields(CHAT) | {"messages"}) == BAD_REQUEST
    assert "messages" not in shared_fields(CHAT) and "model" not in shared_fields(CHAT)


def test_a_refusal_is_batch_wide() -> None:
    assert PARAMETER in failures.BATCH_WIDE and PARAMETER in failures.KINDS
