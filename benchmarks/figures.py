#!/usr/bin/env python
"""Honest speedup: the speedup a batch claims against the one measured, per server capacity.

For each server capacity (1, 4, 16 requests processed at once, or unlimited; the rest queue, as
llama.cpp does) it starts the simulator as a separate process and sends the same N prompts at
concurrency 1, 4 and 16, one run after the other. It prints, per run:

  wall          the batch's wall time
  claimed       Summary.speedup: the estimated serial-equivalent time (server queueing taken out,
                nbtools.figures) / wall; what the summary line says
  measured      the wall time at concurrency 1 / this run's wall time (what ``--compare`` measures)
  sum/wall      the sum of latencies / wall: what the summary claimed before taking queueing out
  capacity      Summary.server_capacity: how many at a time the summary says the server processed
                ("-": the server was not the limit)

Targets: capacity 1, no claimed speedup above 1.3x; capacities 4 and 16, the claimed
speedup within 20% of the measured one.

    python benchmarks/figures.py [--n N] [--latency SECONDS] [--spread SIGMA]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time

import nbtools

CAPACITIES: tuple[int | None, ...] = (1, 4, 16, None)
CONCURRENCIES = (1, 4, 16)


def start_sim(capacity: int | None, latency: float, spread: float) -> tuple[subprocess.Popen[str], str]:
    knobs = ["--latency", str(latency), "--latency-spread", str(spread), "--over-capacity", "queue"]
    if capacity is not None:
        knobs += ["--capacity", str(capacity)]
    proc = subprocess.Popen([sys.executable, "-m", "nbtools.sim", "--port", "0", *knobs], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    url = proc.stdout.readline().strip().rsplit(" ", 1)[-1]
    return proc, url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=48, help="requests per run (default 48)")
    parser.add_argument("--latency", type=float, default=0.2, help="the simulator's mean latency, seconds (default 0.2)")
    parser.add_argument("--spread", type=float, default=0.1, help="lognormal sigma of the latency (default 0.1)")
    args = parser.parse_args()
    prompts = [f"Give me tip number {i} for writing clear Python." for i in range(args.n)]
    print(f"{time.strftime('%Y-%m-%d')}, {platform.system()} {platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}; {args.n} requests per run, simulator latency {args.latency:g} s "
          f"(lognormal sigma {args.spread:g}), queueing past its capacity\n")
    print("| server capacity | concurrency | wall | claimed speedup | measured speedup | sum/wall (before) | capacity reported |")
    print("|---|---|---|---|---|---|---|")
    for capacity in CAPACITIES:
        proc, url = start_sim(capacity, args.latency, args.spread)
        try:
            serial_wall = 0.0
            for concurrency in CONCURRENCIES:
                result = nbtools.batch(prompts, base_url=url, concurrency=concurrency, cache=False)
                s = result.summary()
                assert s.ok == args.n, s
                if concurrency == 1:
                    serial_wall = s.wall
                claimed = f"{s.speedup:.2f}x" if s.speedup is not None else "?"
                seen = str(s.server_capacity) if s.server_capacity is not None else "-"
                print(f"| {capacity or 'unlimited'} | {concurrency} | {s.wall:.2f} s | {claimed} | "
                      f"{serial_wall / s.wall:.2f}x | {s.sum_latency / s.wall:.2f}x | {seen} |", flush=True)
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
