#!/usr/bin/env python
"""The prompt-cache warm-up on a shared-prefix batch: input cost, wall time and client CPU per request, warmed
against a cold fan-out, side by side in one run.

Starts the simulator as a separate process (its prompt cache as OpenAI's: from 1,024 tokens, in steps of 128;
no latency spread) and sends, in each round, the same batch twice, in alternating order, the simulator's cache
emptied (POST /sim/reset) before each:

  cold     nbtools.batch(prompts, prompt_cache_warmup=False): every row at once; the first wave all miss
  warm     nbtools.batch(prompts, prompt_cache_warmup=True): one row first, the rest once its reply has begun

The batch: N prompts (default 100) after a shared system prefix of P words (default 2,000; a word is a simulated
token) at concurrency C (default 50), to sim-pro (made-up list price: $2.50 per million input tokens, $0.25
cached: 0.1x). Input cost is each row's prompt tokens at those rates, its cached tokens at the cached rate. CPU is
this process's user + sys time over the run (the simulator runs apart), per request. The reply cache is off.
Medians over ``--repeat`` rounds.

    python benchmarks/prompt_cache.py [--n 100] [--prefix 2000] [--concurrency 50] [--repeat 5] [--stream]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import urllib.request

import nbtools

MODEL = "sim-pro"
INPUT, CACHED = 2.50, 0.25  # USD per million tokens: sim-pro's made-up list price (nbtools/sim/lineup.py)


def start_sim() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "nbtools.sim", "--port", "0", "--latency-spread", "0"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    url = proc.stdout.readline().strip().rsplit(" ", 1)[-1]
    return proc, url


def reset(url: str) -> None:
    urllib.request.urlopen(urllib.request.Request(url.removesuffix("/v1") + "/sim/reset", method="POST")).read()


def one(url: str, prompts: list[str], system: str, concurrency: int, warm: bool, stream: bool) -> dict[str, float]:
    reset(url)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    result = nbtools.batch(prompts, base_url=url, model=MODEL, system=system, concurrency=concurrency, cache=False,
                           prompt_cache_warmup=warm, stream=stream)
    cpu1, wall1 = time.process_time(), time.perf_counter()
    assert all(r.ok for r in result), [r.error for r in result if not r.ok][:3]
    prompt = sum(r.prompt_tokens or 0 for r in result)
    cached = sum(r.cached_tokens or 0 for r in result)
    return {
        "wall": wall1 - wall0,
        "cpu_ms": 1000 * (cpu1 - cpu0) / len(prompts),
        "input_usd": ((prompt - cached) * INPUT + cached * CACHED) / 1e6,
        "hits": sum(bool(r.cached_tokens) for r in result),
        "first_latency": min(r.latency or 0.0 for r in result),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100, help="prompts")
    parser.add_argument("--prefix", type=int, default=2000, help="words (simulated tokens) of the shared system prefix")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5, help="rounds; medians are reported")
    parser.add_argument("--stream", action="store_true", help="stream: the warm-up waits for the first token only")
    parser.add_argument("--json", help="write every round's figures to this file")
    args = parser.parse_args()
    system = " ".join(f"rule{i}" for i in range(args.prefix))
    prompts = [f"question {i}: what does rule {i} say?" for i in range(args.n)]
    proc, url = start_sim()
    runs: dict[str, list[dict[str, float]]] = {"cold": [], "warm": []}
    try:
        nbtools.batch(["warm the process up"], base_url=url, model=MODEL, cache=False)  # imports, first connection
        for k in range(args.repeat):
            for name in (("cold", "warm") if k % 2 == 0 else ("warm", "cold")):
                runs[name].append(one(url, prompts, system, args.concurrency, name == "warm", args.stream))
    finally:
        proc.terminate()
        proc.wait(10)
    med: dict[str, dict[str, float]] = {name: {key: statistics.median(r[key] for r in rs) for key in rs[0]}
                                        for name, rs in runs.items()}
    cold, warm = med["cold"], med["warm"]
    latency = cold["first_latency"]
    print(f"{args.n} prompts, a shared prefix of {args.prefix} tokens, concurrency {args.concurrency}, {MODEL} "
          f"(cached input 0.1x), {'streamed' if args.stream else 'not streamed'}; medians of {args.repeat} rounds")
    print(f"{'':6} {'rows hit':>9} {'input cost':>11} {'wall':>8} {'client CPU/request':>19}")
    for name, m in med.items():
        print(f"{name:6} {m['hits']:>9.0f} {'$' + format(m['input_usd'], '.4f'):>11} {m['wall']:>7.2f}s "
              f"{m['cpu_ms']:>16.3f} ms")
    print(f"input cost, warm / cold:   {warm['input_usd'] / cold['input_usd']:.3f}x   (target: at most 0.2x)")
    print(f"wall, warm / cold:         {warm['wall'] / cold['wall']:.3f}x   warm - cold = {warm['wall'] - cold['wall']:.2f} s "
          f"(one latency: {latency:.2f} s; target: warm <= 1.1 x cold + one latency)")
    print(f"client CPU/request, warm / cold: {warm['cpu_ms'] / cold['cpu_ms']:.3f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(runs, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
