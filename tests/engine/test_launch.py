"""How a batch runs (nbtools/_engine/launch.py): with several models, one run per endpoint driven together, each with
its own limit, key, cache, repeat and Batch API job, one spending cap for all; and what ends one endpoint or all.

Against real HTTP: the endpoints of tests/support/several_servers.py, and simulators.
"""

from __future__ import annotations

from typing import Any

import pytest

import nbtools
from nbtools._base.errors import EndpointError
from nbtools._dry_run import DryRuns
from nbtools._engine.rows import CANCELLED, ERROR, NOT_SENT, OK
from nbtools._several import MultiModelResult
from tests.support import provider_errors as pe
from tests.support.error_server import every
from tests.support.several_servers import KEY_ENV, REFUSED, on_sim, three

N = 24
SUMS = [f"What is {a} + {b}?" for a, b in zip(range(11, 51), range(60, 100), strict=True)]


def test_each_endpoint_keeps_its_own_limit_and_a_refused_key_stops_only_its_own(serve_endpoint, capsys) -> None:
    servers, items = three(serve_endpoint)
    prompts = [f"prompt {i}" for i in range(N)]

    result = nbtools.batch(prompts, models=items, retries=0)

    assert isinstance(result, MultiModelResult) and result.failure is None
    assert servers["fast"].peak <= 4 and servers["slow"].peak <= 3 and servers["refused"].peak <= 2
    assert servers["fast"].peak >= 2 and servers["slow"].peak >= 2  # they did run concurrently
    assert servers["refused"].calls <= 2 + 1
    assert servers["fast"].calls == N and servers["slow"].calls == N
    for label in ("fast", "slow"):
        part = result.by_model[label]
        assert [row.status for row in part] == [OK] * N
        assert part.texts == prompts  # each server echoes the prompt back
    refused = result.by_model["refused"]
    assert {row.status for row in refused} <= {ERROR, CANCELLED, NOT_SENT}  # in flight at the stop: cancelled
    assert sum(row.status == NOT_SENT for row in refused) >= N - 3
    assert list(result.failures) == ["refused"]
    stderr = capsys.readouterr().err
    stops = [line for line in stderr.splitlines() if "stopped" in line]
    assert len(stops) == 1 and stops[0].startswith("nbtools: refused stopped (") and "refused the key" in stops[0]
    assert pe.FAKE_KEY not in stderr
    # The fast endpoint never waited for the slow one's slots.
    assert result.by_model["fast"].elapsed() < result.by_model["slow"].elapsed() / 2


def test_when_every_endpoint_refuses_the_batch_fails_with_its_rows(serve_endpoint) -> None:
    _, url_a = serve_endpoint(every(1, REFUSED))
    _, url_b = serve_endpoint(every(1, REFUSED))
    items = [{"base_url": url, "provider": "openai", "model": "gpt-4o-mini", "label": label, "api_key_env": KEY_ENV,
              "concurrency": 2} for label, url in (("a", url_a), ("b", url_b))]

    stopped = r"every model stopped: a stopped \(\d of its requests not sent\): .*; b stopped \("
    with pytest.raises(EndpointError, match=stopped) as caught:
        nbtools.batch(["x"] * 6, models=items, retries=0)

    assert isinstance(caught.value.result, MultiModelResult)
    assert len(caught.value.result) == 12


def test_max_cost_caps_the_whole_batch_across_models(serve_endpoint) -> None:
    _, url_a = serve_endpoint()
    _, url_b = serve_endpoint()
    # Each reply costs (5 + 5 tokens) at $1,000 per million = $0.01; the worst case of one is (5 + 5) too.
    items = [{"base_url": url, "model": "m", "label": label, "price": (1000, 1000), "concurrency": 1}
             for label, url in (("a", url_a), ("b", url_b))]

    result = nbtools.batch(["x"] * 10, models=items, max_cost=0.05, max_tokens=5)

    spent = result.summary().cost
    assert spent is not None and spent <= 0.05 + 1e-9
    assert sum(row.status == OK for row in result) < 10  # one cap for both, not one each
    assert result.summary().capped


def test_several_simulated_models_from_provider_prefixes(sim) -> None:
    result = nbtools.batch(["a", "b"], models=["sim:sim-small", {"provider": "sim", "model": "sim-small", "label": "again"}])
    assert result.labels == ["sim:sim-small", "again"]
    assert [row.status for row in result] == [OK] * 4
    assert all(row.model == "sim-small" for row in result)


def test_cancel_stops_every_model_and_keeps_what_finished(serve_endpoint) -> None:
    import asyncio

    _, fast_url = serve_endpoint(latency=0.01)
    _, slow_url = serve_endpoint(latency=0.3)
    items = [{"base_url": fast_url, "model": "m", "label": "fast", "concurrency": 2},
             {"base_url": slow_url, "model": "m", "label": "slow", "concurrency": 2}]

    async def main() -> MultiModelResult:
        result = nbtools.start([f"p{i}" for i in range(20)], models=items)
        while sum(row.ok for row in result.by_model["fast"]) < 20 or sum(row.ok for row in result.by_model["slow"]) < 2:
            await asyncio.sleep(0.02)
        result.cancel()
        return await result  # type: ignore[no-any-return]

    result = asyncio.run(main())
    assert result.cancelled and result.done
    assert all(row.ok for row in result.by_model["fast"])
    slow = result.by_model["slow"]
    assert 0 < sum(row.ok for row in slow) < 20 and all(row.done for row in slow)


def test_an_unreachable_endpoint_stops_only_itself(serve_endpoint, capsys) -> None:
    import socket

    _, url = serve_endpoint()
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    items = [{"base_url": url, "model": "m", "label": "up"}, {"base_url": closed, "model": "m", "label": "down"}]

    result = nbtools.batch(["a", "b", "c"], models=items, retries=0)

    assert [row.status for row in result.by_model["up"]] == [OK] * 3
    assert list(result.failures) == ["down"]
    said = "nbtools: down stopped (0 of its requests not sent; the other models went on): cannot connect"
    assert said in capsys.readouterr().err


def test_a_broken_callback_stops_every_model(serve_endpoint) -> None:
    _, url_a = serve_endpoint(latency=0.05)
    _, url_b = serve_endpoint(latency=0.05)
    items = [{"base_url": url, "model": "m", "label": label, "concurrency": 1} for label, url in (("a", url_a), ("b", url_b))]

    def broken(row: Any) -> None:
        raise RuntimeError("the callback broke")

    with pytest.raises(RuntimeError, match="the callback broke"):
        nbtools.batch([f"p{i}" for i in range(10)], models=items, on_result=broken)


def test_a_dry_run_gives_a_cost_line_per_model(sim) -> None:
    estimate = nbtools.batch(SUMS[:4], models=[on_sim(sim, "sim-mini"), on_sim(sim, "sim-pro")], max_tokens=50,
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
    models = [on_sim(sim, "sim-mini"), on_sim(sim, "sim-pro")]
    result = nbtools.batch(SUMS[:3], models=models, via="batch", poll_interval=0.1)

    assert [row.status for row in result] == [OK] * 6
    for part in result.by_model.values():
        assert part.batch_run is not None and len(part.batch_run.jobs) == 1
    again = nbtools.batch(SUMS[:3], models=models, via="batch", poll_interval=0.1)
    assert again.texts == result.texts
    assert all(row.cached for row in again)  # from each endpoint's own job, not sent again


def test_the_cache_answers_each_model_on_its_own(sim) -> None:
    models = [on_sim(sim, "sim-mini"), on_sim(sim, "sim-standard")]
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
    result = nbtools.batch(["x", "y"], models=[on_sim(sim, "a"), on_sim(sim, "b")], repeat=3)

    assert len(result) == 2 * 3 * 2
    wide = result.wide()
    assert wide.shape == (6, 3) and list(wide["prompt"]) == ["x"] * 3 + ["y"] * 3
