"""provider='groq' with via='batch' against a server written from Groq's own batch tutorial
(tests/groq_batch_server.py)."""

from __future__ import annotations

import pytest

import nbtools
from tests.support import provider_errors as pe
from tests.support.groq_batch_server import PREFIX, GroqBatchServer
from tests.support.helpers import serve_app, shown_html


def test_a_groq_batch_job_comes_back_in_order_with_its_usage(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROQ_API_KEY", pe.FAKE_KEY)
    server = GroqBatchServer(pe.FAKE_KEY)
    prompts = [f"question {i}" for i in range(25)]
    with serve_app(server.app()) as url:
        result = nbtools.batch(prompts, provider="groq", base_url=url + PREFIX, model="llama-3.1-8b-instant",
                               via="batch", poll_interval=0.01, max_tokens=30)
    assert result.texts == [f"answer: {p}" for p in prompts] and all(row.ok for row in result.rows)
    assert all(row.prompt_tokens == 12 and row.completion_tokens == 3 for row in result.rows)
    assert len(server.batches) == 1 and all(body.get("max_tokens") == 30 for body in server.bodies)
    assert pe.FAKE_KEY not in repr(result) and pe.FAKE_KEY not in shown_html(result)
