"""The built-in simulator, checked over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import aiohttp
import openai
import pytest

from nbtools.sim import SimConfig, SimServer, serve, shared_server

FAST = {"latency": 0.01, "latency_spread": 0.0}
HELLO = "Hello, how are you?"


def body_for(content: str, **fields: Any) -> dict[str, Any]:
    return {"model": "sim-small", "messages": [{"role": "user", "content": content}], **fields}


def post(
    server: SimServer, payload: Any, path: str = "/v1/chat/completions", **headers: str
) -> tuple[int, dict, bytes]:
    """POST JSON (or raw bytes); returns (status, lower-cased headers, body)."""
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    request = urllib.request.Request(
        server.url + path, data=data, headers={"Content-Type": "application/json", **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


def chat(server: SimServer, content: str = HELLO, **fields: Any) -> tuple[int, dict, Any]:
    status, headers, raw = post(server, body_for(content, **fields))
    return status, headers, json.loads(raw)


def get(server: SimServer, path: str) -> Any:
    with urllib.request.urlopen(server.url + path, timeout=10) as response:
        return json.loads(response.read())


async def timed_posts(server: SimServer, payloads: list[dict]) -> list[tuple[int | str, float]]:
    """Send all payloads at once; (status or exception name, seconds) for each."""

    async def one(session: aiohttp.ClientSession, payload: dict) -> tuple[int | str, float]:
        start = time.perf_counter()
        try:
            async with session.post(server.base_url + "/chat/completions", json=payload) as response:
                await response.read()
                return response.status, time.perf_counter() - start
        except aiohttp.ClientError as exc:
            return type(exc).__name__, time.perf_counter() - start

    async with aiohttp.ClientSession() as session:
        return await asyncio.gather(*(one(session, p) for p in payloads))


async def read_stream(server: SimServer, payload: dict) -> tuple[list[tuple[float, str]], float]:
    """SSE data lines with their arrival times, and the total time."""
    events = []
    async with aiohttp.ClientSession() as session:
        start = time.perf_counter()
        async with session.post(server.base_url + "/chat/completions", json=payload) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/event-stream")
            async for line in response.content:
                if line.startswith(b"data: "):
                    events.append((time.perf_counter() - start, line[6:].decode().strip()))
        return events, time.perf_counter() - start


@pytest.fixture(scope="module")
def fast() -> SimServer:
    with serve(**FAST) as server:
        yield server


# -- protocol ---------------------------------------------------------------------------


def test_json_reply_is_shaped_like_openai(fast: SimServer) -> None:
    status, headers, reply = chat(fast, model="any-model-name")
    assert status == 200 and headers["content-type"].startswith("application/json")
    assert set(reply) == {"id", "object", "created", "model", "choices", "usage"}
    assert reply["object"] == "chat.completion" and reply["model"] == "any-model-name"
    assert reply["id"].startswith("chatcmpl-") and isinstance(reply["created"], int)
    [choice] = reply["choices"]
    assert choice["index"] == 0 and choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant"
    words = len(choice["message"]["content"].split())
    assert 20 <= words <= 60
    usage = reply["usage"]
    assert usage["completion_tokens"] == words and usage["prompt_tokens"] == 4
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_stream_is_shaped_like_openai_and_first_token_comes_early() -> None:
    with serve(latency=0.4, latency_spread=0.0) as server:
        payload = body_for(HELLO, stream=True, stream_options={"include_usage": True})
        events, total = asyncio.run(read_stream(server, payload))
        _, _, plain = chat(server)
    assert events[-1][1] == "[DONE]"
    chunks = [json.loads(data) for _, data in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "sim-small" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    *tokens, finish, usage = chunks
    assert tokens[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"]["content"] for c in tokens)
    assert text == plain["choices"][0]["message"]["content"]
    assert finish["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "stop"}
    assert usage["choices"] == [] and usage["usage"] == plain["usage"]
    ttft = events[0][0]
    assert 0.1 <= ttft < 0.25  # 30% of 0.4 s
    assert 0.38 <= total < 0.8
    assert events[len(events) // 2][0] > ttft + 0.05  # tokens are spread, not sent in one burst


def test_stream_without_include_usage_has_no_usage_chunk(fast: SimServer) -> None:
    events, _ = asyncio.run(read_stream(fast, body_for(HELLO, stream=True)))
    chunks = [json.loads(data) for _, data in events[:-1]]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in c for c in chunks)


def test_models_are_listed(fast: SimServer) -> None:
    models = get(fast, "/v1/models")
    assert models["object"] == "list"
    assert [m["id"] for m in models["data"]] == ["sim-small", "sim-large", "sim-mini", "sim-standard", "sim-pro", "sim-judge"]


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[1, 2]",
        {"model": "m"},
        {"messages": "hello"},
        {"messages": []},
        {"messages": [{"content": "no role"}]},
        {"messages": ["just a string"]},
        {"messages": [{"role": "user", "content": 42}]},
        {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0},
        {"messages": [{"role": "user", "content": "hi"}], "stream": "yes"},
        {"messages": [{"role": "user", "content": "[[sim:typo]]"}]},
    ],
)
def test_bad_bodies_get_400_with_an_openai_error(fast: SimServer, payload: Any) -> None:
    status, _, raw = post(fast, payload)
    assert status == 400
    error = json.loads(raw)["error"]
    assert error["type"] == "invalid_request_error" and error["message"]


def test_any_bearer_key_is_accepted_and_never_echoed(fast: SimServer) -> None:
    secret = "sk-test-not-a-real-key-4242"
    status, headers, raw = post(fast, body_for(HELLO), Authorization=f"Bearer {secret}")
    assert status == 200
    assert secret not in raw.decode() and secret not in json.dumps(headers)
    assert secret not in json.dumps(fast.stats())


# -- replies ----------------------------------------------------------------------------


def test_replies_are_deterministic_per_seed_and_messages() -> None:
    def text(server: SimServer, content: str) -> str:
        return chat(server, content)[2]["choices"][0]["message"]["content"]

    with serve(seed=1, **FAST) as a, serve(seed=1, **FAST) as b, serve(seed=2, **FAST) as c:
        assert text(a, HELLO) == text(b, HELLO) == text(a, HELLO)
        assert text(a, HELLO) != text(c, HELLO)
        assert text(a, HELLO) != text(a, "What is concurrency?")


def test_echo_and_fixed_replies() -> None:
    with serve(reply="echo", **FAST) as server:
        assert chat(server, "repeat me")[2]["choices"][0]["message"]["content"] == "repeat me"
        server.configure(reply="Always this.")
        assert chat(server, "anything")[2]["choices"][0]["message"]["content"] == "Always this."


def test_max_tokens_truncates_with_finish_reason_length(fast: SimServer) -> None:
    full = chat(fast)[2]["choices"][0]["message"]["content"]
    _, _, reply = chat(fast, max_tokens=5)
    choice = reply["choices"][0]
    assert choice["finish_reason"] == "length"
    assert choice["message"]["content"].split() == full.split()[:5]
    assert reply["usage"]["completion_tokens"] == 5
    assert chat(fast, max_tokens=1000)[2]["choices"][0]["finish_reason"] == "stop"


# -- capacity and rate limits -----------------------------------------------------------


def test_capacity_503_refuses_past_capacity_at_once() -> None:
    with serve(capacity=2, over_capacity="503", latency=0.3, latency_spread=0.0) as server:
        results = asyncio.run(timed_posts(server, [body_for(f"q{i}") for i in range(5)]))
        stats = server.stats()
    assert sorted(status for status, _ in results) == [200, 200, 503, 503, 503]
    assert all(seconds < 0.2 for status, seconds in results if status == 503)
    assert stats["peak_processing"] == 2 and stats["status"] == {"200": 2, "503": 3}


def test_capacity_queue_waits_for_a_slot() -> None:
    with serve(capacity=2, latency=0.1, latency_spread=0.0) as server:
        start = time.perf_counter()
        results = asyncio.run(timed_posts(server, [body_for(f"q{i}") for i in range(6)]))
        elapsed = time.perf_counter() - start
        stats = server.stats()
    assert [status for status, _ in results] == [200] * 6
    assert 0.28 <= elapsed < 0.6  # three waves of two
    assert stats["peak_processing"] == 2 and stats["peak_in_flight"] == 6


def test_capacity_raised_live_releases_the_queue() -> None:
    with serve(capacity=1, latency=0.2, latency_spread=0.0) as server:

        async def scenario() -> float:
            task = asyncio.ensure_future(timed_posts(server, [body_for(f"q{i}") for i in range(4)]))
            await asyncio.sleep(0.05)
            await asyncio.to_thread(server.configure, capacity=4)
            start = time.perf_counter()
            await task
            return time.perf_counter() - start

        assert asyncio.run(scenario()) < 0.35  # not the 0.8 s a capacity of 1 would take


def test_a_client_that_gives_up_frees_its_capacity_slot() -> None:
    with serve(capacity=1, latency=2.0, latency_spread=0.0) as server:

        async def scenario() -> float:
            timeout = aiohttp.ClientTimeout(total=0.1)
            async with aiohttp.ClientSession(timeout=timeout) as session:
                with pytest.raises(asyncio.TimeoutError):
                    await session.post(server.base_url + "/chat/completions", json=body_for("abandoned"))
            [(status, seconds)] = await timed_posts(server, [body_for("next [[sim:latency=0.05]]")])
            assert status == 200
            return seconds

        assert asyncio.run(scenario()) < 0.5  # not queued behind the abandoned 2 s request
        stats = server.stats()
    assert stats["in_flight"] == 0 and [r["status"] for r in stats["log"]] == [None, 200]


def test_rpm_limit_answers_429_with_retry_after_and_ratelimit_headers() -> None:
    with serve(rpm=3, rate_burst=60, **FAST) as server:  # a bucket of 3, refilled at one per 20 s
        answers = [chat(server, f"q{i}") for i in range(4)]
        stats = server.stats()
        status, headers, _ = post(server, b"not json")  # refused requests carry the headers too
        assert status == 400 and headers["x-ratelimit-remaining-requests"] == "0"
    statuses = [status for status, _, _ in answers]
    assert statuses == [200, 200, 200, 429]
    for _, headers, _ in answers:
        assert headers["x-ratelimit-limit-requests"] == "3"
        assert headers["x-ratelimit-reset-requests"].endswith("s")
        assert "x-ratelimit-limit-tokens" not in headers  # no tpm set
    assert [h["x-ratelimit-remaining-requests"] for _, h, _ in answers] == ["2", "1", "0", "0"]
    _, headers, body = answers[-1]
    assert 19 <= float(headers["retry-after"]) <= 20
    assert 19_000 <= int(headers["retry-after-ms"]) <= 20_000
    assert body["error"]["type"] == "requests" and body["error"]["code"] == "rate_limit_exceeded"
    assert stats["rate_limited"] == 1 and stats["status"] == {"200": 3, "429": 1}


def test_tpm_limit_counts_prompt_and_completion_tokens() -> None:
    with serve(tpm=30, rpm=1000, rate_burst=60, reply="one two three four five", **FAST) as server:
        answers = [chat(server, "a b c d e") for _ in range(4)]  # 10 tokens each
    assert [status for status, _, _ in answers] == [200, 200, 200, 429]
    assert [h["x-ratelimit-remaining-tokens"] for _, h, _ in answers] == ["20", "10", "0", "0"]
    assert all(h["x-ratelimit-limit-tokens"] == "30" for _, h, _ in answers)
    assert answers[-1][2]["error"]["type"] == "tokens"


def test_per_minute_limits_are_enforced_per_second() -> None:
    with serve(rpm=600, **FAST) as server:  # 10 a second, a burst of one second's worth
        burst = [chat(server, f"q{i}")[0] for i in range(12)]
        time.sleep(0.3)
        later = [chat(server, f"r{i}")[0] for i in range(3)]
    assert 10 <= burst.count(200) <= 11 and burst[-1] == 429  # plus what refilled while sending
    assert later.count(200) >= 2  # the bucket refilled at 10 a second


# -- faults -----------------------------------------------------------------------------


@pytest.mark.parametrize("code", [500, 503, 429])
def test_error_directives(fast: SimServer, code: int) -> None:
    status, headers, body = chat(fast, f"please fail [[sim:{code}]]")
    assert status == code and body["error"]["message"]
    if code == 429:
        assert headers["retry-after"] == "1" and headers["retry-after-ms"] == "1000"


def test_reset_and_disconnect_directives_drop_the_connection() -> None:
    with serve(**FAST) as server:
        payloads = [
            body_for("[[sim:reset]]"),
            body_for("[[sim:disconnect]]"),
            body_for("[[sim:disconnect]]", stream=True),
        ]
        results = asyncio.run(timed_posts(server, payloads))
        stats = server.stats()
    assert all(isinstance(status, str) for status, _ in results), results  # client-side errors
    assert [r["status"] for r in stats["log"]] == [None, None, None]
    assert stats["faults"] == {"reset": 1, "disconnect": 2} and stats["completed"] == 0


def test_disconnect_while_streaming_sends_some_chunks_first(fast: SimServer) -> None:
    async def partial() -> list[bytes]:
        lines = []
        async with aiohttp.ClientSession() as session:
            payload = body_for("[[sim:disconnect]]", stream=True)
            async with session.post(fast.base_url + "/chat/completions", json=payload) as r:
                with pytest.raises(aiohttp.ClientPayloadError):
                    async for line in r.content:
                        lines.append(line)
        return lines

    lines = [line for line in asyncio.run(partial()) if line.startswith(b"data: ")]
    assert lines and b"[DONE]" not in b"".join(lines)


def test_slow_directive_delays_the_first_byte() -> None:
    with serve(slow_delay=0.3, **FAST) as server:
        [(status, seconds)] = asyncio.run(timed_posts(server, [body_for("[[sim:slow]]")]))
    assert status == 200 and seconds >= 0.3


def test_flaky_directive_fails_the_first_k_arrivals(fast: SimServer) -> None:
    content = "flaky test message [[sim:flaky=2]]"
    assert [chat(fast, content)[0] for _ in range(4)] == [503, 503, 200, 200]


def test_latency_directive_overrides_the_drawn_latency(fast: SimServer) -> None:
    [(status, seconds)] = asyncio.run(timed_posts(fast, [body_for("[[sim:latency=0.25]]")]))
    assert status == 200 and 0.25 <= seconds < 0.5


def test_malformed_empty_and_nousage_directives(fast: SimServer) -> None:
    status, _, raw = post(fast, body_for("[[sim:malformed]]"))
    assert status == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw)
    status, _, reply = chat(fast, "[[sim:empty]]")
    assert status == 200 and reply["choices"] == []
    status, _, reply = chat(fast, "[[sim:nousage]]")
    assert status == 200 and "usage" not in reply and reply["choices"]


def test_random_faults_follow_the_probabilities_and_the_seed() -> None:
    def statuses(seed: int) -> list[int]:
        with serve(seed=seed, fail_500=0.3, fail_429=0.2, retry_after=0.5, **FAST) as server:
            return [chat(server, f"q{i}")[0] for i in range(40)]

    first = statuses(7)
    assert first == statuses(7)  # a serial run is reproducible
    assert first != statuses(8)
    assert {500, 429, 200} == set(first)
    with serve(fail_503=1.0, **FAST) as server:
        assert [chat(server)[0] for _ in range(3)] == [503] * 3
        assert server.stats()["faults"] == {"503": 3}


# -- counters and live configuration ----------------------------------------------------


def test_stats_count_requests_and_reset_zeroes_them() -> None:
    with serve(**FAST) as server:
        chat(server, "one")
        chat(server, "two [[sim:500]]")
        post(server, b"garbage")
        asyncio.run(read_stream(server, body_for("three", stream=True)))
        stats = get(server, "/sim/stats")
        assert stats["requests"] == 4 and stats["completed"] == 2 and stats["in_flight"] == 0
        assert stats["status"] == {"200": 2, "500": 1, "400": 1} and stats["faults"] == {"500": 1}
        assert stats["prompt_tokens"] == 2 and stats["completion_tokens"] > 40
        keys = [(r["key"], r["status"], r["stream"]) for r in stats["log"]]
        assert keys == [("one", 200, False), ("two [[sim:500]]", 500, False), ("", 400, False), ("three", 200, True)]
        times = [r["t"] for r in stats["log"]]
        assert times == sorted(times) and times[0] >= 0
        assert post(server, b"", "/sim/reset")[0] == 200
        stats = server.stats()
        assert stats["requests"] == stats["completed"] == stats["peak_in_flight"] == 0
        assert stats["status"] == {} and stats["log"] == []


def test_log_key_is_the_first_60_chars_of_the_last_user_message(fast: SimServer) -> None:
    fast.reset()
    long = "x" * 100
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "earlier"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": long},
    ]
    assert post(fast, {"model": "m", "messages": messages})[0] == 200
    assert fast.stats()["log"][-1]["key"] == long[:60]


def test_config_changes_live_over_http_and_validates() -> None:
    with serve(**FAST) as server:
        status, _, raw = post(server, {"reply": "changed", "rpm": 100}, "/sim/config")
        assert status == 200 and json.loads(raw)["reply"] == "changed"
        assert server.config.reply == "changed" and server.config.rpm == 100
        assert chat(server)[2]["choices"][0]["message"]["content"] == "changed"
        status, _, raw = post(server, {"latency": -1}, "/sim/config")
        assert status == 400 and "latency" in json.loads(raw)["error"]["message"]
        status, _, raw = post(server, {"no_such_knob": 1}, "/sim/config")
        assert status == 400 and "no_such_knob" in json.loads(raw)["error"]["message"]
        assert server.config.reply == "changed"  # a refused change leaves the config alone


@pytest.mark.parametrize(
    ("knobs", "named"),
    [
        ({"latency": -0.1}, "latency"),
        ({"capacity": 0}, "capacity"),
        ({"over_capacity": "drop"}, "over_capacity"),
        ({"fail_500": 1.5}, "fail_500"),
        ({"fail_500": 0.6, "fail_503": 0.6}, "fail_"),
        ({"rpm": 0}, "rpm"),
        ({"seed": 1.5}, "seed"),
        ({"models": ()}, "models"),
    ],
)
def test_config_validation_names_the_knob(knobs: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        SimConfig(**knobs)


def test_config_is_keyword_only_and_replace_rejects_unknown_knobs() -> None:
    with pytest.raises(TypeError):
        SimConfig(1)  # type: ignore[misc]
    with pytest.raises(ValueError, match="laetncy"):
        SimConfig().replace(laetncy=1)
    assert SimConfig(models=["a"]).models == ("a",)


# -- timing model -----------------------------------------------------------------------


def test_default_latency_matches_the_classic_lesson() -> None:
    """10 identical prompts: ~5.5-6 s one after another, ~1.2-1.5 s all at once.

    All ten are sent at once; each one's duration is its drawn latency, so their
    sum is what a serial run (which draws the same ten latencies) would take.
    """
    with serve() as server:
        start = time.perf_counter()
        results = asyncio.run(timed_posts(server, [body_for(HELLO)] * 10))
        wall = time.perf_counter() - start
    assert [status for status, _ in results] == [200] * 10
    serial = sum(seconds for _, seconds in results)
    assert 5.0 <= serial <= 6.5
    assert 1.0 <= wall <= 1.7


def test_tokens_per_second_sets_the_total_time() -> None:
    with serve(reply=" ".join(["word"] * 20), ttft=0.05, tokens_per_second=100) as server:
        [(status, seconds)] = asyncio.run(timed_posts(server, [body_for(HELLO)]))
    assert status == 200 and 0.25 <= seconds < 0.45  # 0.05 + 20 / 100


# -- entry points -----------------------------------------------------------------------


def test_openai_sdk_can_call_it_plain_and_streaming(fast: SimServer) -> None:
    client = openai.OpenAI(base_url=fast.base_url, api_key="sk-test-not-a-real-key", max_retries=0)
    reply = client.chat.completions.create(model="sim-large", messages=[{"role": "user", "content": HELLO}])
    assert reply.choices[0].message.content and reply.usage.total_tokens > 0
    stream = client.chat.completions.create(
        model="sim-large",
        messages=[{"role": "user", "content": HELLO}],
        stream=True,
        stream_options={"include_usage": True},
    )
    parts = [chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices]
    assert "".join(parts) == reply.choices[0].message.content
    assert [m.id for m in client.models.list()] == ["sim-small", "sim-large", "sim-mini", "sim-standard", "sim-pro", "sim-judge"]


@pytest.mark.parametrize("in_process", [False, True])
def test_the_openai_sdk_uploads_a_batch_file_and_reads_its_results(in_process: bool) -> None:
    """The SDK's own multipart upload (httpx's encoder) read by the simulator, over HTTP and in-process."""
    import httpx

    from nbtools.sim import LocalSim, httpx_transport, serve_in_process

    jsonl = b"".join(json.dumps({"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions",
                                 "body": body_for(f"caf\u00e9 {i}")}).encode() + b"\n" for i in range(3))

    async def run(sim: SimServer | LocalSim) -> tuple[str, list[str]]:
        http_client = httpx.AsyncClient(transport=httpx_transport(sim)) if isinstance(sim, LocalSim) else None
        client = openai.AsyncOpenAI(base_url=sim.base_url, api_key="sk-test", max_retries=0, http_client=http_client)
        uploaded = await client.files.create(file=("lines.jsonl", jsonl), purpose="batch")
        assert (await client.files.content(uploaded.id)).read() == jsonl
        job = await client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                          completion_window="24h")
        while job.status != "completed":
            await asyncio.sleep(0.02)
            job = await client.batches.retrieve(job.id)
        assert job.output_file_id is not None
        lines = (await client.files.content(job.output_file_id)).text.splitlines()
        return uploaded.filename, [json.loads(line)["response"]["body"]["choices"][0]["message"]["content"]
                                   for line in lines]

    with (serve_in_process if in_process else serve)(batch_delay=0.1, reply="echo", **FAST) as sim:
        filename, texts = asyncio.run(run(sim))
    assert filename == "lines.jsonl" and texts == [f"caf\u00e9 {i}" for i in range(3)]


def test_shared_server_is_started_once_across_threads() -> None:
    seen: list[SimServer] = []
    threads = [threading.Thread(target=lambda: seen.append(shared_server())) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(server) for server in seen}) == 1 and seen[0].running
    assert seen[0].config == SimConfig()
    assert get(seen[0], "/v1/models")["object"] == "list"


def test_server_stops_on_context_exit() -> None:
    with serve(**FAST) as server:
        url = server.base_url
    assert not server.running
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url + "/models", timeout=2)


def test_command_line_server_answers_and_stops_on_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "nbtools.sim", "--port", "0", "--latency", "0.01", "--reply", "from the CLI"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("nbtools simulator listening on http://127.0.0.1:")
        base_url = line.split()[-1]
        request = urllib.request.Request(
            base_url + "/chat/completions",
            data=json.dumps(body_for(HELLO)).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.loads(response.read())["choices"][0]["message"]["content"] == "from the CLI"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        process.kill()
        process.wait()


def test_command_line_rejects_bad_knobs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "nbtools.sim", "--latency", "-3"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2 and "latency" in result.stderr
