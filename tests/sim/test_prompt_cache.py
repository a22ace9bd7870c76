"""The simulator's prompt cache: a prefix is cached once a request with it has been answered, read back in the
provider's usage shape, from a configurable minimum, until its TTL runs out; the lineup has cached-input prices."""

from __future__ import annotations

import time

import pytest

import nbtools
from nbtools.sim import SimConfig
from nbtools.sim.lineup import LINEUP

SYSTEM = " ".join(f"w{i}" for i in range(300))  # 300 words: 300 simulated tokens


def run(sim, prompts: list[str], **options) -> nbtools.BatchResult:
    return nbtools.batch(prompts, base_url=sim.base_url, system=SYSTEM, **{"model": "sim-small", **options})


def test_a_prefix_is_read_back_once_answered_until_its_ttl_runs_out(make_sim) -> None:
    sim = make_sim(latency=0.05, prompt_cache_min=256, prompt_cache_ttl=0.5)
    first = run(sim, ["a"])
    assert first[0].cached_tokens == 0
    after = run(sim, ["b", "c"], concurrency=1, stream=True)
    assert [r.cached_tokens for r in after] == [256, 256]  # the minimum, then steps of 128: 300 words hold 256
    assert sim.stats()["prompt_cache_hits"] == 2 and sim.stats()["cached_tokens"] == 512
    responses = run(sim, ["d"], api="responses")  # input_tokens_details.cached_tokens
    assert responses[0].cached_tokens == 256
    assert run(sim, ["d"], model="sim-large")[0].cached_tokens == 0  # each model has a cache of its own
    time.sleep(0.6)
    assert run(sim, ["e"])[0].cached_tokens == 0  # expired


def test_below_the_minimum_nothing_is_cached(make_sim) -> None:
    sim = make_sim(latency=0.01)  # the default minimum: 1,024
    assert [r.cached_tokens for r in run(sim, ["a", "b", "c"], concurrency=1)] == [0, 0, 0]


def test_the_warm_up_is_off_on_the_simulator_unless_asked(make_sim) -> None:
    sim = make_sim(latency=0.1, prompt_cache_min=256)
    cold = run(sim, [f"q{i}" for i in range(10)], concurrency=10)
    assert not cold.warmed_up and not any(r.cached_tokens for r in cold)
    sim.reset()  # forgets the cache too
    warm = run(sim, [f"q{i}" for i in range(10)], concurrency=10, prompt_cache_warmup=True, model="sim-pro")
    assert warm.warmed_up and sum(bool(r.cached_tokens) for r in warm) == 9
    s = warm.summary()  # sim-pro: cached input at a tenth of input
    assert s.cache_saved == pytest.approx(s.cached_tokens * (2.50 - 0.25) / 1e6)


def test_the_lineup_has_cached_input_prices_and_the_knobs_are_checked() -> None:
    assert all(model.price[2] == pytest.approx(model.price[0] / 10) for model in LINEUP.values())
    with pytest.raises(ValueError, match="prompt_cache_min"):
        SimConfig(prompt_cache_min=-1)


def test_several_models_warm_up_one_row_each(make_sim) -> None:
    sim = make_sim(latency=0.1, prompt_cache_min=256)
    result = nbtools.batch([f"q{i}" for i in range(6)], system=SYSTEM, prompt_cache_warmup=True, concurrency=6,
                           models=[{"base_url": sim.base_url, "model": "sim-small", "label": "small"},
                                   {"base_url": sim.base_url, "model": "sim-large", "label": "large"}])
    for label, part in result.by_model.items():
        assert part.warmed_up, label
    # each model's first row missed, every other row read the prefix its own warm-up left
    assert sorted(bool(r.cached_tokens) for r in result) == [False] * 2 + [True] * 10


def test_a_several_model_dry_run_estimates_each_models_saving() -> None:
    long_system = " ".join(f"w{i}" for i in range(2000))
    estimate = nbtools.dry_run([f"q{i}" for i in range(10)], models=["sim:sim-mini", "sim:sim-pro"],
                               system=long_system, prompt_cache_warmup=True)
    assert str(estimate).count("its prompt cache saves about $") == 2
