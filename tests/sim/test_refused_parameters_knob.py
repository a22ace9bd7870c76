"""The simulator's ``refuse`` knob: models that refuse a request field, as reasoning models do."""

from __future__ import annotations

import pytest

import nbtools
from nbtools._engine import failures
from nbtools.sim import SimConfig, serve


def test_a_refused_temperature_stops_the_batch_at_the_first_answers() -> None:
    with serve(refuse=("temperature",), latency=0.05, latency_spread=0.0) as sim:
        with pytest.raises(nbtools.EndpointError) as info:
            nbtools.batch([f"p{i}" for i in range(100)], base_url=sim.base_url, temperature=0.7, concurrency=10)
        assert sim.stats()["requests"] <= 11
        ok = nbtools.batch(["p1", "p2"], base_url=sim.base_url, temperature=1)  # the default is taken
    assert "does not accept 'temperature'" in str(info.value) and "-t/--temperature" in str(info.value)
    rows = info.value.result.rows
    assert {r.error_kind for r in rows if r.status == "error"} == {failures.PARAMETER}
    assert sum(r.status == "not sent" for r in rows) >= 89 and ok.texts and all(r.ok for r in ok.rows)


def test_one_model_refusing_max_tokens_gets_max_completion_tokens() -> None:
    with serve(refuse=("sim-large:max_tokens",), latency=0.01, latency_spread=0.0) as sim:
        large = nbtools.batch([f"p{i}" for i in range(20)], base_url=sim.base_url, model="sim-large", max_tokens=5,
                              concurrency=4)
        refused = sim.stats()["requests"] - 20
        small = nbtools.batch(["p"], base_url=sim.base_url, model="sim-small", max_tokens=5)
    assert all(r.ok and r.completion_tokens <= 5 for r in large.rows) and 1 <= refused <= 4
    assert small.rows[0].ok


def test_a_bad_refuse_knob_is_a_one_line_error() -> None:
    with pytest.raises(ValueError, match="refuse=.* must name request fields"):
        SimConfig(refuse=("sim-large:",))
