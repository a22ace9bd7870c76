"""The transport seam: the simulator answers the same through aiohttp and in-process; transport= is checked
before anything is sent, and the in-process simulator needs no socket and no thread."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
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


def test_a_batch_api_job_runs_in_process_with_no_aiohttp_no_socket_and_no_thread(tmp_path) -> None:
    """As in a browser, where aiohttp is not installed: nbtools loaded with the browser's transports."""
    script = textwrap.dedent("""
        import asyncio, sys, threading
        sys.modules["aiohttp"] = None  # not installed
        real, sys.platform = sys.platform, "emscripten"
        import nbtools, nbtools.sim
        sys.platform = real
        nbtools.sim.shared_server(in_process=True).configure(batch_delay=0.05)
        threads = threading.active_count()
        result = asyncio.run(nbtools.abatch(["a", "b [[sim:503]]"], via="batch", transport="in-process",
                                            poll_interval=0.02))
        print([row.status for row in result], "HTTP 503" in result[1].error, result.endpoint.host,
              threading.active_count() - threads, nbtools.sim.shared_server(in_process=True).batch_stats()["uploads"])
    """)
    env = {**os.environ, "NBTOOLS_CACHE": str(tmp_path / "replies.sqlite")}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["['ok',", "'error']", "True", "in-process", "0", "1"]


def test_transport_in_process_refuses_another_server_before_sending(sim) -> None:
    with pytest.raises(ConfigError, match="transport='in-process' answers from the built-in simulator only"):
        nbtools.batch(["a"], base_url=sim.base_url, model="m", transport="in-process")
    assert sim.stats()["requests"] == 0


def test_transport_fetch_is_refused_outside_a_browser() -> None:
    with pytest.raises(ConfigError, match="transport='fetch' cannot work here"):
        nbtools.batch(["a"], transport="fetch")


def test_the_seed_recipe_runs_on_the_in_process_simulator_through_httpx() -> None:
    """Notebook 1's recipe (AsyncOpenAI + Semaphore + gather) with the in-process simulator as its httpx transport."""
    import asyncio

    import httpx
    from openai import AsyncOpenAI

    from nbtools.sim import httpx_transport

    with serve_in_process(latency=0.2, latency_spread=0.0, reply="echo") as sim:
        client = AsyncOpenAI(base_url=sim.base_url, api_key="sim",
                             http_client=httpx.AsyncClient(transport=httpx_transport(sim)))

        async def recipe() -> list[str]:
            limit = asyncio.Semaphore(5)

            async def ask(prompt: str) -> str:
                async with limit:
                    reply = await client.chat.completions.create(
                        model="sim-small", messages=[{"role": "user", "content": prompt}])
                    return reply.choices[0].message.content or ""

            return await asyncio.gather(*(ask(f"prompt {i}") for i in range(10)))

        replies = asyncio.run(asyncio.wait_for(recipe(), 10))
        assert replies == [f"prompt {i}" for i in range(10)]
        assert sim.stats()["peak_in_flight"] == 5 and sim.stats()["requests"] == 10
