"""via="batch": the providers' Batch APIs, against independent test servers and the simulator."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import urllib.request

import pytest

import nbtools
from nbtools import ConfigError
from nbtools._engine.batchapi.run import poll_schedule
from nbtools._engine.batchapi.store import store_path
from nbtools._jobs import cancel_job, forget_job, jobs, resend
from tests.support.batch_servers import FAIL, AnthropicBatchServer, OpenAIBatchServer, serving_batches
from tests.support.helpers import shown_html

FAST = {"poll_interval": 0.01}  # the test servers move one state per poll: no need to wait between


@pytest.fixture
def openai_server(monkeypatch):
    server = OpenAIBatchServer()
    with serving_batches(server, monkeypatch, "OPENAI_API_KEY", "XAI_API_KEY") as url:
        server.url = url  # type: ignore[attr-defined]
        yield server


@pytest.fixture
def anthropic_server(monkeypatch):
    server = AnthropicBatchServer()
    with serving_batches(server, monkeypatch, "ANTHROPIC_API_KEY") as url:
        server.url = url  # type: ignore[attr-defined]
        yield server


def openai_batch(server: OpenAIBatchServer, prompts: list[str], **options) -> nbtools.BatchResult:
    return nbtools.batch(prompts, via="batch", provider="openai", base_url=server.url, model="gpt-4o-mini",
                         **{**FAST, **options})


def test_300_prompts_come_back_in_order_from_one_upload_and_one_job(openai_server) -> None:
    prompts = [f"question {i}" for i in range(300)]
    result = openai_batch(openai_server, prompts)
    assert [r.text for r in result] == [f"answer: question {i}" for i in range(300)]  # the server wrote them reversed
    assert all(r.ok for r in result) and len(result) == 300
    assert (openai_server.uploads, openai_server.creates, openai_server.auth_failures) == (1, 1, 0)
    assert result[0].prompt_tokens == 7 and result[0].completion_tokens == 3 and result[0].finish_reason == "stop"
    frame = result.to_pandas()
    assert list(frame["text"])[:2] == ["answer: question 0", "answer: question 1"]
    shown = repr(result)  # one job: its figures, not a per-request speedup
    assert "via the Batch API" in shown and "300/300 done" in shown and "speedup" not in shown
    assert "batch_0001" in shown and "completed" in shown
    assert "speedup" not in shown_html(result) and "via the Batch API" in shown_html(result)


def test_the_same_call_in_a_new_process_creates_no_second_job(openai_server, tmp_path) -> None:
    prompts = [f"q{i}" for i in range(20)]
    first = openai_batch(openai_server, prompts)
    assert openai_server.creates == 1
    script = textwrap.dedent(f"""
        import json, nbtools
        r = nbtools.batch({prompts!r}, via="batch", provider="openai", base_url={openai_server.url!r},
                          model="gpt-4o-mini", poll_interval=0.01)
        print(json.dumps([r.texts, [row.cached for row in r]]))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=os.environ.copy(), timeout=60)
    assert out.returncode == 0, out.stderr
    texts, cached = json.loads(out.stdout.strip().splitlines()[-1])
    assert texts == first.texts and all(cached)  # answered from the job store
    assert (openai_server.uploads, openai_server.creates) == (1, 1)


def test_a_restart_while_the_job_runs_loses_nothing(openai_server) -> None:
    """A process submits and dies mid-job; the next run reattaches to that job instead of paying again."""
    prompts = [f"r{i}" for i in range(30)]
    script = textwrap.dedent(f"""
        import asyncio, os, nbtools
        async def main():
            r = nbtools.start({prompts!r}, via="batch", provider="openai", base_url={openai_server.url!r},
                              model="gpt-4o-mini", poll_interval=30)
            await r.batch_run.submitted.wait()
            os._exit(0)  # a kernel restart: no cleanup at all
        asyncio.run(main())
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=os.environ.copy(), timeout=60)
    assert out.returncode == 0, out.stderr
    assert openai_server.creates == 1
    (recorded,) = jobs()
    assert recorded.job_ids == ("batch_0001",) and recorded.provider == "openai"
    result = openai_batch(openai_server, prompts)
    assert result.texts == [f"answer: r{i}" for i in range(30)]
    assert (openai_server.uploads, openai_server.creates) == (1, 1)
    assert result.batch_run.reattached == 1  # type: ignore[attr-defined]


def test_a_line_the_provider_failed_is_an_error_in_its_row(openai_server) -> None:
    result = openai_batch(openai_server, ["fine", f"please {FAIL}", "also fine"])
    assert [r.status for r in result] == ["ok", "error", "ok"]
    assert "HTTP 400" in result[1].error and "invalid_request_error" in result[1].error
    assert "refused by the test server" in result[1].error
    assert result.summary().errors == 1


def test_a_job_split_over_the_request_limit_comes_back_whole(openai_server) -> None:
    openai_server.max_requests = 100
    prompts = [f"s{i}" for i in range(250)]
    result = openai_batch(openai_server, prompts, job_size=100)
    assert result.texts == [f"answer: s{i}" for i in range(250)]
    assert (openai_server.uploads, openai_server.creates) == (3, 3)
    assert len(result.batch_run.jobs) == 3  # type: ignore[attr-defined]


def test_a_job_the_provider_refuses_fails_its_rows_with_the_reason(openai_server) -> None:
    openai_server.max_requests = 10
    result = openai_batch(openai_server, [f"t{i}" for i in range(12)])
    assert all(r.status == "error" for r in result)
    assert "batch_too_large" in result[0].error and "failed the job" in result[0].error
    openai_server.max_requests = 50_000  # say the refusal was the provider's passing state: nothing ran, so
    again = openai_batch(openai_server, [f"t{i}" for i in range(12)])  # the same call submits again
    assert all(r.ok for r in again) and openai_server.creates == 2


def test_repeat_system_and_params_reach_every_line(openai_server) -> None:
    result = openai_batch(openai_server, ["a", "b"], repeat=2, system="Be brief.", temperature=0.5, max_tokens=9,
                          params={"seed": 1})
    assert result.texts == ["answer: a"] * 2 + ["answer: b"] * 2
    lines = [json.loads(line) for line in openai_server.files["file-0001"].splitlines()]
    assert [line["custom_id"] for line in lines] == ["r0", "r1", "r2", "r3"]
    # max_tokens= goes to OpenAI under the name its API wants, as on the online path
    assert lines[0]["body"] == {"model": "gpt-4o-mini", "temperature": 0.5, "max_completion_tokens": 9, "seed": 1,
                                "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "a"}]}


def test_xai_uses_the_same_files_and_batches(openai_server) -> None:
    result = nbtools.batch(["x"], via="batch", provider="xai", base_url=openai_server.url, model="grok-3-mini", **FAST)
    assert result.texts == ["answer: x"] and openai_server.creates == 1


def test_anthropic_message_batches_in_native_shapes(anthropic_server) -> None:
    prompts = [f"a{i}" for i in range(50)] + [f"bad {FAIL}"]
    result = nbtools.batch(prompts, via="batch", provider="anthropic", base_url=anthropic_server.url,
                           model="claude-haiku-4-5", system="Be brief.", **FAST)
    assert result.texts[:50] == [f"answer: a{i} [system: Be brief.]" for i in range(50)]  # system moved to its field
    assert result[50].status == "error" and "invalid_request_error" in result[50].error
    assert result[0].prompt_tokens == 11 and result[0].completion_tokens == 5 and result[0].finish_reason == "end_turn"
    assert (anthropic_server.creates, anthropic_server.header_failures) == (1, 0)


def test_the_simulator_speaks_both_protocols(make_any_sim) -> None:
    server = make_any_sim(batch_delay=0.3, reply="echo")
    prompts = [f"p{i}" for i in range(300)]
    result = nbtools.batch(prompts, via="batch", base_url=server.base_url, model="sim-small", poll_interval=0.05)
    assert result.texts == prompts
    stats = server.batch_stats()
    assert (stats["uploads"], stats["jobs"]) == (1, 1)
    anthropic = nbtools.batch(["hi [[sim:500]]", "there"], via="batch", provider="anthropic", base_url=server.base_url,
                              model="sim-small", poll_interval=0.05)
    assert [r.status for r in anthropic] == ["error", "ok"] and anthropic[1].text == "there"
    assert server.batch_stats()["jobs"] == 2
    job = anthropic.batch_run.jobs[0]  # type: ignore[attr-defined]
    assert job.refs["results_url"] == f"{server.base_url}/messages/batches/{job.id}/results"  # its own host, both ways


def test_simulator_limits_like_the_providers(make_any_sim) -> None:
    server = make_any_sim(batch_delay=0.2, batch_max_requests=5, reply="echo")
    too_many = nbtools.batch([f"p{i}" for i in range(6)], via="batch", base_url=server.base_url, model="sim-small",
                             poll_interval=0.05)
    assert "too_many_requests" in too_many[0].error
    with pytest.raises(Exception, match="at most 5 requests"):
        nbtools.batch([f"p{i}" for i in range(6)], via="batch", provider="anthropic", base_url=server.base_url,
                      model="sim-small", poll_interval=0.05)
    wrong = nbtools.batch(["x"], via="batch", base_url=server.base_url, model="no-such-model", poll_interval=0.05)
    assert "404" in wrong[0].error and "does not exist" in wrong[0].error


def test_an_expired_job_keeps_what_finished_and_the_rest_is_sent_again_with_one_call(make_any_sim) -> None:
    server = make_any_sim(batch_delay=1.0, batch_expire=0.5, latency=0.01, reply="echo")
    prompts = [f"e{i}" for i in range(40)]
    result = nbtools.batch(prompts, via="batch", base_url=server.base_url, model="sim-small", poll_interval=0.05)
    statuses = [r.status for r in result]
    assert "ok" in statuses and "not sent" in statuses  # half ran before the job expired
    first_missing = statuses.index("not sent")
    assert all(s == "ok" for s in statuses[:first_missing]) and all(s == "not sent" for s in statuses[first_missing:])
    assert "batch_expired" in result[-1].error
    assert result.batch_run.jobs[0].status == "expired"  # type: ignore[attr-defined]
    resend(result, via="online")
    assert result.texts == prompts and all(r.ok for r in result)
    assert server.stats()["requests"] == 40 - first_missing  # online: only what the job did not run

    again = nbtools.batch([f"f{i}" for i in range(40)], via="batch", base_url=server.base_url, model="sim-small",
                          poll_interval=0.05)
    missing = sum(r.status == "not sent" for r in again)
    server.configure(batch_expire=None)
    nbtools.resend(again, via="batch", poll_interval=0.05)  # or as a new batch job
    assert again.texts == [f"f{i}" for i in range(40)]
    assert server.batch_stats()["jobs"] == 3 and missing > 0


@pytest.mark.parametrize("provider", [None, "anthropic"])
def test_cancel_stops_the_providers_job_and_keeps_what_finished(make_any_sim, provider) -> None:
    server = make_any_sim(batch_delay=30.0, reply="echo")

    async def main() -> nbtools.BatchResult:
        result = nbtools.start([f"c{i}" for i in range(10)], via="batch", provider=provider, base_url=server.base_url,
                               model="sim-small", poll_interval=0.05)
        await result.batch_run.submitted.wait()
        result.cancel()
        return await result

    result = asyncio.run(main())
    assert result.cancelled and all(r.status == "not sent" for r in result)  # a re-run sends them
    assert server.batch_stats()["cancels"] == 1
    (job,) = jobs()
    assert job.status == "cancelled"


def test_jobs_can_be_listed_cancelled_and_forgotten(openai_server) -> None:
    async def submit() -> None:
        result = nbtools.start(["j1", "j2"], via="batch", provider="openai", base_url=openai_server.url,
                               model="gpt-4o-mini", poll_interval=30)
        await result.batch_run.submitted.wait()
        result.batch_run.main_task.cancel()  # leave it running on the provider's side, as a closed kernel would

    asyncio.run(submit())
    (job,) = jobs()
    assert job.total == 2 and job.provider == "openai" and "batch_0001" in repr(jobs())
    assert cancel_job(job.id) == ["batch_0001: cancelling"] and openai_server.cancels == 1
    assert forget_job("batch_0001") == 1
    assert jobs() == []
    with pytest.raises(ConfigError, match="no recorded Batch API job"):
        forget_job("batch_0001")


@pytest.mark.parametrize("options, needle", [
    ({"stream": True}, "stream cannot be used with via='batch'"),
    ({"rpm": 100}, "rpm cannot be used"),
    ({"concurrency": 8}, "concurrency cannot be used"),
    ({"via": "bulk"}, "via='bulk' is not one of 'online', 'batch'"),
    ({"poll_interval": 0}, "poll_interval=0 must be above 0"),
])
def test_options_that_make_no_sense_for_a_batch_job_are_refused(options, needle) -> None:
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        nbtools.batch(["x"], **{"via": "batch", **options})


def test_the_job_store_follows_nbtools_cache(tmp_path) -> None:
    assert store_path() == tmp_path / "jobs.sqlite"


def test_polls_start_small_and_grow_to_a_cap() -> None:
    nxt = poll_schedule(5.0)
    intervals = [nxt() for _ in range(12)]
    assert intervals[0] == 5.0 and intervals[1] == 7.5
    assert intervals == sorted(intervals) and intervals[-1] == 60.0


def test_no_key_runs_against_the_simulator_and_says_so() -> None:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and k != "NBTOOLS_PROVIDER"}
    script = ("import nbtools; r = nbtools.batch(['hello'], via='batch', poll_interval=0.05); "
              "print(r[0].status, r.endpoint.simulated)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["ok", "True"]
    assert "Simulated replies from the built-in simulator" in out.stderr


def test_over_50000_requests_the_openai_protocol_splits_into_jobs_transparently(make_sim) -> None:
    server = make_sim(batch_delay=0.2, reply="echo")
    prompts = [f"n{i}" for i in range(50_001)]  # OpenAI's documented limit is 50,000 requests per job
    result = nbtools.batch(prompts, via="batch", base_url=server.base_url, model="sim-small", poll_interval=0.1)
    assert result.texts == prompts
    assert server.batch_stats()["jobs"] == 2 and server.batch_stats()["uploads"] == 2


def test_parts_respect_the_byte_limit_and_keep_every_line_in_order() -> None:
    from nbtools._base.options import BatchOptions
    from nbtools._engine.batchapi.requests import OPENAI, build_parts
    from nbtools._engine.endpoints import resolve_endpoint
    from nbtools._engine.rows import RequestResult
    from nbtools._engine.wire import Dialect

    rows = [RequestResult(i, f"prompt {i} " + "x" * (i % 50)) for i in range(200)]
    dialect = Dialect(resolve_endpoint(base_url="http://127.0.0.1:9/v1"))
    parts = build_parts(rows, BatchOptions(), "m", OPENAI, dialect, max_bytes=2_000)
    assert len(parts) > 1 and all(p.size <= 2_000 for p in parts)
    ids = [json.loads(line)["custom_id"] for p in parts for line in p.lines]
    assert ids == [f"r{i}" for i in range(200)]
    assert [p.first for p in parts] == [sum(q.count for q in parts[:k]) for k in range(len(parts))]


def test_the_upload_form_is_the_multipart_body_an_independent_parser_reads() -> None:
    """upload_form's bytes, read by aiohttp's server (request.post()), give back each field as it was given."""
    from aiohttp import web

    from nbtools._engine.batchapi.clients import upload_form
    from tests.support.helpers import serve_post

    jsonl = '{"custom_id": "r0", "body": {"text": "caf\u00e9\\r\\n--x"}}\n'.encode() * 3
    seen: dict[str, object] = {}

    async def upload(request: web.Request) -> web.Response:
        form = await request.post()
        upload = form["file"]
        assert isinstance(upload, web.FileField)
        seen.update(purpose=form["purpose"], name=upload.filename, type=upload.content_type, content=upload.file.read())
        return web.Response()

    body, content_type = upload_form(jsonl)
    with serve_post("/files", upload) as url:
        urllib.request.urlopen(urllib.request.Request(url + "/files", data=body, headers={"Content-Type": content_type}))
    assert seen == {"purpose": "batch", "name": "nbtools-batch.jsonl", "type": "application/jsonl", "content": jsonl}


def test_a_wrong_key_and_a_missing_server_are_one_line_errors(openai_server, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-key-123456")
    with pytest.raises(nbtools.NbtoolsError) as error:
        openai_batch(openai_server, ["x"])
    message = str(error.value)
    assert "HTTP 401" in message and "OPENAI_API_KEY" in message and "sk-wrong-key-123456" not in message
    with pytest.raises(nbtools.EndpointError, match="cannot connect to 127.0.0.1:9"):
        nbtools.batch(["x"], via="batch", base_url="http://127.0.0.1:9/v1", model="m", **FAST)
    assert jobs() == []  # nothing was submitted, nothing recorded


def test_a_create_whose_answer_is_lost_is_found_not_paid_twice(openai_server) -> None:
    """A 500 on create may hide a job the provider made: never retry it; find it by its metadata instead."""
    openai_server.lose_create_answers = True
    result = openai_batch(openai_server, ["x", "y"])
    assert result.texts == ["answer: x", "answer: y"] and openai_server.creates == 1
    openai_server.lose_create_answers = False
    assert openai_batch(openai_server, ["x", "y"]).texts == result.texts and openai_server.creates == 1  # recorded


def test_a_dropped_connection_is_retried_but_never_on_the_call_that_creates_the_job(openai_server) -> None:
    openai_server.hang_ups = {"retrieve": 2}
    assert openai_batch(openai_server, ["x"]).texts == ["answer: x"] and openai_server.hang_ups == {"retrieve": 0}
    openai_server.hang_ups = {"create": 1}  # it may have made the job: looked for, not sent again
    with pytest.raises(nbtools.NbtoolsError, match="closed the connection before answering"):
        openai_batch(openai_server, ["y"])
    assert openai_server.creates == 1


def test_an_expired_openai_job_from_the_reference_server_keeps_what_ran(openai_server) -> None:
    openai_server.expire = True
    result = openai_batch(openai_server, [f"x{i}" for i in range(10)])
    assert [r.status for r in result] == ["ok"] * 5 + ["not sent"] * 5
    assert result[9].error.startswith("batch_expired") and result.summary().not_sent == 5
    openai_server.expire = False
    nbtools.resend(result, via="batch", **FAST)
    assert result.texts == [f"answer: x{i}" for i in range(10)] and openai_server.creates == 2


def test_rows_cost_the_providers_batch_rates_and_a_rerun_from_the_store_costs_nothing(openai_server) -> None:
    from nbtools._engine.prices import price_for

    result = openai_batch(openai_server, ["a", "b"])
    batch_rate = price_for(result.endpoint, "gpt-4o-mini", None, batch_api=True)
    online_rate = price_for(result.endpoint, "gpt-4o-mini", None)
    assert batch_rate is not None and online_rate is not None
    assert batch_rate.cost(7, 3) < online_rate.cost(7, 3)  # about half price: the point of a Batch API
    assert result[0].cost == pytest.approx(batch_rate.cost(7, 3)) and result.summary().cost == pytest.approx(
        2 * batch_rate.cost(7, 3))
    again = openai_batch(openai_server, ["a", "b"])  # answered from the job store: nothing new is paid
    assert openai_server.creates == 1 and again.summary().cost == 0.0


# The same usage in each provider's shape: 100 prompt tokens, 40 of them read from the prompt cache, 10 out.
OPENAI_CACHED_USAGE = {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110,
                       "prompt_tokens_details": {"cached_tokens": 40, "audio_tokens": 0}}
ANTHROPIC_CACHED_USAGE = {"input_tokens": 60, "cache_read_input_tokens": 40, "cache_creation_input_tokens": 0,
                          "output_tokens": 10}


def _online_row_with_cached_usage(openai_server: OpenAIBatchServer, model: str) -> nbtools.RequestResult:
    openai_server.usage = OPENAI_CACHED_USAGE
    online = nbtools.batch(["a"], provider="openai", base_url=openai_server.url, model=model, cache=False)
    assert online[0].ok and online[0].cached_tokens == 40
    return online[0]


@pytest.mark.parametrize("provider, model", [("openai", "gpt-5-mini"), ("anthropic", "claude-3-5-haiku-latest")])
def test_batch_api_rows_keep_cached_prompt_tokens_and_pay_the_cached_input_price(
        provider, model, openai_server, anthropic_server) -> None:
    online = _online_row_with_cached_usage(openai_server, model="gpt-5-mini")
    if provider == "openai":
        server: OpenAIBatchServer | AnthropicBatchServer = openai_server
    else:
        server = anthropic_server
        server.usage = ANTHROPIC_CACHED_USAGE
    result = nbtools.batch(["a", "b"], via="batch", provider=provider, base_url=server.url, model=model, **FAST)
    price = result.price
    assert price is not None and price.cached_input is not None and price.cached_input < price.input
    for row in result:
        assert row.ok and (row.prompt_tokens, row.completion_tokens, row.cached_tokens) == (100, 10, 40)
        # What an online row with the same usage costs at these (batch) rates: cached tokens at the cached rate.
        assert row.cost == pytest.approx(price.cost(online.prompt_tokens, online.completion_tokens, online.cached_tokens))
        assert row.cost < price.cost(100, 10)
    again = nbtools.batch(["a", "b"], via="batch", provider=provider, base_url=server.url, model=model, **FAST)
    assert all(r.cached and r.cached_tokens == 40 and r.cost == 0.0 for r in again)  # from the job store


def test_a_spending_cap_is_refused_with_a_batch_job_which_runs_whole() -> None:
    with pytest.raises(ConfigError, match="max_cost cannot be used with via='batch'.*dry_run=True"):
        nbtools.batch(["a"], via="batch", model="sim-small", max_cost=1.0, max_tokens=10)
