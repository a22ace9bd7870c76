"""A batch's figures (nbtools/_engine/figures.py) from real runs on the simulator: notable finish reasons counted,
tokens/s unknown (never guessed) without usage, the serial estimate in the summary once the batch is done."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import nbtools
from nbtools.sim import SimServer
from tests.support.helpers import shown_html


@pytest.mark.parametrize("stream", [False, True])
def test_replies_stopped_by_max_tokens_are_ok_but_marked_and_counted(make_sim: Callable[..., SimServer], stream: bool) -> None:
    server = make_sim(latency=0.02)
    result = nbtools.batch(["Tell me a long story."] * 3 + ["Hi [[sim:latency=0.01]]"], base_url=server.base_url,
                           max_tokens=2, stream=stream, cache=False)
    assert all(r.ok and r.text and r.finish_reason == "length" for r in result)
    s = result.summary()
    assert s.finish_reasons == {"length": 4} and s.errors == 0
    assert "4 cut off by max_tokens (finish_reason 'length')" in str(s)
    assert repr(result).count("ok, cut by max_tokens") == 4
    assert "cut by max_tokens" in shown_html(result)


def test_no_usage_means_unknown_tokens_per_s_and_the_listed_model_is_named(make_sim: Callable[..., SimServer]) -> None:
    server = make_sim(latency=0.02, models=("local-model",))
    result = nbtools.batch([f"q{i} [[sim:nousage]]" for i in range(3)], base_url=server.base_url, cache=False)
    assert all(r.ok and r.completion_tokens is None for r in result)
    s = result.summary()
    assert s.tokens_per_s is None and s.completion_tokens is None
    assert "tokens/s unknown" in str(s) and "0 tokens/s" not in str(s)
    html = shown_html(result)
    assert "<th>tokens/s</th>" in html and "<td class='num'>unknown</td>" in html
    assert result.model == "local-model" and repr(result).startswith("BatchResult: local-model @")


