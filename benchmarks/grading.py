#!/usr/bin/env python
"""What checks cost: the client CPU per request of the same batch with and without ``checks=``, side by side.

Starts the simulator as a separate process (fixed latency, spread 0, a fixed reply "The answer is 7."), then runs,
in turns (a fresh subprocess each, the order rotated every round, the reply cache off), ``abatch`` of N sums:

- **plain**: no checks;
- **checks**: ``expected=`` and four checks (``number``, ``contains``, ``regex:answer``, a lambda);
- **schema** (with ``--judge``): the plain batch sent to ``sim-judge`` with ``schema=`` the verdict's shape: any
  batch with structured output, the yardstick for the judge's pass;
- **judged** (with ``--judge``): the judge's pass over the plain batch's replies alone (``result.ajudge(...)``: a
  second batch through the same engine that asks the simulator's ``sim-judge`` to grade every reply, its verdict
  asked as structured output and validated); its CPU per request is the judge's own.

CPU is the child's user + sys time (``getrusage``) over the run only, divided by the requests sent.

    python benchmarks/grading.py                # N=4000, 3 rounds
    python benchmarks/grading.py --n 10000 --rounds 5 --judge
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import socket
import statistics
import subprocess
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))

CHILD = r"""
import asyncio, json, os, resource, sys
import nbtools

def cpu():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime

kind, url, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
prompts = [f"What is {i % 50} + {7 - i % 50}?" for i in range(n)]
options = dict(base_url=url, model="sim-small", concurrency=200, cache=False)
if kind == "checks":
    options.update(expected=[7] * n, checks={"right": "number", "in": "contains", "has": "regex:answer",
                                             "short": lambda row: len(row.text or "") < 40})
if kind == "judged":
    options.update(expected=[7] * n)
if kind == "schema":  # any batch asking for the verdict's shape: what the judge pass is compared with
    options.update(model="sim-judge", schema="pass: bool, reason: str")  # asked no scale, it answers pass/fail

async def main():
    t0 = cpu()
    result = await nbtools.abatch(prompts, **options)
    spent, requests = cpu() - t0, n
    assert result.summary().ok == n, result.summary()
    if kind == "judged":  # the judge's pass alone: a second batch over the replies, timed on its own
        t0 = cpu()
        await result.ajudge({"base_url": url, "model": "sim-judge", "concurrency": 200},
                            rubric="Is the reply right? Question: {prompt} Reply: {reply} Reference: {expected}")
        spent, requests = cpu() - t0, len(result.judged)
        assert result.judged.summary().ok == n, result.judged.summary()
    print(json.dumps({"cpu_per_request_us": spent / requests * 1e6, "requests": requests}))

asyncio.run(main())
"""


def start_sim(latency: float) -> tuple[subprocess.Popen[str], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "nbtools.sim", "--port", str(port), "--latency", str(latency), "--latency-spread",
           "0", "--seed", "0", "--reply", "The answer is 7."]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        sys.exit(f"the simulator did not start: {shlex.join(cmd)}")
    threading.Thread(target=lambda: [None for _ in proc.stdout or ()], daemon=True).start()
    return proc, f"http://127.0.0.1:{port}/v1"


def run(kind: str, url: str, n: int) -> float:
    env = {**os.environ, "NBTOOLS_CACHE": os.devnull}
    out = subprocess.run([sys.executable, "-c", CHILD, kind, url, str(n)], capture_output=True, text=True, env=env,
                         cwd=os.path.join(HERE, ".."), check=False)
    if out.returncode != 0:
        sys.exit(f"{kind} failed:\n{out.stderr[-2000:]}")
    return float(json.loads(out.stdout.strip().splitlines()[-1])["cpu_per_request_us"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=4000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--latency", type=float, default=0.02)
    p.add_argument("--judge", action="store_true", help="also the judge pass")
    args = p.parse_args()
    kinds = ["plain", "checks"] + (["schema", "judged"] if args.judge else [])
    proc, url = start_sim(args.latency)
    runs: dict[str, list[float]] = {kind: [] for kind in kinds}
    try:
        for r in range(args.rounds):
            order = kinds[r % len(kinds):] + kinds[:r % len(kinds)]
            for kind in order:
                runs[kind].append(run(kind, url, args.n))
            print(f"round {r + 1}: " + ", ".join(f"{k} {runs[k][-1]:.0f} us" for k in kinds), flush=True)
    finally:
        proc.kill()
    plain = statistics.median(runs["plain"])
    print(f"\nN={args.n}, {args.rounds} rounds, client CPU per request (median [range]):")
    for kind in kinds:
        median = statistics.median(runs[kind])
        print(f"  {kind:7} {median:7.0f} us [{min(runs[kind]):.0f}-{max(runs[kind]):.0f}]  ratio to plain {median / plain:.2f}")
    if args.judge:
        print(f"  judged / schema: {statistics.median(runs['judged']) / statistics.median(runs['schema']):.2f}")


if __name__ == "__main__":
    main()
