"""Several models with the rest of nbtools: the simulator's lineup, dry runs, the Batch API, the cache,
repeat, --over, --compare, and the views (the grid, a figures line per model, one colour per model).

Everything runs against real simulators over HTTP on 127.0.0.1.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

import nbtools
from nbtools._compare import Comparison
from nbtools._dry_run import DryRuns
from nbtools._engine.rows import OK
from nbtools._several import MultiModelResult
from nbtools._views import grid
from nbtools.sim.lineup import LINEUP
from tests.support.helpers import shown_html

LINEUP_MODELS = ["sim:sim-mini", "sim:sim-standard", "sim:sim-pro"]
SUMS = [f"What is {a} + {b}?" for a, b in zip(range(11, 51), range(60, 100), strict=True)]


def _sim(sim: Any, name: str, **extra: Any) -> dict[str, Any]:
    return {"base_url": sim.base_url, "model": name, "label": name, **extra}


def _right(row: Any) -> bool:
    a, b = map(int, re.findall(r"-?\d+", row.prompt_text)[:2])
    return f"The answer is {a + b}." in (row.text or "")


def test_the_lineup_differs_in_speed_accuracy_length_and_price(sim) -> None:
    result = nbtools.batch(SUMS, models=[_sim(sim, name) for name in LINEUP], concurrency=40)

    assert [row.status for row in result] == [OK] * len(SUMS) * 3
    parts = result.by_model
    accuracy = {label: sum(map(_right, part)) / len(part) for label, part in parts.items()}
    assert accuracy["sim-mini"] < accuracy["sim-standard"] < accuracy["sim-pro"]
    p50 = {label: part.summary().p50 for label, part in parts.items()}
    assert p50["sim-mini"] < p50["sim-standard"] < p50["sim-pro"]  # type: ignore[operator]
    words = {label: sum(len((row.text or "").split()) for row in part) for label, part in parts.items()}
    assert words["sim-mini"] < words["sim-standard"] < words["sim-pro"]
    cost = {label: part.summary().cost for label, part in parts.items()}
    assert 0 < cost["sim-mini"] < cost["sim-standard"] < cost["sim-pro"]  # type: ignore[operator]
    assert "made-up list price of the simulated sim-pro" in (parts["sim-pro"].price_note or "")
    # The same question always gets the same answer from the same model.
    again = nbtools.batch(SUMS[:5], models=[_sim(sim, "sim-mini")])
    assert again.texts == parts["sim-mini"].texts[:5]


def test_a_dry_run_gives_a_cost_line_per_model(sim) -> None:
    estimate = nbtools.batch(SUMS[:4], models=[_sim(sim, "sim-mini"), _sim(sim, "sim-pro")], max_tokens=50,
                             dry_run=True)

    assert isinstance(estimate, DryRuns)
    assert list(estimate.by_model) == ["sim-mini", "sim-pro"]
    mini, pro = estimate.by_model["sim-mini"], estimate.by_model["sim-pro"]
    assert mini.requests == pro.requests == 4
    assert mini.cost_high is not None and pro.cost_high is not None and mini.cost_high < pro.cost_high
    text = repr(estimate)
    assert "sim-mini: 4 requests" in text and "sim-pro: 4 requests" in text
    assert sim.stats()["requests"] == 0  # nothing was sent


def test_via_batch_runs_one_job_per_endpoint_and_a_rerun_reattaches(sim) -> None:
    models = [_sim(sim, "sim-mini"), _sim(sim, "sim-pro")]
    result = nbtools.batch(SUMS[:3], models=models, via="batch", poll_interval=0.1)

    assert [row.status for row in result] == [OK] * 6
    for part in result.by_model.values():
        assert part.batch_run is not None and len(part.batch_run.jobs) == 1
    again = nbtools.batch(SUMS[:3], models=models, via="batch", poll_interval=0.1)
    assert again.texts == result.texts
    assert all(row.cached for row in again)  # from each endpoint's own job, not sent again


def test_the_cache_answers_each_model_on_its_own(sim) -> None:
    models = [_sim(sim, "sim-mini"), _sim(sim, "sim-standard")]
    first = nbtools.batch(SUMS[:4], models=models, cache=True)
    sent = sim.stats()["requests"]
    models[1]["model"] = "sim-pro"  # the second endpoint now asks another model: not in the cache
    models[1]["label"] = "sim-pro"
    second = nbtools.batch(SUMS[:4], models=models, cache=True)

    assert sent == 8
    assert all(row.cached for row in second.by_model["sim-mini"])
    assert not any(row.cached for row in second.by_model["sim-pro"])
    assert second.by_model["sim-mini"].texts == first.by_model["sim-mini"].texts
    assert sim.stats()["requests"] == 12


def test_repeat_sends_each_prompt_n_times_to_each_model(sim) -> None:
    result = nbtools.batch(["x", "y"], models=[_sim(sim, "a"), _sim(sim, "b")], repeat=3)

    assert len(result) == 2 * 3 * 2
    wide = result.wide()
    assert wide.shape == (6, 3) and list(wide["prompt"]) == ["x"] * 3 + ["y"] * 3


def test_the_magic_runs_over_a_list_for_several_models_and_compares_them(ip, sim) -> None:
    ip.user_ns["topics"] = ["cats", "dogs", "owls"]
    ip.user_ns["sim_url"] = sim.base_url
    ip.run_cell_magic("llm_batch", "--base-url {sim_url} -m sim-mini,sim-pro --over topics -o side --no-display",
                      "Tell me about {item}.")
    side = ip.user_ns["side"]
    assert isinstance(side, MultiModelResult) and side.labels == ["sim-mini", "sim-pro"]
    assert list(side.wide()["prompt"]) == ["Tell me about cats.", "Tell me about dogs.", "Tell me about owls."]

    ip.run_cell_magic("llm_batch", "--base-url {sim_url} -m sim-mini,sim-pro --compare -o both --no-display -c 3",
                      "one\ntwo\nthree")
    both = ip.user_ns["both"]
    assert isinstance(both, Comparison)
    assert isinstance(both.serial, MultiModelResult) and both.serial.concurrency == 2  # 1 per model
    assert "measured" in repr(both) and both.speedup > 1
    assert list(both.by_model()) == ["sim-mini", "sim-pro"]
    assert "\n  sim-pro: serially " in repr(both)


def test_the_grid_shows_prompts_by_models_and_escapes_replies(make_sim) -> None:
    echo = make_sim(latency=0.02, reply="echo")
    prompt = "<script>alert(1)</script> & more"
    result = nbtools.batch([prompt, "plain"], models=[_sim(echo, "sim-small"), _sim(echo, "sim-large", label="big")])

    html = shown_html(result)
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in html
    assert html.count("<tr>") >= 3 and "big" in html and "sim-small" in html
    assert grid.colour(0) in html and grid.colour(1) in html  # one colour per model, in the timeline too
    figures = grid.models_text(result, {label: part.summary() for label, part in result.by_model.items()})
    assert len(figures.splitlines()) == 2
    assert figures.startswith("sim-small: 2/2 done; p50 ") and "ttft" in figures and "cost $0.00" in figures
    rows = grid.grid_text(result).splitlines()
    assert rows[0] == "# | prompt | sim-small | big" and len(rows) == 3


def test_the_live_grid_fills_as_replies_arrive(make_sim) -> None:
    slow = make_sim(latency=0.3, reply="echo")
    models = [_sim(slow, "sim-small", concurrency=1), _sim(slow, "sim-large", concurrency=1)]

    async def watch() -> list[str]:
        result = nbtools.start(["first", "second", "third"], models=models)
        seen = []
        while not result.done:
            seen.append(grid.grid_text(result))
            await __import__("asyncio").sleep(0.1)
        return seen

    import asyncio

    seen = asyncio.run(watch())
    assert any("…" in frame for frame in seen)  # a reply on its way
    assert any("first" in frame.splitlines()[1].split(" | ", 2)[2] for frame in seen)  # then its text


def test_the_magic_shows_each_model_live_in_a_terminal(ip, sim, capsys) -> None:
    ip.user_ns["sim_url"] = sim.base_url
    ip.run_cell_magic("llm_batch", "--base-url {sim_url} -m sim-mini,sim-pro -o shown", "hello\nworld")
    err = capsys.readouterr().err
    assert "sim-mini: 2/2 done" in err and "sim-pro: 2/2 done" in err and "# | prompt | sim-mini | sim-pro" in err


@pytest.mark.parametrize("values", ["latency", "cost", "status"])
def test_wide_takes_any_row_field(sim, values: str) -> None:
    result = nbtools.batch(["x", "y"], models=[_sim(sim, "a"), _sim(sim, "b")])
    wide = result.wide(values)
    assert list(wide.columns) == ["prompt", "a", "b"] and len(wide) == 2


def test_wide_refuses_a_field_rows_do_not_have(sim) -> None:
    result = nbtools.batch(["x"], models=[_sim(sim, "a"), _sim(sim, "b")])
    with pytest.raises(nbtools.ConfigError, match="not a row field"):
        result.wide("colour")
