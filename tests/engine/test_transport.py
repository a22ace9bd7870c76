"""The transport seam: the simulator answers the same through aiohttp and in-process; transport= is checked
before anything is sent, and the in-process simulator needs no socket and no thread."""

from __future__ import annotations

import threading

import pytest

import nbtools
from nbtools._base.errors import ConfigError
from nbtools.sim import serve, serve_in_process, shared_server


def _rows(result: nbtools.BatchResult) -> list[tuple[object, ...]]:
    return [(r.status, r.text, r.prompt_tokens, r.completion_tokens, r.finish_reason) for r in result.rows]


@pytest.mark.parametrize("stream", [False, True])
def test_the_responses_api_answers_the_same_in_process_as_over_http(stream: bool) -> None:
    prompts = ["one", "two [[sim:flaky=1]]", "three [[sim:500]]"]
    with serve(latency=0.01, latency_spread=0.0) as http, serve_in_process(latency=0.01, latency_spread=0.0) as local:
        over_http, in_process = (nbtools.batch(prompts, base_url=sim.base_url, model="m", api="responses",
                                               stream=stream, retries=1, cache=False) for sim in (http, local))
        assert _rows(in_process) == _rows(over_http)
        assert local.stats()["requests"] == http.stats()["requests"] == 5  # 1, 2 (a retry), 2 (500: retried once)


def test_transport_in_process_answers_from_the_simulator_with_no_socket_and_no_thread() -> None:
    threads = threading.active_count()
    result = nbtools.batch(["a", "b"], transport="in-process", cache=False)
    assert all(row.ok for row in result.rows)
    assert result.endpoint.host.startswith("in-process") and result.endpoint.simulated
    assert threading.active_count() == threads  # no server thread started for it
    assert shared_server(in_process=True).stats()["requests"] >= 2


def test_transport_in_process_refuses_another_server_before_sending(sim) -> None:
    with pytest.raises(ConfigError, match="transport='in-process' answers from the built-in simulator only"):
        nbtools.batch(["a"], base_url=sim.base_url, model="m", transport="in-process")
    assert sim.stats()["requests"] == 0


def test_transport_fetch_is_refused_outside_a_browser() -> None:
    with pytest.raises(ConfigError, match="transport='fetch' cannot work here"):
        nbtools.batch(["a"], transport="fetch")
