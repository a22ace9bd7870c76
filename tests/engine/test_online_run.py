"""The engine against the simulator over real HTTP: caps, order, errors, retries, cancel, streaming."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import pytest

import nbtools
from nbtools._engine.endpoints import resolve_endpoint
from nbtools.sim import SimServer
from tests.support.helpers import shown_html


def run(coro):  # each test gets a fresh loop, as a script would
    return asyncio.run(coro)


@pytest.mark.parametrize("cap", [1, 4, 25])
def test_concurrency_cap_holds_from_the_servers_side(sim: SimServer, cap: int) -> None:
    result = nbtools.batch([f"p{i}" for i in range(60)], base_url=sim.base_url, model="m", concurrency=cap)
    stats = sim.stats()
    assert stats["requests"] == 60
    assert stats["peak_in_flight"] == cap  # reached, and never above
    assert result.summary().max_concurrency == cap
    assert all(r.ok for r in result)


def test_results_come_back_in_input_order(make_sim) -> None:
    server = make_sim(latency=0.05, latency_spread=0.8, reply="echo", seed=3)  # finish order is scrambled
    prompts = [f"prompt number {i}" for i in range(40)]
    result = nbtools.batch(prompts, base_url=server.base_url, model="m", concurrency=40)
    assert [r.text for r in result] == prompts
    assert [r.index for r in result] == list(range(40))
    finish_order = sorted(result, key=lambda r: r.finished)
    assert [r.index for r in finish_order] != list(range(40))


def test_a_failing_request_does_not_affect_the_others(sim: SimServer) -> None:
    prompts = ["fine 0", "broken [[sim:500]]", "fine 2", "reset [[sim:reset]]", "fine 4"]
    result = nbtools.batch(prompts, base_url=sim.base_url, model="m", retries=1)
    assert [r.status for r in result] == ["ok", "error", "ok", "error", "ok"]
    assert "HTTP 500" in result[1].error and "after 2 attempts" in result[1].error
    assert "closed the connection" in result[3].error or "reset by peer" in result[3].error
    assert result[0].text == "fine 0" and result[4].text == "fine 4"
    s = result.summary()
    assert (s.ok, s.errors, s.retries) == (3, 2, 2)


def test_transient_faults_are_retried_to_success(sim: SimServer) -> None:
    result = nbtools.batch(["flaky [[sim:flaky=2]]"], base_url=sim.base_url, model="m", retries=2)
    assert result[0].ok and result[0].attempts == 3
    assert sim.stats()["status"] == {"503": 2, "200": 1}


def test_rate_limits_wait_for_retry_after_until_max_wait_runs_out(make_sim) -> None:
    server = make_sim(latency=0.01, retry_after=0.4, reply="echo")
    result = nbtools.batch(["limited [[sim:429]]"], base_url=server.base_url, model="m", retries=0, max_wait=1.0)
    row = result[0]
    assert row.status == "error" and "HTTP 429" in row.error and row.attempts == 4 and "max_wait=1 s" in row.error
    assert (row.error_kind, row.status_code) == ("rate_limit", 429)
    arrivals = [rec["t"] for rec in server.stats()["log"]]
    assert len(arrivals) == 4
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    assert all(0.38 <= g < 0.8 for g in gaps[:2]), gaps  # Retry-After, not the 0.5 s/1 s backoff
    assert 0.9 <= arrivals[-1] - arrivals[0] < 1.5  # the last try when max_wait is up, not later


def test_cancel_keeps_finished_rows_and_leaves_no_tasks(make_sim) -> None:
    server = make_sim(latency=0.2, reply="echo")

    async def main() -> tuple[nbtools.BatchResult, float, set]:
        result = nbtools.start([f"p{i}" for i in range(40)], base_url=server.base_url, model="m", concurrency=4)
        await asyncio.sleep(0.5)
        t = time.perf_counter()
        result.cancel()
        await result
        took = time.perf_counter() - t
        await asyncio.sleep(0)  # let finished tasks be collected
        return result, took, asyncio.all_tasks() - {asyncio.current_task()}

    result, took, leftover = run(main())
    assert took < 1.0
    assert leftover == set()
    s = result.summary()
    assert result.cancelled and 4 <= s.ok <= 12 and s.cancelled == 40 - s.ok
    assert all(r.text == f"p{r.index}" for r in result if r.ok)
    sent = server.stats()["requests"]
    time.sleep(0.3)
    assert server.stats()["requests"] == sent  # nothing is sent after the cancel
    assert server.stats()["in_flight"] == 0


def test_cancelling_the_awaiting_task_cancels_the_batch(make_sim) -> None:
    server = make_sim(latency=0.3)

    async def main() -> None:
        task = asyncio.ensure_future(nbtools.abatch("x", repeat=20, base_url=server.base_url, model="m", concurrency=2))
        await asyncio.sleep(0.45)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert asyncio.all_tasks() == {asyncio.current_task()}

    run(main())
    sent = server.stats()["requests"]
    assert sent <= 4  # two rounds of two had started; the other 16 were never sent
    time.sleep(0.4)
    assert server.stats()["requests"] == sent


def test_batch_works_inside_a_running_loop(sim: SimServer) -> None:
    # In a subprocess: making the loop re-entrant patches asyncio for the whole process.
    code = f"""
import asyncio, nbtools
async def cell():
    r = nbtools.batch(["a", "b", "c"], base_url={sim.base_url!r}, model="m")
    return [x.text for x in r]
print(asyncio.run(cell()))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['a', 'b', 'c']"


def test_streaming_gives_a_first_token_before_the_end(make_any_sim) -> None:
    server = make_any_sim(latency=0.4)
    plain = nbtools.batch(["tell me a story"], base_url=server.base_url, model="m", cache=False)
    streamed = nbtools.batch(["tell me a story"], base_url=server.base_url, model="m", stream=True, cache=False)
    row = streamed[0]
    assert row.ok and row.text == plain[0].text  # same seed and messages: same reply
    assert row.ttft is not None and row.ttft < 0.6 * row.latency
    assert row.completion_tokens and row.completion_tokens > 0


def test_changing_the_limit_mid_batch_changes_server_concurrency(make_sim) -> None:
    server = make_sim(latency=0.1)

    async def main() -> nbtools.BatchResult:
        result = nbtools.start("x", repeat=80, base_url=server.base_url, model="m", concurrency=2)
        await asyncio.sleep(0.35)
        before = server.stats()["peak_in_flight"]
        result.concurrency = 10
        await asyncio.sleep(0.25)
        server.reset()  # count from here: the new limit only
        await asyncio.sleep(0.3)
        assert before == 2
        assert server.stats()["peak_in_flight"] == 10
        result.concurrency = 3
        await asyncio.sleep(0.25)
        server.reset()
        await asyncio.sleep(0.3)
        assert server.stats()["peak_in_flight"] == 3
        return await result

    result = run(main())
    assert result.summary().ok == 80 and result.summary().max_concurrency == 10


def test_options_reach_the_request(make_sim) -> None:
    server = make_sim(latency=0.01, reply="one two three four five six seven eight")
    result = nbtools.batch(["hi"], base_url=server.base_url, model="sim-x", max_tokens=3, system="Be terse.",
                           temperature=0.2, params={"seed": 7})
    row = result[0]
    assert row.text == "one two three" and row.finish_reason == "length" and row.model == "sim-x"
    assert row.usage == {"prompt_tokens": row.prompt_tokens, "completion_tokens": 3}


def test_repeat_and_chat_message_prompts(sim: SimServer) -> None:
    chat = [{"role": "system", "content": "sys"}, {"role": "user", "content": "chat prompt"}]
    result = nbtools.batch(["a", chat], base_url=sim.base_url, model="m", repeat=3)
    assert [r.text for r in result] == ["a"] * 3 + ["chat prompt"] * 3
    assert result[3].prompt is chat and result[3].prompt_text == "chat prompt"


def test_exports(sim: SimServer, tmp_path) -> None:
    result = nbtools.batch(["x", "y"], base_url=sim.base_url, model="m")
    path = tmp_path / "out.jsonl"
    assert result.to_jsonl(path) == 2
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["text"] for line in lines] == ["x", "y"] and lines[0]["latency"] > 0
    frame = result.to_pandas()
    assert list(frame["text"]) == ["x", "y"] and {"ttft", "queue_wait", "attempts"} <= set(frame.columns)


def test_hostile_replies_are_escaped_in_html(sim: SimServer) -> None:
    evil = "<script>alert(1)</script><img src=x onerror=alert(2)></table>"
    result = nbtools.batch([evil], base_url=sim.base_url, model="m")
    html = shown_html(result)
    assert result[0].text == evil
    assert "<script>" not in html and "<img" not in html and "onerror=alert(2)>" not in html
    assert "&lt;script&gt;" in html
    assert evil in repr(result) or "<script>alert(1)" in repr(result)


def test_an_endpoint_with_nothing_listening_stops_the_batch_at_once() -> None:
    t = time.perf_counter()
    with pytest.raises(nbtools.EndpointError, match="cannot connect to 127.0.0.1:9: is the server running") as info:
        nbtools.batch([f"p{i}" for i in range(200)], base_url="http://127.0.0.1:9/v1", model="m", retries=1, cache=False)
    assert time.perf_counter() - t < 3  # not 200 rows of retries
    result = info.value.result
    assert result is not None and result.failure is info.value and not result.cancelled
    assert result.summary().errors >= 1 and result.summary().ok == 0


@pytest.mark.parametrize(
    ("prompts", "options", "needle"),
    [
        ([], {}, "prompts is empty"),
        (["x"], {"concurrency": 0}, "concurrency=0"),
        (["x"], {"concurrency": -3}, "concurrency=-3"),
        (["x"], {"provider": "nope"}, "unknown provider 'nope'"),
        (["x"], {"provider": "xai"}, "XAI_API_KEY"),
        (["x", 42], {}, "prompt 1 is int"),
        (["x", ""], {}, "prompt 1 is empty"),
        (["x"], {"temperature": 5}, "temperature=5"),
        (["x"], {"params": {"model": "y"}}, "params sets model"),
        (["x"], {"api_key_env": "sk-abc def"}, "api_key_env="),
        (["x"], {"colour": "red"}, "colour"),
        (["x"], {"base_url": "localhost:8000"}, "base_url="),
        (["x"], {"params": {"seed": object()}}, "params cannot be sent as JSON"),
        (["x"], {"rpm": -1}, "rpm=-1"),
        (["x"], {"cache": "yes"}, "cache="),
        (["x"], {"stream": "yes"}, "stream='yes' must be True or False"),
        (["x"], {"base_url": 5}, "base_url must be a string"),
        (["x"], {"base_url": "http://"}, "with a host"),
        (["x"], {"api_key_env": 5}, "api_key_env is not an environment variable name"),
        (["x"], {"on_result": 5}, "on_result=5 must be a function"),
        ({"x": 1}, {}, "is a dict"),
    ],
)
def test_bad_input_names_the_option_and_the_fix(monkeypatch, prompts, options, needle) -> None:
    monkeypatch.delenv("XAI_API_KEY", raising=False)
    with pytest.raises(nbtools.ConfigError) as info:
        nbtools.batch(prompts, **options)
    message = str(info.value)
    assert needle in message and ":" in message and "\n" not in message


def test_public_api_is_listed() -> None:
    for name in nbtools.__all__:
        assert hasattr(nbtools, name), name


def test_ctrl_c_in_a_script_keeps_the_finished_rows(make_sim) -> None:
    # Ctrl-C as a terminal gives it: a script started where SIGINT is ignored (e.g. under a background job of a
    # shell script, as this test may be) inherits that and gets no KeyboardInterrupt at all. It is pressed once 8
    # rows have finished, not at a set time (a busy machine may start the batch late), from another thread, so it
    # lands wherever the batch is then.
    server = make_sim(latency=0.3)
    code = f"""
import os, signal, threading, time, nbtools
signal.signal(signal.SIGINT, signal.default_int_handler)
eight, pressed, finished = threading.Event(), [], []
def press():
    eight.wait()
    pressed.append(time.perf_counter())
    os.kill(os.getpid(), signal.SIGINT)
threading.Thread(target=press, daemon=True).start()
def on_result(row):
    finished.append(row)
    if len(finished) == 8:
        eight.set()
try:
    nbtools.batch("x", repeat=40, base_url={server.base_url!r}, model="m", concurrency=4, on_result=on_result)
except nbtools.BatchInterrupted as e:
    s = e.result.summary()
    print(round(time.perf_counter() - pressed[0], 2), s.ok, s.cancelled, all(r.text for r in e.result if r.ok))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    took, ok, cancelled, texts = out.stdout.split()
    # Every row finished before the press is kept with its reply, the rest cancelled, at once.
    assert float(took) < 1.0 and int(ok) >= 8 and int(ok) + int(cancelled) == 40 and texts == "True"
    sent = server.stats()["requests"]
    time.sleep(0.4)
    assert server.stats()["requests"] == sent <= int(ok) + 4  # never more out than the finished ones and 4 in flight


def test_cancel_before_the_batch_has_started(sim: SimServer) -> None:
    async def main() -> nbtools.BatchResult:
        result = nbtools.start(["a", "b"], base_url=sim.base_url, model="m")
        result.cancel()  # before the batch's task has run at all
        return await asyncio.wait_for(result, 2)

    result = run(main())
    assert result.done and result.cancelled and [r.status for r in result] == ["cancelled", "cancelled"]


def test_a_second_cancel_while_shutting_down_still_ends_the_batch(make_sim) -> None:
    server = make_sim(latency=0.3)

    async def main() -> nbtools.BatchResult:
        result = nbtools.start([f"p{i}" for i in range(8)], base_url=server.base_url, model="m", concurrency=4)
        await asyncio.sleep(0.1)
        result.cancel()
        await asyncio.sleep(0)
        result.cancel()
        return await asyncio.wait_for(result, 2)

    assert run(main()).cancelled


def test_a_broken_on_result_callback_fails_the_batch_and_says_why(sim: SimServer) -> None:
    def broken(row: nbtools.RequestResult) -> None:
        raise ValueError("callback bug")

    async def main() -> nbtools.BatchResult:
        result = nbtools.start([f"p{i}" for i in range(5)], base_url=sim.base_url, model="m", on_result=broken)
        with pytest.raises(ValueError, match="callback bug"):
            await result  # raises what stopped the batch, as abatch does
        return result

    result = run(main())
    assert result.done and not result.cancelled and isinstance(result.failure, ValueError)
    assert "callback bug" in repr(result) and "callback bug" in shown_html(result)


def test_list_shaped_message_content_is_joined(make_sim) -> None:
    from aiohttp import web

    from tests.support.helpers import serve_post

    async def chat(request: web.Request) -> web.Response:
        parts = [{"type": "text", "text": "Hello "}, {"type": "text", "text": "world"}]
        return web.json_response({"model": "m", "choices": [{"message": {"role": "assistant", "content": parts},
                                                               "finish_reason": "stop"}]})

    with serve_post("/v1/chat/completions", chat) as url:
        result = nbtools.batch(["hi"], base_url=url + "/v1", model="m", cache=False)
    assert result[0].ok and result[0].text == "Hello world"


def test_auto_concurrency_gives_up_on_an_absurd_retry_after(make_sim) -> None:
    server = make_sim(latency=0.01, retry_after=3600)
    t = time.perf_counter()
    result = nbtools.batch(["x [[sim:429]]"], base_url=server.base_url, model="m", concurrency="auto", retries=1)
    assert time.perf_counter() - t < 5
    assert result[0].status == "error" and "asked to wait 3600 s" in result[0].error


def test_endpoint_host_hides_credentials_and_a_pasted_key_is_not_echoed() -> None:
    endpoint = resolve_endpoint(base_url="http://user:hunter2@example.test:8080/v1")
    assert endpoint.host == "example.test:8080" and "hunter2" not in repr(endpoint)
    with pytest.raises(nbtools.ConfigError) as info:
        resolve_endpoint(api_key_env="sk-proj-abc123-pasted-by-mistake")
    assert "pasted" not in str(info.value) and "NAME of the variable" in str(info.value)
    with pytest.raises(nbtools.ConfigError) as info:  # a key that looks like a name is not repeated either
        resolve_endpoint(provider="openai", api_key_env="gsk_pastedByMistake123")
    assert "pasted" not in str(info.value) and "named by api_key_env is not set" in str(info.value)
    with pytest.raises(nbtools.ConfigError) as info:
        resolve_endpoint(base_url="ftp://user:hunter2@example.test/v1")
    assert "hunter2" not in str(info.value) and "ftp://example.test/v1" in str(info.value)


def test_servers_that_are_not_openai_compatible_are_named_as_such() -> None:
    from aiohttp import web

    from tests.support.helpers import serve_app

    async def page(request: web.Request) -> web.Response:
        return web.Response(status=404, text="<!DOCTYPE html><html><body><h1>Not here</h1></body></html>",
                            content_type="text/html")

    async def odd_models(request: web.Request) -> web.Response:
        return web.json_response(["not", "a", "model", "list"])

    app = web.Application()
    app.router.add_get("/v1/models", odd_models)
    app.router.add_route("*", "/{tail:.*}", page)
    with serve_app(app) as url:
        with pytest.raises(nbtools.EndpointError) as info:  # no model given: /v1/models is asked
            nbtools.batch(["hi"], base_url=url + "/v1", cache=False)
        assert "did not answer with an OpenAI model list" in str(info.value) and "pass model=" in str(info.value)
        with pytest.raises(nbtools.EndpointError) as stopped:  # a 404 stops the batch: every row would get it
            nbtools.batch(["hi", "there"], base_url=url + "/v1", model="m", concurrency=1, cache=False)
    assert "not an OpenAI error" in str(stopped.value) and "<" not in str(stopped.value)
    result = stopped.value.result
    assert result is not None and [r.status for r in result] == ["error", "not sent"]
    error = result[0].error
    assert error.startswith("HTTP 404") and "not an OpenAI error" in error and "<" not in error


def test_a_server_that_never_answers_times_out_with_a_message() -> None:
    import socket

    with socket.socket() as silent:  # accepts connections (the kernel's backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/v1"
        with pytest.raises(nbtools.EndpointError, match=r"did not answer within 0.5 s"):
            nbtools.batch(["hi"], base_url=url, timeout=0.5, cache=False)
        result = nbtools.batch(["hi"], base_url=url, model="m", timeout=0.5, retries=0, cache=False)
    assert result[0].error == "timed out after 0.5 s"


def test_a_key_echoed_by_the_server_is_redacted_before_it_is_cut_or_kept() -> None:
    import base64

    from aiohttp import web

    from tests.support.helpers import serve_post

    key = "sk-FAKE-canary-1234567890"

    async def chat(request: web.Request) -> web.Response:
        auth = request.headers["Authorization"]
        if "[[401]]" in await request.text():  # the key deep in a long message: redacted before the cut
            return web.Response(status=401, text="x" * 170 + f" you sent {auth} " + "y" * 100)
        if "[[200-error]]" in await request.text():
            return web.json_response({"error": {"message": "x" * 166 + f" you sent {auth}"}})
        echoed = f"{auth} {base64.b64encode(auth.encode()).decode()}"
        return web.json_response({"model": f"m-{key}", "choices": [{"message": {"content": echoed}, "finish_reason": "stop"}]})

    with serve_post("/v1/chat/completions", chat) as url:
        with pytest.raises(nbtools.EndpointError) as refused:  # a 401 stops the batch, its message redacted too
            nbtools.batch(["[[401]]"], base_url=url + "/v1", model="m", api_key=key, cache=False)
        stopped = refused.value.result
        assert stopped is not None
        result = nbtools.batch(["hi", "[[200-error]]"], base_url=url + "/v1", model="m", api_key=key,
                               retries=0, cache=False)
        # A password in the URL goes out as HTTP Basic auth, percent-escapes decoded: echoed back, it is hidden too.
        user_url = url.replace("http://", "http://user:p%40ss-canary-99@") + "/v1"
        basic = nbtools.batch(["hi"], base_url=user_url, model="m", cache=False)
    shown = (repr(result) + shown_html(result) + json.dumps(result.to_dicts()) + str(refused.value)
             + repr(stopped) + shown_html(stopped))
    assert stopped[0].error.startswith("HTTP 401") and result[0].text.startswith("Bearer ***")
    assert result[1].error.startswith("the server answered 200 with an error") and "***" in result[1].error
    assert basic[0].text.startswith("Basic ***") and "canary" not in repr(basic) + shown_html(basic)
    assert "canary" not in shown and "sk-FAKE" not in shown and base64.b64encode(key.encode()).decode()[:12] not in shown
