#!/usr/bin/env python
"""The client's cost of N prompts via the provider's Batch API, side by side with the online path.

Starts the nbtools simulator as a separate process (reply "echo", batch_delay 1 s, latency 0), then
runs each path in its own fresh subprocess against it:

  batch   nbtools.batch(prompts, via="batch", ...): build the JSONL, upload, create the job(s) (over
          50,000 requests the OpenAI protocol splits them into several jobs), poll, download and parse
          the result files into the rows; then store the results in the job store.
  online  nbtools.batch(prompts, concurrency=C, cache=False): one HTTP request per prompt.

Each child reports (imports excluded) wall time, CPU (getrusage user + sys), peak RSS (ru_maxrss, whole
process) and, for the batch path, the client-side seconds of its phases (build; upload + create;
download + parse + fill). The wall time of the batch path includes the simulator's own processing
(batch_delay, and writing N replies), which is the provider's time, not the client's.

    python benchmarks/batch_api.py                 # N = 100,000
    python benchmarks/batch_api.py -n 5000 -c 200  # a quick run
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

MODEL = "sim-small"

CHILD = r"""
import json, resource, sys, time
import nbtools
n, path, base_url, concurrency = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
prompts = [f"Summarize item number {i} in one sentence." for i in range(n)]
usage0 = resource.getrusage(resource.RUSAGE_SELF)
t0 = time.perf_counter()
if path == "batch":
    result = nbtools.batch(prompts, via="batch", base_url=base_url, model="sim-small", poll_interval=0.2)
else:
    result = nbtools.batch(prompts, base_url=base_url, model="sim-small", concurrency=concurrency, cache=False)
wall = time.perf_counter() - t0
usage = resource.getrusage(resource.RUSAGE_SELF)
cpu = usage.ru_utime - usage0.ru_utime + usage.ru_stime - usage0.ru_stime
ok = sum(r.ok for r in result)
job = getattr(result, "batch_run", None)
print(json.dumps({"wall": wall, "cpu": cpu, "rss_mb": usage.ru_maxrss / 1024, "ok": ok,
                  "in_order": result.texts == prompts, "jobs": len(job.jobs) if job else 0,
                  "timings": job.timings if job else {}}))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_sim(port: int) -> subprocess.Popen[bytes]:
    sim = subprocess.Popen([sys.executable, "-m", "nbtools.sim", "--port", str(port), "--latency", "0",
                            "--latency-spread", "0", "--reply", "echo", "--batch-delay", "1"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert sim.stdout is not None
    sim.stdout.readline()  # "listening on ..."
    return sim


def run_child(path: str, n: int, base_url: str, concurrency: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "NBTOOLS_CACHE": os.path.join(tmp, "replies.sqlite")}  # a fresh job store too
        out = subprocess.run([sys.executable, "-c", CHILD, str(n), path, base_url, str(concurrency)],
                             capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100_000, help="prompts (default: %(default)s)")
    parser.add_argument("-c", type=int, default=200, help="online concurrency (default: %(default)s)")
    args = parser.parse_args()
    port = free_port()
    sim = start_sim(port)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        rows = {}
        for path in ("batch", "online"):
            rows[path] = run_child(path, args.n, base_url, args.c)
            urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/sim/reset", method="POST")).read()
    finally:
        sim.terminate()
        sim.wait()
    n = args.n
    print(f"N = {n:,} prompts, simulator in its own process; {time.strftime('%Y-%m-%d')}\n")
    print("| path | wall | client CPU | CPU per request | peak RSS | rows ok, in order |")
    print("|---|---|---|---|---|---|")
    for path, r in rows.items():
        label = f"batch ({r['jobs']} jobs)" if path == "batch" else f"online (concurrency {args.c})"
        print(f"| {label} | {r['wall']:.2f} s | {r['cpu']:.2f} s | {1000 * r['cpu'] / n:.3f} ms | "
              f"{r['rss_mb']:.0f} MB | {r['ok']:,}, {r['in_order']} |")
    t = rows["batch"]["timings"]
    assert isinstance(t, dict)
    print(f"\nbatch path, client-side phases: build {t['build']:.2f} s, upload + create {t['submit']:.2f} s, "
          f"download + parse + fill {t['results']:.2f} s")
    b, o = rows["batch"], rows["online"]
    print(f"ratios batch / online: CPU {b['cpu'] / o['cpu']:.2f}x, peak RSS {b['rss_mb'] / o['rss_mb']:.2f}x, "  # type: ignore[operator]
          f"wall {b['wall'] / o['wall']:.2f}x")  # type: ignore[operator]
    return 0


if __name__ == "__main__":
    sys.exit(main())
