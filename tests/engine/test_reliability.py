"""Faults, cache and resume, budgets, adaptive concurrency, secrets and escaping."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiohttp import web

import nbtools
from nbtools._compare import Comparison
from nbtools._engine.batchapi.store import RecordedRun
from nbtools._jobs import RecordedRuns
from nbtools._notebook.display import LiveDisplay
from nbtools._sweep import SweepPoint, SweepResult
from nbtools.sim import SimServer
from tests.support.helpers import serve_app, serve_post, shown_html
from tests.support.rate_limits import first_attempt_rate_limited

FAKE_KEY = "sk-nbtools-FAKE-7f3e9c1d2b4a-not-a-real-key"


# -- faults ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("directive", "stream", "cause"),
    [
        ("[[sim:500]]", False, "HTTP 500"),
        ("[[sim:reset]]", False, "{host}"),
        ("[[sim:disconnect]]", False, "{host}"),
        ("[[sim:disconnect]]", True, "{host}"),
        ("[[sim:slow]]", False, "timed out after 0.5 s"),
        ("[[sim:malformed]]", False, "not JSON"),
        ("[[sim:empty]]", False, "no choices"),
    ],
)
def test_each_fault_is_recorded_with_its_cause(make_any_sim, directive: str, stream: bool, cause: str) -> None:
    server = make_any_sim(latency=0.02, slow_delay=3, retry_after=0.05)
    result = nbtools.batch([f"bad {directive}", "good"], base_url=server.base_url, model="m", retries=1,
                           timeout=0.5, stream=stream, cache=False)
    bad, good = result
    cause = cause.format(host=server.base_url.split("//")[1].split("/")[0])
    assert bad.status == "error" and cause in bad.error and bad.attempts == 2, bad.error
    assert good.ok


@pytest.mark.parametrize(("directive", "kind"), [("[[sim:429]]", "rate_limit"), ("[[sim:503]]", "overloaded")])
def test_rate_limits_wait_without_spending_retries_until_max_wait(make_any_sim, directive: str, kind: str) -> None:
    server = make_any_sim(latency=0.02, retry_after=0.05)
    result = nbtools.batch([f"bad {directive}", "good"], base_url=server.base_url, model="m", retries=0,
                           max_wait=0.6, cache=False)
    bad, good = result
    assert good.ok and bad.status == "error" and bad.error_kind == kind and bad.attempts > 2
    assert "max_wait=0.6 s" in bad.error and bad.status_code == int(directive[6:9])


@pytest.mark.parametrize("stream", [False, True])
def test_transient_faults_are_retried_to_success(make_any_sim, stream: bool) -> None:
    sim = make_any_sim(latency=0.05, reply="echo")
    result = nbtools.batch(["ok [[sim:flaky=2]]"], base_url=sim.base_url, model="m", retries=2, stream=stream, cache=False)
    assert result[0].ok and result[0].attempts == 3 and result[0].text == "ok [[sim:flaky=2]]"


def test_missing_usage_is_not_an_error(sim: SimServer) -> None:
    result = nbtools.batch(["no usage [[sim:nousage]]"], base_url=sim.base_url, model="m", cache=False)
    assert result[0].ok and result[0].prompt_tokens is None and result[0].completion_tokens is None


@pytest.mark.slow
def test_ten_thousand_requests_with_ten_percent_faults_lose_nothing(tmp_path) -> None:
    # The simulator in its own process, so the client has a core of its own.
    proc = subprocess.Popen(
        [sys.executable, "-m", "nbtools.sim", "--port", "0", "--latency", "0", "--latency-spread", "0",
         "--reply", "echo", "--fail-500", "0.04", "--fail-503", "0.03", "--fail-reset", "0.03", "--seed", "11"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline()
        base_url = line.strip().rsplit(" ", 1)[-1]
        prompts = [f"row {i}" for i in range(10_000)]
        result = nbtools.batch(prompts, base_url=base_url, model="m", concurrency=100, retries=8, cache=False)
        import urllib.request

        stats = json.load(urllib.request.urlopen(base_url.removesuffix("/v1") + "/sim/stats"))
    finally:
        proc.terminate()
        proc.wait(10)
    assert [r.text for r in result] == prompts  # every row, in order, none lost or swapped
    s = result.summary()
    assert s.ok == 10_000 and s.errors == 0
    assert stats["requests"] == sum(r.attempts for r in result)  # no request sent twice unaccounted
    assert stats["completed"] == 10_000
    assert 700 <= s.retries + s.waits <= 1300  # about 10% of attempts were faults (429/503: waits)


def test_a_stream_dropped_mid_reply_is_cut_and_keeps_what_arrived(make_any_sim) -> None:
    server = make_any_sim(latency=0.05)
    result = nbtools.batch(["x [[sim:disconnect]]"], base_url=server.base_url, model="m", stream=True, retries=0,
                           cache=False)
    row = result[0]
    assert row.status == "error" and row.error_kind == "cut" and row.partial and "cut off" in row.error


def test_rate_limit_waits_are_counted_apart_from_retries() -> None:
    app, counts = first_attempt_rate_limited()
    with serve_app(app) as url:
        result = nbtools.batch([f"q{i}" for i in range(6)], base_url=url + "/v1", model="m", concurrency=3,
                               retries=0, cache=False)
    s = result.summary()
    assert s.ok == 6 and s.retries == 0 and s.waits == 6 and all(r.waits == 1 for r in result)
    assert "6 waits for rate limits" in str(s) and "rate-limit waits" in shown_html(result)


# -- cache and resume ------------------------------------------------------------------------------
def test_rerun_is_answered_from_the_cache(sim: SimServer) -> None:
    prompts = ["one", "two", "three"]
    first = nbtools.batch(prompts, base_url=sim.base_url, model="m", cache=True)
    assert sim.stats()["requests"] == 3 and not any(r.cached for r in first)
    again = nbtools.batch(prompts, base_url=sim.base_url, model="m", cache=True)
    assert sim.stats()["requests"] == 3
    assert [r.text for r in again] == prompts and all(r.cached and r.ok for r in again)
    nbtools.batch(prompts, base_url=sim.base_url, model="m", cache=False)
    assert sim.stats()["requests"] == 6
    nbtools.batch(prompts, base_url=sim.base_url, model="m", cache=True, temperature=0.5)  # other parameters
    assert sim.stats()["requests"] == 9


def _modes(folder: Path) -> dict[str, int]:
    return {path.name: path.stat().st_mode & 0o777 for path in [folder, *folder.iterdir()]}


@pytest.mark.parametrize("umask", [0o022, 0o000])
@pytest.mark.parametrize("where", ["a new own folder", "the own folder made 0755 before", "a folder NBTOOLS_CACHE names"])
def test_the_reply_cache_and_the_job_store_are_readable_by_their_owner_only(
        umask: int, where: str, make_sim, tmp_path: Path, monkeypatch) -> None:
    if where == "a folder NBTOOLS_CACHE names":
        folder = tmp_path / "chosen"
        monkeypatch.setenv("NBTOOLS_CACHE", str(folder / "replies.sqlite"))
    else:  # the user's cache folder, as platformdirs finds it
        monkeypatch.delenv("NBTOOLS_CACHE")
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
        folder = tmp_path / "xdg" / "nbtools"
    if where != "a new own folder":  # there already, readable by all, with files from before
        folder.mkdir(parents=True)
        os.chmod(folder, 0o755)
        for name in ("replies.sqlite", "replies.sqlite-wal", "jobs.sqlite"):
            (folder / name).touch()
            os.chmod(folder / name, 0o644)
    server = make_sim(batch_delay=0.05, reply="echo")
    seen: list[dict[str, int]] = []
    previous = os.umask(umask)
    try:  # modes seen while the cache is open (with its -wal and -shm files), and after both runs
        online = nbtools.batch(["one", "two"], base_url=server.base_url, model="m", cache=True,
                               on_result=lambda row: seen.append(_modes(folder)))
        job = nbtools.batch(["three"], via="batch", base_url=server.base_url, model="sim-small", poll_interval=0.05)
        seen.append(_modes(folder))
    finally:
        os.umask(previous)
    assert online.texts == ["one", "two"] and job.texts == ["three"]
    assert {"replies.sqlite-wal", "replies.sqlite-shm"} <= set(seen[0]) and "jobs.sqlite" in seen[-1], seen
    for modes in seen:
        ours = {name for name in modes if name.startswith("replies") or modes is seen[-1]}  # jobs: once it is opened
        assert {name: modes[name] for name in ours - {folder.name}} == dict.fromkeys(ours - {folder.name}, 0o600)
        # A folder the user chose keeps its permissions; nbtools' own folder is private.
        assert modes[folder.name] == (0o755 if where == "a folder NBTOOLS_CACHE names" else 0o700)


def test_identical_prompts_are_separate_samples_each_cached_as_its_own(sim: SimServer) -> None:
    prompts = ["same", "other", "same", "same"]
    result = nbtools.batch(prompts, base_url=sim.base_url, model="m", cache=True)
    assert sim.stats()["requests"] == 4 and not any(r.cached for r in result)
    again = nbtools.batch(prompts, base_url=sim.base_url, model="m", cache=True)  # each sample comes back
    assert sim.stats()["requests"] == 4 and all(r.cached for r in again) and again.texts == result.texts
    more = nbtools.batch(prompts + ["same"], base_url=sim.base_url, model="m", cache=True)  # a 4th sample is new
    assert sim.stats()["requests"] == 5 and [r.cached for r in more] == [True, True, True, True, False]


def test_dedupe_sends_identical_prompts_once(sim: SimServer) -> None:
    result = nbtools.batch(["same", "other", "same", "same"], base_url=sim.base_url, model="m", cache=False, dedupe=True)
    assert sim.stats()["requests"] == 2
    assert result.texts == ["same", "other", "same", "same"]
    assert [r.cached for r in result] == [False, False, True, True]
    repeated = nbtools.batch("sample", repeat=3, base_url=sim.base_url, model="m", dedupe=True)
    assert sim.stats()["requests"] == 5 and len(repeated) == 3  # repeat still asks for separate samples


def test_rerunning_an_interrupted_batch_sends_only_the_missing_rows(make_sim) -> None:
    server = make_sim(latency=0.2, reply="echo")
    prompts = [f"p{i}" for i in range(30)]

    async def interrupted() -> nbtools.BatchResult:
        result = nbtools.start(prompts, base_url=server.base_url, model="m", concurrency=5, cache=True)
        await asyncio.sleep(0.5)
        await result.aclose()
        return result

    partial = asyncio.run(interrupted())
    done = partial.summary().ok
    assert 5 <= done < 30
    before = server.stats()["requests"]
    full = nbtools.batch(prompts, base_url=server.base_url, model="m", concurrency=5, cache=True)
    assert server.stats()["requests"] - before == 30 - done
    assert full.texts == prompts and sum(r.cached for r in full) == done


def test_the_environment_can_turn_the_cache_off(sim: SimServer, monkeypatch) -> None:
    monkeypatch.setenv("NBTOOLS_CACHE", "off")
    nbtools.batch(["a"], base_url=sim.base_url, model="m")
    nbtools.batch(["a"], base_url=sim.base_url, model="m")
    assert sim.stats()["requests"] == 2


# -- budgets and adaptive concurrency ---------------------------------------------------------------
def test_rpm_budget_spaces_requests_without_an_initial_burst(make_any_sim) -> None:
    server = make_any_sim(latency=0.01)
    nbtools.batch([f"p{i}" for i in range(12)], base_url=server.base_url, model="m", concurrency=12, rpm=600, cache=False)
    arrivals = [rec["t"] for rec in server.stats()["log"]]
    since_first = [t - arrivals[0] for t in arrivals]
    # 600/min = one every 0.1 s from the very first: request k never arrives before k * 0.1 s
    # (less a little scheduling jitter), so no burst above the budget at the start.
    assert all(t >= 0.1 * k - 0.03 for k, t in enumerate(since_first)), since_first
    assert since_first[-1] < 1.4


def test_tpm_budget_paces_by_tokens(make_sim) -> None:
    server = make_sim(latency=0.01, reply="one two three four")
    t = time.perf_counter()
    result = nbtools.batch([f"p{i}" for i in range(6)], base_url=server.base_url, model="m", concurrency=6,
                           tpm=3000, max_tokens=4, cache=False)
    took = time.perf_counter() - t
    per_request = result[0].prompt_tokens + result[0].completion_tokens
    assert took >= 5 * per_request * 60 / 3000 * 0.8  # six requests' tokens at 50 tokens/s


def test_auto_concurrency_finds_a_servers_capacity_without_failures(make_any_sim) -> None:
    server = make_any_sim(latency=0.05, capacity=8, over_capacity="503")
    result = nbtools.batch([f"p{i}" for i in range(300)], base_url=server.base_url, model="m",
                           concurrency="auto", cache=False)
    s = result.summary()
    assert s.errors == 0 and s.ok == 300
    assert 6 <= result.concurrency <= 9  # settled near the capacity
    assert server.stats()["peak_processing"] <= 8


def test_auto_concurrency_paces_at_a_servers_rate_limit(make_sim) -> None:
    server = make_sim(latency=0.02, rpm=1200)
    t = time.perf_counter()
    result = nbtools.batch([f"p{i}" for i in range(60)], base_url=server.base_url, model="m",
                           concurrency="auto", cache=False)
    took = time.perf_counter() - t
    assert result.summary().errors == 0
    assert took < 60 / 20 * 1.35  # near the server's 20 requests/s


def test_auto_concurrency_holds_starts_when_the_servers_remaining_budget_is_spent() -> None:
    """A server that sends only x-ratelimit-remaining/reset (no limit header) and 429s past them."""
    window, per_window = 0.5, 5
    state = {"start": time.monotonic(), "used": 0, "rejected": 0, "served": 0}

    async def chat(request: web.Request) -> web.Response:
        await request.read()
        now = time.monotonic()
        elapsed = now - state["start"]
        if elapsed >= window:  # a fixed window, as some providers count
            state["start"] += window * (elapsed // window)
            state["used"] = 0
        reset = f"{round((state['start'] + window - now) * 1000)}ms"
        if state["used"] >= per_window:
            state["rejected"] += 1
            headers = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": reset}
            return web.json_response({"error": {"message": "rate limited"}}, status=429, headers=headers)
        state["used"] += 1
        state["served"] += 1
        await asyncio.sleep(0.02)
        headers = {"x-ratelimit-remaining-requests": str(per_window - state["used"]), "x-ratelimit-reset-requests": reset}
        body = {"choices": [{"message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1}}
        return web.json_response(body, headers=headers)

    with serve_post("/v1/chat/completions", chat) as url:
        state["start"] = time.monotonic()
        t = time.perf_counter()
        result = nbtools.batch([f"p{i}" for i in range(40)], base_url=url + "/v1", model="m",
                               concurrency="auto", cache=False)
        took = time.perf_counter() - t
    s = result.summary()
    assert s.ok == 40 and s.errors == 0
    assert state["rejected"] <= 1, state  # at most the first burst's edge, not a 429 per window
    assert took < 40 / per_window * window * 1.2  # near the server's 10 requests/s: a full window each time


def test_a_budget_that_resets_in_hours_is_a_quota_not_pacing() -> None:
    from nbtools._engine.gates.server_budget import ServerBudget

    budget = ServerBudget()
    budget.observe({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "3h"}, budget.mark())
    assert budget.take(10) == 0.0  # no hour-long wait per row: the server's 429s (and retries) will say
    budget.observe({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "2s"}, budget.mark())
    assert 1.9 < budget.take(10) <= 2.0


def test_reset_durations_read_as_providers_write_them() -> None:
    from nbtools._engine.gates.server_budget import parse_duration

    assert [parse_duration(v) for v in ("20ms", "1.5s", "6m0s", "1h2m3s", "2", "0.25")] == [0.02, 1.5, 360, 3723, 2, 0.25]
    assert [parse_duration(v) for v in (None, "", "soon", "5 s", "-")] == [None] * 5


def test_a_fixed_concurrency_climbs_back_after_a_burst_of_rate_limits() -> None:
    app, counts = first_attempt_rate_limited()  # every row's first attempt is refused: the limit drops, then recovers
    with serve_app(app) as url:
        result = nbtools.batch([f"q{i}" for i in range(120)], base_url=url + "/v1", model="m", concurrency=8, cache=False)
    assert result.summary().ok == 120 and result.concurrency <= 8
    assert counts["peak_after_429s"] == 8  # back at the user's number, never above it


# -- secrets ---------------------------------------------------------------------------------------
@pytest.fixture
def key_echoing_server():
    """An endpoint that answers 401 quoting the Authorization header back: the worst case for leaks."""

    async def chat(request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        return web.json_response({"error": {"message": f"Incorrect API key provided: {auth}", "code": "invalid_api_key"}},
                                 status=401)

    with serve_post("/v1/chat/completions", chat) as url:
        yield url + "/v1"


def test_the_key_never_leaks(sim: SimServer, key_echoing_server: str, monkeypatch, caplog, tmp_path: Path, capsys) -> None:
    monkeypatch.setenv("NBTOOLS_TEST_KEY", FAKE_KEY)
    caplog.set_level(logging.DEBUG)
    places: dict[str, str] = {}
    good = nbtools.batch(["hello"], base_url=sim.base_url, model="m", api_key_env="NBTOOLS_TEST_KEY", cache=True)
    with pytest.raises(nbtools.EndpointError) as refused:  # a refused key stops the batch
        nbtools.batch(["hello"], base_url=key_echoing_server, model="m", api_key_env="NBTOOLS_TEST_KEY", cache=True)
    bad = refused.value.result
    assert bad is not None and bad[0].status == "error" and "HTTP 401" in bad[0].error and "***" in bad[0].error
    assert "the key in NBTOOLS_TEST_KEY" in str(refused.value)
    places["stop message"] = str(refused.value) + repr(refused.value)
    for name, result in (("good", good), ("bad", bad)):
        places[f"{name} repr"] = repr(result) + repr(result[0]) + repr(result.endpoint) + repr(result.options)
        places[f"{name} html"] = shown_html(result)
        places[f"{name} dicts"] = json.dumps(result.to_dicts(), default=str)
        result.to_jsonl(tmp_path / f"{name}.jsonl")
        places[f"{name} jsonl"] = (tmp_path / f"{name}.jsonl").read_text()
        places[f"{name} live view"] = json.dumps(LiveDisplay(result, embed=True)._bundle())
    try:
        nbtools.batch(["x"], base_url="not a url", api_key_env="NBTOOLS_TEST_KEY")
    except nbtools.ConfigError as exc:
        places["exception"] = str(exc) + repr(exc)
    places["logs"] = caplog.text
    places["stdout/stderr"] = "".join(capsys.readouterr())
    cache_file = Path(os.environ["NBTOOLS_CACHE"])
    places["cache"] = b"".join(p.read_bytes() for p in cache_file.parent.glob(cache_file.name + "*")).decode("latin-1")
    assert places["cache"]  # the cache was written
    for place, text in places.items():
        assert FAKE_KEY not in text, place
        assert FAKE_KEY[8:30] not in text, place


@pytest.mark.slow  # a real kernel
def test_the_key_never_reaches_a_saved_notebook(tmp_path: Path) -> None:
    """A real kernel with the key in its environment runs a notebook against a server that quotes the key
    back in its errors and in its replies; the saved notebook, the kernel's stderr and the cache are scanned."""
    import nbformat
    from nbclient import NotebookClient

    async def chat(request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        if "fail" in await request.text():
            return web.json_response({"error": {"message": f"Incorrect API key provided: {auth}"}}, status=401)
        return web.json_response({"model": f"echo {auth}", "choices": [{"message": {"content": f"you sent {auth}"},
                                                                         "finish_reason": "stop"}]})

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"data": [{"id": "m"}]})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    cache = tmp_path / "replies.sqlite"
    with serve_app(app) as url:
        cells = [
            "%load_ext nbtools",
            f"%%llm_batch --base-url {url}/v1 --api-key-env NBTOOLS_TEST_KEY -o r --cache -c 1\nhello\nfail please",
            "r, r[0], r[1].error, r.to_pandas()",
            f"import nbtools\nnbtools.batch(['hi', 'fail'], provider='openai', base_url='{url}/v1', cache=True, concurrency=1)",
            f"nbtools.Panel('hi', base_url='{url}/v1', api_key_env='NBTOOLS_TEST_KEY')",
            "%%llm_batch --api-key-env NBTOOLS_UNSET_VARIABLE\nhi",
        ]
        notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
        env = {**{k: v for k, v in os.environ.items() if not k.startswith(("NBTOOLS_", "OPENAI_"))},
               "NBTOOLS_TEST_KEY": FAKE_KEY, "OPENAI_API_KEY": FAKE_KEY, "NBTOOLS_CACHE": str(cache)}
        client = NotebookClient(notebook, timeout=60, kernel_name="python3", allow_errors=True)
        client.km = client.create_kernel_manager()
        client.start_new_kernel(env=env)
        client.start_new_kernel_client()
        try:
            client.execute(cleanup_kc=False)  # the kernel stays up: nothing of the key may be sent after this
        finally:
            client._cleanup_kernel()
    saved = tmp_path / "scanned.ipynb"
    nbformat.write(notebook, saved)
    text = saved.read_text()
    assert "you sent Bearer ***" in text and "Incorrect API key provided: Bearer ***" in text  # it did run
    cached = b"".join(p.read_bytes() for p in tmp_path.glob("replies.sqlite*")).decode("latin-1")
    assert "you sent" in cached
    for place, content in (("saved notebook", text), ("cache", cached)):
        assert FAKE_KEY not in content, place
        assert FAKE_KEY[8:30] not in content, place


def test_a_key_echoed_in_a_cut_stream_is_not_kept_in_the_partial_text() -> None:
    key = "sk-FAKE-review-canary-0123456789"

    async def chat(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        chunk = {"choices": [{"index": 0, "delta": {"content": f"you sent {request.headers['Authorization']}"}}]}
        await resp.write(f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode())
        return resp

    with serve_post("/v1/chat/completions", chat) as url:
        result = nbtools.batch(["hi"], base_url=url + "/v1", model="m", api_key=key, stream=True, retries=0, cache=False)
    row = result[0]
    assert row.error_kind == "cut" and row.partial == "you sent Bearer ***"
    assert "canary" not in repr(result.to_dicts()) + shown_html(result)


# -- escaping --------------------------------------------------------------------------------------
HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(2)></table></svg><b>bold</b>"


def test_hostile_replies_are_text_in_every_html(sim: SimServer) -> None:
    result = nbtools.batch([HOSTILE, "fine"], base_url=sim.base_url, model=HOSTILE, cache=False)
    assert result[0].text == HOSTILE
    outputs = {
        "result": shown_html(result),
        "live": LiveDisplay(result, embed=True)._bundle()["text/html"],
        "live header": LiveDisplay(result, embed=True, title=HOSTILE)._header_html(),
        "comparison": shown_html(Comparison(result, result)),
        "sweep": shown_html(SweepResult([SweepPoint(1, 1.0, 1.0, 0, 0)], [result])),
        "dry run": shown_html(nbtools.dry_run([HOSTILE], base_url=sim.base_url, model=HOSTILE, cache=False)),
        "jobs": shown_html(RecordedRuns([RecordedRun(HOSTILE, HOSTILE, HOSTILE, HOSTILE, (HOSTILE,), HOSTILE, 1, 0, 0,
                                                     time.time())])),
    }
    for name, html in outputs.items():
        for raw in ("<script", "<img", "</table></svg>", "<b>bold"):
            assert raw not in html, (name, raw)
    assert "&lt;script&gt;" in outputs["result"]


def test_hostile_text_in_the_panel_status_is_escaped(sim: SimServer) -> None:
    panel = nbtools.Panel("x", base_url=sim.base_url)
    panel._say(HOSTILE, error=True)
    assert "<script" not in panel.status.value and "&lt;script&gt;" in panel.status.value
