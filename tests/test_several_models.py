"""Same prompts, several models: each endpoint runs on its own, and the results line up side by side.

The three-endpoint tests use independent servers (tests/error_server.py, each in a thread of its own over
real HTTP on 127.0.0.1): a fast one, a slow one and one that refuses the key with OpenAI's documented 401
body (tests/provider_errors.py, with its source). Counts come from the servers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

import nbtools
from nbtools._base.errors import ConfigError, EndpointError
from nbtools._engine.rows import CANCELLED, ERROR, NOT_SENT, OK
from nbtools._several import MultiModelResult
from tests.support import provider_errors as pe
from tests.support.error_server import ProviderServer, Script, every
from tests.support.helpers import serve_app

KEY_ENV = "NBTOOLS_MULTI_KEY"
REFUSED = next(r for r in pe.OPENAI if r.id == "openai-invalid_api_key")
N = 24


class PeakServer(ProviderServer):
    """A ProviderServer that also records the most requests it held at once."""

    def __init__(self, script: Script | None = None, latency: float = 0.005) -> None:
        inner = script or (lambda number, body: None)
        self.peak = 0

        def watched(number: int, body: dict[str, Any]) -> pe.ErrorReply | None:
            self.peak = max(self.peak, self.in_flight)  # called on arrival, once counted in flight
            return inner(number, body)

        super().__init__(watched, latency)


@pytest.fixture(autouse=True)
def fake_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, pe.FAKE_KEY)


@pytest.fixture
def serve() -> Iterator[Callable[..., tuple[PeakServer, str]]]:
    with ExitStack() as stack:

        def start(script: Script | None = None, latency: float = 0.005) -> tuple[PeakServer, str]:
            server = PeakServer(script, latency)
            return server, stack.enter_context(serve_app(server.app())) + "/v1"

        yield start


def _three(serve: Callable[..., tuple[PeakServer, str]]) -> tuple[dict[str, PeakServer], list[dict[str, Any]]]:
    fast, fast_url = serve(latency=0.01)
    slow, slow_url = serve(latency=0.15)
    refusing, refusing_url = serve(every(1, REFUSED), latency=0.01)
    items = [
        {"base_url": fast_url, "model": "fast-model", "label": "fast", "concurrency": 4, "api_key_env": KEY_ENV},
        {"base_url": slow_url, "model": "slow-model", "label": "slow", "concurrency": 3, "api_key_env": KEY_ENV},
        {"base_url": refusing_url, "provider": "openai", "model": "gpt-4o-mini", "label": "refused", "concurrency": 2,
         "api_key_env": KEY_ENV},
    ]
    return {"fast": fast, "slow": slow, "refused": refusing}, items


def test_each_endpoint_keeps_its_own_limit_and_a_refused_key_stops_only_its_own(serve, capsys) -> None:
    servers, items = _three(serve)
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


def test_rows_come_prompt_by_prompt_with_a_label_and_wide_has_a_column_per_model(serve, tmp_path) -> None:
    servers, items = _three(serve)
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


def test_when_every_endpoint_refuses_the_batch_fails_with_its_rows(serve) -> None:
    _, url_a = serve(every(1, REFUSED))
    _, url_b = serve(every(1, REFUSED))
    items = [{"base_url": url, "provider": "openai", "model": "gpt-4o-mini", "label": label, "api_key_env": KEY_ENV,
              "concurrency": 2} for label, url in (("a", url_a), ("b", url_b))]

    stopped = r"every model stopped: a stopped \(\d of its requests not sent\): .*; b stopped \("
    with pytest.raises(EndpointError, match=stopped) as caught:
        nbtools.batch(["x"] * 6, models=items, retries=0)

    assert isinstance(caught.value.result, MultiModelResult)
    assert len(caught.value.result) == 12


def test_max_cost_caps_the_whole_batch_across_models(serve) -> None:
    _, url_a = serve()
    _, url_b = serve()
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


def test_the_magic_takes_several_models_after_m(ip) -> None:
    ip.run_cell_magic("llm_batch", "-m sim:sim-small,sim:sim-tiny -o multi --no-display --cache", "one\ntwo")
    result = ip.user_ns["multi"]
    assert isinstance(result, MultiModelResult)
    assert result.labels == ["sim:sim-small", "sim:sim-tiny"] and len(result) == 4


@pytest.mark.parametrize(("models", "message"), [
    (["nope:gpt-4o"], "models item 'nope:gpt-4o': unknown provider 'nope': choose one of openai"),
    (["sim:sim-small", "sim:sim-small"], "two items are labelled 'sim:sim-small': give one a label of its own"),
    ([{"model": "m", "temp": 1}], r"models\[0\] has unknown key 'temp': an item takes model, base_url"),
    ([{"concurrency": 2}], r"models\[0\] names no endpoint"),
    ([], "must be a non-empty list"),
    (["sim:"], "must be 'provider:model'"),
    ([{"model": "m", "concurrency": 0}], r"models\[0\].concurrency=0 must be at least 1"),
])
def test_bad_models_get_a_one_line_error(models: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        nbtools.batch(["x"], models=models)
    assert "\n" not in str(caught.value)


def test_a_key_in_an_item_never_shows_in_errors_or_reprs() -> None:
    secret = "sk-multi-SECRET-0123456789"
    with pytest.raises(ConfigError) as caught:
        nbtools.batch(["x"], models=[{"model": "m", "api_key": secret, "colour": "red"}])
    assert secret not in str(caught.value)
    from nbtools._base.options import BatchOptions

    options = BatchOptions(models=[{"model": "m", "api_key": secret, "label": "m"}])
    assert secret not in repr(options)


def test_model_and_models_together_are_refused() -> None:
    with pytest.raises(ConfigError, match="model= and models= cannot be combined"):
        nbtools.batch(["x"], model="a", models=["sim:sim-small"])


def test_cancel_stops_every_model_and_keeps_what_finished(serve) -> None:
    import asyncio

    _, fast_url = serve(latency=0.01)
    _, slow_url = serve(latency=0.3)
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


def test_an_unreachable_endpoint_stops_only_itself(serve, capsys) -> None:
    import socket

    _, url = serve()
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    items = [{"base_url": url, "model": "m", "label": "up"}, {"base_url": closed, "model": "m", "label": "down"}]

    result = nbtools.batch(["a", "b", "c"], models=items, retries=0)

    assert [row.status for row in result.by_model["up"]] == [OK] * 3
    assert list(result.failures) == ["down"]
    said = "nbtools: down stopped (0 of its requests not sent; the other models went on): cannot connect"
    assert said in capsys.readouterr().err


def test_a_broken_callback_stops_every_model(serve) -> None:
    _, url_a = serve(latency=0.05)
    _, url_b = serve(latency=0.05)
    items = [{"base_url": url, "model": "m", "label": label, "concurrency": 1} for label, url in (("a", url_a), ("b", url_b))]

    def broken(row: Any) -> None:
        raise RuntimeError("the callback broke")

    with pytest.raises(RuntimeError, match="the callback broke"):
        nbtools.batch([f"p{i}" for i in range(10)], models=items, on_result=broken)
