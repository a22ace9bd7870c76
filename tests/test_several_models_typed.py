"""Several models with schema=: a column per field and model in wide(), and how often the models agree per field."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest

import nbtools
from nbtools.sim import SimServer

SCHEMA = "sentiment: positive|negative|mixed, score: int, tags: list[str]"
PROMPTS = [f"review {i}: the soup was {'great' if i % 2 else 'cold'}" for i in range(24)]


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
