#!/usr/bin/env python
"""Adaptive concurrency against a rate-limited and a capacity-limited server, side by side.

Starts the simulator as a separate process for each scenario and runs, one after the other:

  usual           AsyncOpenAI() (SDK defaults: 2 retries honoring Retry-After) + Semaphore(100) + gather
  nbtools c=100   nbtools at a fixed concurrency of 100 (default 2 retries)
  nbtools auto    nbtools with concurrency="auto"

Scenarios (the server enforces its limit, the clients are not told it):
  rpm       600 requests/minute (enforced per second, as providers do), latency 0.3 s
  capacity  32 requests at once, 503 beyond that (as Ollama past its queue), latency 0.2 s

Prints, per client: wall time, throughput as a share of the server's limit, failed requests, and the
429/503 answers the server gave. Targets for auto: >= 90% of the limit and zero failures.

    python benchmarks/adaptive.py [--scenario rpm|capacity] [--n N] [--skip-usual]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Coroutine
from typing import Any

import nbtools

SCENARIOS: dict[str, dict[str, Any]] = {
    "rpm": {"knobs": ["--rpm", "600", "--latency", "0.3"], "limit_rps": 600 / 60, "n": 300},
    "capacity": {"knobs": ["--capacity", "32", "--over-capacity", "503", "--latency", "0.2"], "limit_rps": 32 / 0.2, "n": 3000},
}


def start_sim(knobs: list[str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "nbtools.sim", "--port", "0", "--latency-spread", "0", *knobs],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    url = proc.stdout.readline().strip().rsplit(" ", 1)[-1]
    return proc, url


def sim_call(url: str, path: str, method: str = "GET") -> dict[str, Any]:
    request = urllib.request.Request(url.removesuffix("/v1") + path, method=method, data=b"{}" if method == "POST" else None)
    with urllib.request.urlopen(request) as response:
        return json.load(response)


async def usual(url: str, prompts: list[str]) -> int:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=url, api_key="sk-bench-not-a-real-key")
    semaphore = asyncio.Semaphore(100)

    async def one(prompt: str) -> bool:
        async with semaphore:
            try:
                await client.chat.completions.create(model="m", messages=[{"role": "user", "content": prompt}])
                return True
            except Exception:
                return False

    results = await asyncio.gather(*(one(p) for p in prompts))
    await client.close()
    return results.count(False)


async def nbtools_fixed(url: str, prompts: list[str]) -> int:
    result = await nbtools.abatch(prompts, base_url=url, model="m", concurrency=100, cache=False)
    return result.summary().errors


async def nbtools_auto(url: str, prompts: list[str]) -> int:
    result = await nbtools.abatch(prompts, base_url=url, model="m", concurrency="auto", cache=False)
    print(f"    (auto settled at concurrency {result.concurrency})", flush=True)
    return result.summary().errors


CLIENTS: dict[str, Callable[[str, list[str]], Coroutine[Any, Any, int]]] = {
    "usual: AsyncOpenAI + Semaphore(100)": usual,
    "nbtools concurrency=100": nbtools_fixed,
    "nbtools concurrency='auto'": nbtools_auto,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=list(SCENARIOS), action="append")
    parser.add_argument("--n", type=int, help="requests per run (default per scenario)")
    parser.add_argument("--skip-usual", action="store_true")
    args = parser.parse_args()
    print("| scenario | client | wall (s) | answered per second | % of the limit | failed | 429/503 seen |")
    print("|---|---|---|---|---|---|---|")
    for name in args.scenario or list(SCENARIOS):
        spec = SCENARIOS[name]
        n = args.n or spec["n"]
        prompts = [f"request {i}" for i in range(n)]
        for label, client in CLIENTS.items():
            if args.skip_usual and label.startswith("usual"):
                continue
            proc, url = start_sim(spec["knobs"])  # a fresh server: no budget left over from the last client
            try:
                t = time.perf_counter()
                failed = asyncio.run(client(url, prompts))
                wall = time.perf_counter() - t
                stats = sim_call(url, "/sim/stats")
            finally:
                proc.terminate()
                proc.wait(10)
            ok = n - failed
            status = stats.get("status", {})
            refused = status.get("429", 0) + status.get("503", 0)
            print(f"| {name} | {label} | {wall:.1f} | {ok / wall:.1f} | {100 * ok / wall / spec['limit_rps']:.0f}% "
                  f"| {failed} | {refused} |", flush=True)


if __name__ == "__main__":
    main()
