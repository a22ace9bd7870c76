#!/usr/bin/env python
"""Several models in one batch: its wall time against each endpoint alone, and its client CPU per request.

Starts three simulators as separate processes (fixed latencies, no spread, a fixed reply), one per
endpoint, and runs, one after the other in each round, in this process:

  alone (each)   nbtools.batch(prompts, base_url=<that endpoint>, concurrency=C) for each endpoint
  together       nbtools.batch(prompts, models=[the three endpoints, concurrency C each])
  one model      nbtools.batch(prompts * 3, base_url=<the fastest endpoint>, concurrency=3C): the same
                 number of requests and slots, one endpoint (the CPU yardstick)

Prints the wall time of each, the ratio together / slowest alone (target: within 1.2x), and the client
CPU (user + sys of this process, over the run) per request of "together" against "one model". The cache
is off throughout. ``--repeat K`` reports medians of K rounds.

    python benchmarks/multimodel.py [--n 200] [--concurrency 16] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import nbtools

LATENCIES = (0.05, 0.15, 0.3)  # seconds per reply at each endpoint
REPLY = "A fixed reply of a few words, the same every time."


def start_sim(latency: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "nbtools.sim", "--port", "0", "--latency", str(latency),
                             "--latency-spread", "0", "--reply", REPLY], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    url = proc.stdout.readline().strip().rsplit(" ", 1)[-1]
    return proc, url


def measured(run: Callable[[], Any]) -> tuple[float, float, Any]:
    """(wall seconds, CPU seconds of this process, what ``run`` returned)."""
    cpu0, wall0 = os.times(), time.perf_counter()
    out = run()
    cpu1, wall1 = os.times(), time.perf_counter()
    return wall1 - wall0, (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system), out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200, help="prompts per endpoint")
    parser.add_argument("--concurrency", type=int, default=16, help="slots per endpoint")
    parser.add_argument("--repeat", type=int, default=1, help="rounds; medians are reported")
    args = parser.parse_args()
    n, c = args.n, args.concurrency
    servers = [start_sim(latency) for latency in LATENCIES]
    urls = [url for _, url in servers]
    prompts = [f"question {i}" for i in range(n)]
    common = {"cache": False, "retries": 0}
    items = [{"base_url": url, "model": f"m{k}", "label": f"{latency:g} s", "concurrency": c}
             for k, (url, latency) in enumerate(zip(urls, LATENCIES, strict=True))]
    alone: dict[str, list[float]] = {item["label"]: [] for item in items}
    together, together_cpu, single_cpu, single_wall = [], [], [], []
    try:
        nbtools.batch(["warm up"] * 4, models=items, **common)  # imports and first connections out of the way
        for _ in range(args.repeat):
            for item in items:
                def alone_run(item: dict[str, Any] = item) -> Any:
                    return nbtools.batch(prompts, base_url=item["base_url"], model=item["model"], concurrency=c, **common)
                wall, _, result = measured(alone_run)
                assert all(row.ok for row in result)
                alone[item["label"]].append(wall)
            wall, cpu, result = measured(lambda: nbtools.batch(prompts, models=items, **common))
            assert all(row.ok for row in result) and len(result) == 3 * n
            together.append(wall)
            together_cpu.append(cpu / (3 * n))
            wall, cpu, result = measured(lambda: nbtools.batch(prompts * 3, base_url=urls[0], model="m0",
                                                               concurrency=3 * c, **common))
            assert all(row.ok for row in result)
            single_wall.append(wall)
            single_cpu.append(cpu / (3 * n))
    finally:
        for proc, _ in servers:
            proc.terminate()
            proc.wait(10)
    med = statistics.median
    ideal = {label: n / c * float(label.split()[0]) for label in alone}
    print(f"{n} prompts x 3 endpoints, concurrency {c} each, cache off, {args.repeat} round(s), medians:")
    for label, walls in alone.items():
        print(f"  alone, {label} per reply: {med(walls):6.2f} s wall (ideal {ideal[label]:.2f} s)")
    slowest = max(med(walls) for walls in alone.values())
    ratio = med(together) / slowest
    print(f"  together (3 models):      {med(together):6.2f} s wall = {ratio:.2f}x the slowest alone "
          f"(target <= 1.2x: {'met' if ratio <= 1.2 else 'NOT met'}); the sum alone would be "
          f"{sum(med(w) for w in alone.values()):.2f} s")
    cpu_ratio = med(together_cpu) / med(single_cpu)
    print(f"  client CPU per request: together {1e6 * med(together_cpu):.0f} us, one model "
          f"({3 * n} requests, concurrency {3 * c}, {med(single_wall):.2f} s wall) {1e6 * med(single_cpu):.0f} us "
          f"= {cpu_ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
