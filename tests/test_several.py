"""The result of several models (nbtools/_several.py): rows prompt by prompt with a label, each model's own part,
``wide()`` with a column per model (per field and model with a schema), and how often the models agree."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest

import nbtools
from nbtools.sim import SimServer
from tests.support.several_servers import on_sim, three

SCHEMA = "sentiment: positive|negative|mixed, score: int, tags: list[str]"
PROMPTS = [f"review {i}: the soup was {'great' if i % 2 else 'cold'}" for i in range(24)]


def test_rows_come_prompt_by_prompt_with_a_label_and_wide_has_a_column_per_model(serve_endpoint, tmp_path) -> None:
    servers, items = three(serve_endpoint)
    prompts = [f"prompt {i}" for i in range(5)]

    result = nbtools.batch(prompts, models=items, retries=0)

    assert len(result) == 5 * 3
    assert [(row.index, row.label) for row in result[:6]] == [
        (0, "fast"), (0, "slow"), (0, "refused"), (1, "fast"), (1, "slow"), (1, "refused")]
    frame = result.to_pandas()
    assert list(frame["label"][:3]) == ["fast", "slow", "refused"]
    assert list(frame.columns).index("label") == 0
    wide = result.wide()
    assert wide.shape == (5, 4)
    assert list(wide.columns) == ["prompt", "fast", "slow", "refused"]
    assert list(wide["fast"]) == prompts and list(wide["slow"]) == prompts
    assert wide["refused"].isna().all()
    latencies = result.wide("latency")
    assert (latencies["slow"] > latencies["fast"]).all()
    path = tmp_path / "rows.jsonl"
    assert result.to_jsonl(path) == 15
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["label"] for line in lines[:3]] == ["fast", "slow", "refused"]
    # Each model's own result: its rows and its own figures.
    fast = result.by_model["fast"].summary()
    assert (fast.total, fast.ok) == (5, 5)
    assert result.summary().total == 15


@pytest.mark.parametrize("values", ["latency", "cost", "status"])
def test_wide_takes_any_row_field(sim, values: str) -> None:
    result = nbtools.batch(["x", "y"], models=[on_sim(sim, "a"), on_sim(sim, "b")])
    wide = result.wide(values)
    assert list(wide.columns) == ["prompt", "a", "b"] and len(wide) == 2


def test_wide_refuses_a_field_rows_do_not_have(sim) -> None:
    result = nbtools.batch(["x"], models=[on_sim(sim, "a"), on_sim(sim, "b")])
    with pytest.raises(nbtools.ConfigError, match="not a row field"):
        result.wide("colour")


def _two_models(make_sim: Callable[..., SimServer]) -> list[dict[str, Any]]:
    # Two simulators with different seeds: their made-up values differ on some prompts, as two models' would.
    first, second = make_sim(latency=0.0, seed=1), make_sim(latency=0.0, seed=2)
    return [{"base_url": first.base_url, "model": "m", "label": "one"},
            {"base_url": second.base_url, "model": "m", "label": "two"}]


def test_wide_has_a_typed_column_per_field_and_model(make_sim) -> None:
    result = nbtools.batch(PROMPTS, models=_two_models(make_sim), schema=SCHEMA)
    wide = result.wide()
    assert list(wide.columns) == [("prompt", ""), ("sentiment", "one"), ("sentiment", "two"), ("score", "one"),
                                  ("score", "two"), ("tags", "one"), ("tags", "two")]
    assert len(wide) == len(PROMPTS) and list(wide.index) == list(range(len(PROMPTS)))
    assert str(wide[("score", "one")].dtype) == "Int64" and str(wide[("sentiment", "two")].dtype) == "category"
    assert wide[("score", "two")].tolist() == [row.data["score"] for row in result.by_model["two"]]
    assert list(wide["sentiment"].columns) == ["one", "two"]  # one field: the models side by side
    assert result.wide("latency").shape == (len(PROMPTS), 3)  # a row field still gives a column per model


def test_agreement_is_the_share_of_prompts_where_every_model_gave_the_same_value(make_sim) -> None:
    result = nbtools.batch(PROMPTS, models=_two_models(make_sim), schema=SCHEMA)
    agreement = result.agreement()
    one, two = result.by_model["one"].rows, result.by_model["two"].rows
    for field in ("sentiment", "score", "tags"):
        same = [json.dumps(a.data[field]) == json.dumps(b.data[field]) for a, b in zip(one, two, strict=True)]
        assert agreement[field] == pytest.approx(sum(same) / len(same))
    assert 0.0 < agreement["sentiment"] < 1.0  # the seeds made the models differ on some prompts, not all


def test_agreement_leaves_out_prompts_a_model_did_not_answer_validly(make_sim) -> None:
    models = _two_models(make_sim)
    prompts = [*PROMPTS[:4], "review 9 [[sim:invalid]]"]
    result = nbtools.batch(prompts, models=models, schema=SCHEMA)
    assert [r.error_kind for r in result.by_model["one"]][-1] == "invalid_output"
    assert result.wide()[("score", "one")].isna().tolist() == [False] * 4 + [True]
    assert isinstance(result.agreement(), pd.Series)


def test_agreement_needs_a_schema(make_sim) -> None:
    result = nbtools.batch(["hi"], models=_two_models(make_sim))
    with pytest.raises(nbtools.ConfigError, match="run the batch with schema="):
        result.agreement()
