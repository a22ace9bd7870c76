#!/usr/bin/env python
"""Real providers' errors, measured side by side in one run.

A local server (tests/support/error_server.py, on 127.0.0.1 in a thread of this process) answers with the
documented error replies of tests/support/provider_errors.py. Two tables:

1. Batch-wide failures (a refused key, no quota, a missing model, no permission): N prompts at
   concurrency 20 (and the OpenAI 429 insufficient_quota at concurrency="auto"). Requests the server
   received, and seconds from the call until batch() raised EndpointError. Target: at most
   concurrency + 1 requests, and well under a second. Refused parameters too (tests/provider_params.py):
   a model that refuses a field every row sends (temperature on gpt-5), answered whenever it is sent.
2. Rate limits: OpenAI's 429 rate_limit_exceeded with ``retry-after-ms: 50`` on 10 %, 33 % and 50 % of the
   requests (spread evenly: with 10 %, the 10th, 20th, ... request), at concurrency 20 and "auto"; and
   Anthropic's 529 overloaded_error (no wait named) on 33 %. Failed rows (target 0), requests sent per
   row, and wall time against the ideal: the same batch against the same server that never pushes back.
   These shares do not depend on the load, unlike a real limit; so last, a server that 429s whatever
   arrives while 10 requests are in flight, against the ideal of exactly 10 at a time.

    python benchmarks/failures.py [--n 200] [--latency 0.1] [--repeat 1]

With --repeat K every figure is the median of K runs (scenarios take turns within a round).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the fixtures live in tests/support/

import nbtools  # noqa: E402
from tests.support import provider_errors as pe  # noqa: E402
from tests.support import provider_params as pp  # noqa: E402
from tests.support.error_server import ProviderServer, Script, every, share  # noqa: E402
from tests.support.helpers import serve_app  # noqa: E402

KEY_ENV = "NBTOOLS_BENCH_KEY"
MODEL = "bench-model"


def _reply(replies: list[pe.ErrorReply], case: str) -> pe.ErrorReply:
    return next(r for r in replies if r.case == case)


# (label, reply, provider=, concurrency)
STOPS: list[tuple[str, pe.ErrorReply, str | None, int | str]] = [
    ("auth: OpenAI 401 invalid_api_key", _reply(pe.OPENAI, "invalid_api_key"), "openai", 20),
    ("auth: xAI 400 incorrect API key", _reply(pe.XAI, "incorrect_api_key"), "xai", 20),
    ("quota: OpenAI 429 insufficient_quota", _reply(pe.OPENAI, "insufficient_quota"), "openai", 20),
    ("quota: OpenAI 429 insufficient_quota, auto", _reply(pe.OPENAI, "insufficient_quota"), "openai", "auto"),
    ("quota: Anthropic 400 credit balance too low", _reply(pe.ANTHROPIC, "credit_balance_too_low"), "anthropic", 20),
    ("not_found: OpenAI 404 model_not_found", _reply(pe.OPENAI, "model_not_found"), "openai", 20),
    ("not_found: Ollama 404 model not found", _reply(pe.OLLAMA, "model_not_found_v1"), "ollama", 20),
    ("permission: OpenAI 403 unsupported region", _reply(pe.OPENAI, "unsupported_region"), "openai", 20),
]

# (label, refusal, provider=, concurrency): the server refuses every request that carries the field.
REFUSED: list[tuple[str, pp.Refusal, str | None, int | str]] = [
    ("parameter: OpenAI 400 temperature unsupported_value", pp.REFUSALS[0], "openai", 20),
    ("parameter: OpenAI 400 temperature, auto", pp.REFUSALS[0], "openai", "auto"),
    ("parameter: Gemini 400 Unknown name (a params field)",
     next(r for r in pp.REFUSALS if r.reply.provider == "gemini"), None, 20),
]


def refusing(refusal: pp.Refusal) -> Script:
    return lambda number, body: refusal.reply if refusal.field in body else None


# OpenAI's rate_limit_exceeded body with the retry-after-ms header openai-python honours; its fixture's
# x-ratelimit-* headers (a window that resets in 20 s) are left out so the wait is the 50 ms asked for.
RATE_50MS = dataclasses.replace(_reply(pe.OPENAI, "rate_limit_requests"),
                                headers={**pe.OPENAI_HEADERS, "retry-after-ms": "50"})
OVERLOADED = _reply(pe.ANTHROPIC, "overloaded_error")
CONCURRENCIES: tuple[int | str, ...] = (20, "auto")
CAPACITY = 10  # the load-dependent scenario: 429 to a request that arrives while 10 are in flight
# (label, reply, provider=, share of requests)
PUSHBACKS: list[tuple[str, pe.ErrorReply, str, float]] = [
    ("429 on 10%", RATE_50MS, "openai", 0.10),
    ("429 on 33%", RATE_50MS, "openai", 1 / 3),
    ("429 on 50%", RATE_50MS, "openai", 0.50),
    ("529 overloaded on 33%", OVERLOADED, "anthropic", 1 / 3),
]


def run_once(script: Script | None, provider: str | None, n: int, concurrency: int | str,
             latency: float, **options: Any) -> dict[str, Any]:
    """One batch against a fresh server: what the server saw and how the batch ended."""
    return run_on(ProviderServer(script, latency=latency), provider, n, concurrency, **options)


def beyond(capacity: int, reply: pe.ErrorReply, latency: float) -> ProviderServer:
    """A server that answers ``reply`` to any request arriving while ``capacity`` others are in flight."""
    server = ProviderServer(latency=latency)
    server.script = lambda number, body: reply if server.in_flight > capacity else None
    return server


def run_on(server: ProviderServer, provider: str | None, n: int, concurrency: int | str,
           **options: Any) -> dict[str, Any]:
    prompts = [f"prompt {i}" for i in range(n)]
    with serve_app(server.app()) as url:
        started = time.perf_counter()
        try:
            result = nbtools.batch(prompts, provider=provider, base_url=url + "/v1", model=MODEL,
                                   api_key_env=KEY_ENV, concurrency=concurrency, cache=False, **options)
            stopped = None
        except nbtools.EndpointError as exc:
            assert exc.result is not None
            result, stopped = exc.result, str(exc)
        seconds = time.perf_counter() - started
    statuses = [row.status for row in result.rows]
    return {"calls": server.calls, "seconds": seconds, "stopped": stopped, "failed": statuses.count("error"),
            "not_sent": statuses.count("not sent"), "ok": statuses.count("ok")}


def median(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def rounds(jobs: list[Callable[[], dict[str, Any]]], repeat: int) -> list[list[dict[str, Any]]]:
    """Run every job ``repeat`` times, taking turns in a different order each round."""
    runs: list[list[dict[str, Any]]] = [[] for _ in jobs]
    for r in range(repeat):
        order = list(range(len(jobs)))
        order = order[r % len(order):] + order[: r % len(order)]
        for i in order:
            runs[i].append(jobs[i]())
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200, help="prompts per batch (default 200)")
    parser.add_argument("--latency", type=float, default=0.1, help="the server's seconds per request (default 0.1)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per figure; the median is shown (default 1)")
    args = parser.parse_args()
    os.environ[KEY_ENV] = pe.FAKE_KEY
    os.environ["NBTOOLS_CACHE"] = str(Path(tempfile.mkdtemp()) / "replies.sqlite")  # never the user's cache
    n, latency = args.n, args.latency
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}; n={n}, server latency {latency} s, median of {args.repeat} run(s)\n")

    stop_jobs = [partial(run_once, every(1, reply), provider, n, c, latency) for _, reply, provider, c in STOPS]
    stop_jobs += [partial(run_once, refusing(refusal), provider, n, c, latency, **refusal.options)
                  for _, refusal, provider, c in REFUSED]
    stop_runs = rounds(stop_jobs, args.repeat)
    stop_labels = [(label, c) for label, _, _, c in STOPS] + [(label, c) for label, _, _, c in REFUSED]
    print(f"## Batch-wide failures: {n} prompts\n")
    print("| failure | concurrency | requests sent | rows error / not sent | seconds until stopped |")
    print("|---|---|---|---|---|")
    for (label, c), runs in zip(stop_labels, stop_runs, strict=True):
        assert all(run["stopped"] for run in runs), f"{label}: the batch did not stop"
        print(f"| {label} | {c} | {median(runs, 'calls'):.0f} | {median(runs, 'failed'):.0f} / "
              f"{median(runs, 'not_sent'):.0f} | {median(runs, 'seconds'):.2f} |")

    jobs: list[Callable[[], dict[str, Any]]] = []
    for c in CONCURRENCIES:
        jobs.append(partial(run_once, None, "openai", n, c, latency))  # the ideal: no push-back
        for _, reply, provider, fraction in PUSHBACKS:
            jobs.append(partial(run_once, share(fraction, reply), provider, n, c, latency))
    for c in CONCURRENCIES:  # a load-dependent limit, as a real server has: AIMD can find it
        jobs.append(lambda c=c: run_on(beyond(CAPACITY, RATE_50MS, latency), "openai", n, c))  # type: ignore[misc]
    jobs.append(partial(run_once, None, "openai", n, CAPACITY, latency))  # the ideal: exactly the capacity
    push_runs = rounds(jobs, args.repeat)
    print(f"\n## Rate limits and overload: {n} prompts, retry-after-ms 50 on the 429s, none on the 529s\n")
    print("| server | concurrency | failed rows | requests sent per row | wall s | ideal wall s | wall / ideal |")
    print("|---|---|---|---|---|---|---|")

    def row(label: str, c: int | str, runs: list[dict[str, Any]], ideal: float) -> None:
        wall = median(runs, "seconds")
        print(f"| {label} | {c} | {median(runs, 'failed'):.0f} | {median(runs, 'calls') / n:.2f} | {wall:.2f} | "
              f"{ideal:.2f} | {wall / ideal:.2f} |")

    per = len(PUSHBACKS) + 1
    for block, c in enumerate(CONCURRENCIES):
        ideal = median(push_runs[block * per], "seconds")
        row("never pushes back (the ideal)", c, push_runs[block * per], ideal)
        for (label, _, _, _), runs in zip(PUSHBACKS, push_runs[block * per + 1 : (block + 1) * per], strict=True):
            row(label, c, runs, ideal)
    ideal = median(push_runs[-1], "seconds")
    row("never pushes back (the ideal at the capacity)", CAPACITY, push_runs[-1], ideal)
    for c, runs in zip(CONCURRENCIES, push_runs[2 * per : 2 * per + 2], strict=True):
        row(f"429 beyond {CAPACITY} in flight", c, runs, ideal)

if __name__ == "__main__":
    main()
