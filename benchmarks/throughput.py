#!/usr/bin/env python
"""Client cost per request: the usual AsyncOpenAI recipe vs nbtools vs a bare aiohttp floor.

Starts the nbtools simulator as a separate process (fixed latency, spread 0), then for every scenario
runs each client in its own fresh subprocess, one after the other, against the same simulator:

  usual    AsyncOpenAI(base_url=..., api_key=...) default transport + asyncio.Semaphore(C) + gather
  nbtools  await nbtools.abatch(prompts, concurrency=C, base_url=...)
  floor    one bare aiohttp.ClientSession posting the same JSON through a Semaphore(C) + gather

Two more rows for context: nbtools with cache=False (its on-disk reply cache is on by default for a
base_url; the benchmark points it at a fresh temporary file, so every run is a cold first run and
the user's cache is never touched), and in the N=100000 scenario a "pool" reference: bare aiohttp
with C worker tasks and no task per request, the least memory a client can use.

Each child measures only its own run (imports excluded): wall time, CPU (getrusage, user + sys),
peak RSS (ru_maxrss, whole process). The simulator's stats are reset before each client and read
after it (peak_in_flight = the most requests the server saw at once), and the simulator's own CPU
is sampled with psutil so a CPU-bound server shows up. Prints a markdown table of medians over
--repeat runs (clients rotate their order from run to run), then the ratios with the targets;
"best wall" uses each client's fastest run, which noise from other processes can only slow down.

    python benchmarks/throughput.py                  # all scenarios, one run each
    python benchmarks/throughput.py --repeat 3       # medians of 3 runs
    python benchmarks/throughput.py --quick          # small smoke run, well under a minute
    python benchmarks/throughput.py --scenario 2k --scenario 100k --clients nbtools,floor

Needs the bench extra: pip install -e '.[bench]' (openai[aiohttp], psutil).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

API_KEY = "sk-bench-not-a-real-key"
MODEL = "sim-small"
REPLY = "A short simulated reply of about a dozen tokens, the same for every request."
CLIENTS = ("usual", "nbtools", "nbtools-nocache", "nbtools-nocache-before", "nbtools-typed", "floor", "pool")
# Typed output: the simulator answers response_format json_schema with JSON that fits; nbtools validates it.
TYPED_SCHEMA = "sentiment: positive|negative|mixed, score: int, reasons: list[str], note: str?"
LABELS = {
    "usual": "usual: AsyncOpenAI() + Semaphore + gather",
    "nbtools": "nbtools.abatch (defaults: reply cache on, cold)",
    "nbtools-nocache": "nbtools.abatch(cache=False)",
    "nbtools-nocache-before": "nbtools.abatch(cache=False), the --before code",
    "nbtools-typed": "nbtools.abatch(cache=False, schema=...): typed output",
    "floor": "floor: bare aiohttp + Semaphore + gather",
    "pool": "(reference) bare aiohttp, C worker tasks",
}
TARGET_CPU = 2.0  # nbtools CPU/req <= 2x floor
TARGET_WALL = 1.25  # nbtools wall <= 1.25x floor
TARGET_USUAL = 5.0  # usual CPU/req >= 5x nbtools
TARGET_RSS = 2.0  # N=100000: nbtools peak RSS <= 2x floor


@dataclass(frozen=True)
class Scenario:
    key: str
    n: int
    c: int
    latency: float
    skip_usual: bool = False  # the usual recipe would take many minutes here
    rss_target: bool = False  # the peak-RSS comparison applies

    @property
    def ideal(self) -> float:
        return -(-self.n // self.c) * self.latency


def scenarios(args: argparse.Namespace) -> list[Scenario]:
    if args.quick:
        table = [
            Scenario("2k", 300, 100, 0.1),
            Scenario("5k", 600, 300, 0.1),
            Scenario("20k", 2000, 500, 0.1),
            Scenario("100k", 2000, args.huge_c, 0.0, skip_usual=not args.usual_huge, rss_target=True),
        ]
    else:
        table = [
            Scenario("2k", 2000, 200, 0.1),
            Scenario("5k", 5000, 1000, 0.1),
            Scenario("20k", 20000, 500, 0.1),
            Scenario("100k", args.huge_n, args.huge_c, 0.0, skip_usual=not args.usual_huge, rss_target=True),
        ]
    chosen = args.scenario or [s.key for s in table]
    return [s for s in table if s.key in chosen]


# ---------------------------------------------------------------------------------------------
# child: one client, one run, one JSON line on stdout
# ---------------------------------------------------------------------------------------------


def _prompts(n: int) -> list[str]:
    return [f"Question {i}: answer in one short sentence, please." for i in range(n)]


async def _run_usual(url: str, prompts: list[str], c: int, stats: dict) -> list:
    import asyncio

    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=url, api_key=API_KEY)
    sem = asyncio.Semaphore(c)

    async def one(prompt: str) -> str | None:
        async with sem:
            stats["in_flight"] += 1
            stats["peak"] = max(stats["peak"], stats["in_flight"])
            try:
                r = await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": prompt}])
                return r.choices[0].message.content
            finally:
                stats["in_flight"] -= 1

    try:
        return await asyncio.gather(*(one(p) for p in prompts), return_exceptions=True)
    finally:
        await client.close()


async def _run_floor(url: str, prompts: list[str], c: int, stats: dict) -> list:
    import asyncio

    import aiohttp

    sem = asyncio.Semaphore(c)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), headers=headers) as session:
        endpoint = url + "/chat/completions"

        async def one(prompt: str) -> str:
            async with sem:
                stats["in_flight"] += 1
                stats["peak"] = max(stats["peak"], stats["in_flight"])
                try:
                    body = {"model": MODEL, "messages": [{"role": "user", "content": prompt}]}
                    async with session.post(endpoint, json=body) as resp:
                        data = await resp.json()
                        return data["choices"][0]["message"]["content"]
                finally:
                    stats["in_flight"] -= 1

        return await asyncio.gather(*(one(p) for p in prompts), return_exceptions=True)


async def _run_pool(url: str, prompts: list[str], c: int, stats: dict) -> list:
    """Memory reference: C workers pull prompts in order, so no task or coroutine exists per request."""
    import asyncio

    import aiohttp

    headers = {"Authorization": f"Bearer {API_KEY}"}
    texts: list = [None] * len(prompts)
    todo = iter(enumerate(prompts))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), headers=headers) as session:
        endpoint = url + "/chat/completions"

        async def worker() -> None:
            for i, prompt in todo:
                stats["in_flight"] += 1
                stats["peak"] = max(stats["peak"], stats["in_flight"])
                try:
                    body = {"model": MODEL, "messages": [{"role": "user", "content": prompt}]}
                    async with session.post(endpoint, json=body) as resp:
                        data = await resp.json()
                        texts[i] = data["choices"][0]["message"]["content"]
                except Exception as exc:
                    texts[i] = exc
                finally:
                    stats["in_flight"] -= 1

        await asyncio.gather(*(worker() for _ in range(c)))
    return texts


def child(args: argparse.Namespace) -> None:
    import asyncio

    # Import the client's own modules before measuring: the numbers are for the run, not imports.
    if args.child == "usual":
        import openai  # noqa: F401
    elif args.child.startswith("nbtools"):
        import nbtools
        if args.child == "nbtools-typed":  # pydantic imports most of itself on the first model built: not the run
            from nbtools._base.schemas import to_schema
            to_schema("warm_up: int")
    else:
        import aiohttp  # noqa: F401
    prompts = _prompts(args.n)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    stats = {"in_flight": 0, "peak": 0}
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    if args.child.startswith("nbtools"):
        extra: dict[str, Any] = {"cache": False} if "nocache" in args.child or args.child == "nbtools-typed" else {}
        if args.child == "nbtools-typed":
            extra["schema"] = TYPED_SCHEMA
        extra.update(json.loads(args.nbtools_options))
        result = asyncio.run(
            nbtools.abatch(prompts, model=MODEL, concurrency=args.c, base_url=args.url, api_key=API_KEY,
                           retries=args.retries, timeout=args.timeout, **extra)
        )
        wall = time.perf_counter() - t0
        summary = result.summary()
        texts = result.texts
        if args.child == "nbtools-typed":  # a typed reply is right when it validated
            texts = [REPLY if r.data is not None else r.text for r in result.rows]
        errors = [r.error for r in result.rows if r.error is not None or r.text is None]
        peak = summary.max_concurrency
    else:
        run = {"usual": _run_usual, "floor": _run_floor, "pool": _run_pool}[args.child]
        texts = asyncio.run(run(args.url, prompts, args.c, stats))
        wall = time.perf_counter() - t0
        errors = [repr(t) for t in texts if not isinstance(t, str)]
        peak = stats["peak"]
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    assert len(texts) == args.n
    print(json.dumps({
        "wall": wall, "cpu": cpu, "minflt": r1.ru_minflt - r0.ru_minflt,
        "maxrss_mb": r1.ru_maxrss / 1024, "rss_before_mb": rss_before / 1024,
        "errors": len(errors), "first_error": errors[0] if errors else None, "client_peak": peak,
        "ok_text": sum(1 for t in texts if t == REPLY),
    }))


# ---------------------------------------------------------------------------------------------
# parent: the simulator, the children, the table
# ---------------------------------------------------------------------------------------------


class Simulator:
    """The simulator in its own process, with its stats endpoints and its CPU clock."""

    def __init__(self, latency: float, server_cmd: list[str]) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.root = f"http://127.0.0.1:{self.port}"
        cmd = [*server_cmd, "--port", str(self.port), "--latency", str(latency), "--latency-spread", "0",
               "--seed", "0", "--reply", REPLY]
        self._stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._stderr, text=True,
                                     start_new_session=True)
        line = self._wait_ready(cmd)
        threading.Thread(target=self._drain, daemon=True).start()  # never let a full pipe block it
        self._ps = None
        try:
            import psutil

            self._ps = psutil.Process(self.proc.pid)
        except Exception:  # psutil missing: no server CPU column
            pass
        if self.base_url not in line:
            print(f"note: the simulator announced {line.strip()!r}", file=sys.stderr)

    def _wait_ready(self, cmd: list[str]) -> str:
        box: list[str] = []
        reader = threading.Thread(target=lambda: box.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(30)
        if not box or "listening on" not in box[0]:
            self.stop()
            self._stderr.seek(0)
            err = self._stderr.read().decode(errors="replace")[-2000:]
            sys.exit(f"the simulator did not start: {shlex.join(cmd)}\n{err}")
        return box[0]

    def _drain(self) -> None:
        for _ in self.proc.stdout:
            pass

    def _call(self, method: str, path: str) -> dict:
        req = urllib.request.Request(self.root + path, method=method, data=b"" if method == "POST" else None)
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read() or b"{}")

    def reset(self) -> None:
        self._call("POST", "/sim/reset")

    def stats(self) -> dict:
        return self._call("GET", "/sim/stats")

    def cpu(self) -> float:
        if self._ps is None:
            return float("nan")
        t = self._ps.cpu_times()
        return t.user + t.system

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def run_child(client: str, sc: Scenario, sim: Simulator, args: argparse.Namespace) -> dict:
    sim.reset()
    time.sleep(0.3)  # let the previous client's sockets settle
    cmd = [sys.executable, os.path.abspath(__file__), "--child", client, "--url", sim.base_url,
           "--n", str(sc.n), "--c", str(sc.c), "--retries", str(args.retries), "--timeout", str(args.timeout),
           "--nbtools-options", args.nbtools_options]
    with tempfile.TemporaryDirectory(prefix="nbtools-bench-") as tmp:
        # nbtools' reply cache (on by default for a base_url) goes to a fresh file: every run is a
        # cold first run, and the user's own cache is never touched.
        env = {**os.environ, "NBTOOLS_CACHE": os.path.join(tmp, "replies.sqlite")}
        if client.endswith("-before"):  # the same run, side by side, with another copy of nbtools
            env["PYTHONPATH"] = args.before
        cpu0 = sim.cpu()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.child_timeout, env=env)
        sim_cpu = sim.cpu() - cpu0
    if proc.returncode != 0:
        sys.exit(f"{client} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    stats = sim.stats()
    row["server_peak"] = stats.get("peak_in_flight")
    row["server_requests"] = stats.get("requests")
    row["sim_cpu"] = sim_cpu
    row["cpu_per_req_ms"] = row["cpu"] / sc.n * 1000
    row["faults_per_req"] = row["minflt"] / sc.n
    if row["errors"] and args.verbose:
        print(f"  {client}: {row['errors']} errors, first: {row['first_error']}", file=sys.stderr)
    return row


def median_rows(rows: list[dict]) -> dict:
    out = dict(rows[0])
    for key in ("wall", "cpu", "cpu_per_req_ms", "faults_per_req", "maxrss_mb", "rss_before_mb", "sim_cpu"):
        out[key] = statistics.median(r[key] for r in rows)
    for key in ("errors", "server_peak", "client_peak"):  # worst case, not median
        values = [r[key] for r in rows if r.get(key) is not None]
        out[key] = max(values) if values else None
    out["wall_min"], out["wall_max"] = min(r["wall"] for r in rows), max(r["wall"] for r in rows)
    out["server_requests"] = [r.get("server_requests") for r in rows]
    out["ok_text"] = min(r["ok_text"] for r in rows)
    out["first_error"] = next((r["first_error"] for r in rows if r["first_error"]), None)
    out["runs"] = len(rows)
    return out


def clients_for(sc: Scenario, args: argparse.Namespace) -> list[str]:
    if args.clients:
        chosen = [c.strip() for c in args.clients.split(",") if c.strip()]
    elif sc.rss_target:  # the memory scenario: add the no-task-per-request reference
        chosen = ["usual", "nbtools", "nbtools-nocache", "nbtools-typed", "floor", "pool"]
    else:
        chosen = ["usual", "nbtools", "nbtools-nocache", "nbtools-typed", "floor"]
    if sc.skip_usual:
        chosen = [c for c in chosen if c != "usual"]
    return chosen


def fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def ratio_cell(value: float | None, target: float | None, at_most: bool = True) -> str:
    if value is None:
        return "-"
    if target is None:
        return f"{value:.2f}x"
    ok = value <= target if at_most else value >= target
    return f"{value:.2f}x {'ok' if ok else 'MISSED'}"


def _clients_table(chosen: list[Scenario], results: dict[tuple[str, str], dict]) -> None:
    """Each client's own figures, scenario by scenario."""
    print("| scenario (ideal wall) | client | wall s [range] | client CPU/req ms | client CPU % of wall "
          "| page faults/req | peak RSS MB | server peak in flight | errors (worst run) | simulator CPU % of wall |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for sc in chosen:
        for client in CLIENTS:
            r = results.get((sc.key, client))
            if r is None:
                continue
            spread = f" [{r['wall_min']:.2f}–{r['wall_max']:.2f}]" if r["runs"] > 1 else ""
            print(f"| N={sc.n:,} C={sc.c} L={sc.latency:g}s ({sc.ideal:.1f} s) | {LABELS[client]} "
                  f"| {r['wall']:.2f}{spread} | {r['cpu_per_req_ms']:.3f} | {100 * r['cpu'] / r['wall']:.0f} "
                  f"| {r['faults_per_req']:.2f} | {r['maxrss_mb']:.0f} | {fmt(r['server_peak'], 'd')} | {r['errors']} "
                  f"| {100 * r['sim_cpu'] / r['wall']:.0f} |")



def _ratios_table(chosen: list[Scenario], results: dict[tuple[str, str], dict]) -> None:
    """nbtools against the floor, the usual recipe and the pool reference, with the targets."""
    print(f"\n| scenario | nbtools | CPU/req ÷ floor (≤ {TARGET_CPU:g}) | wall ÷ floor (≤ {TARGET_WALL:g}) "
          f"| best wall ÷ best floor | usual CPU/req ÷ nbtools (≥ {TARGET_USUAL:g}) "
          f"| peak RSS ÷ floor (≤ {TARGET_RSS:g}) | peak RSS ÷ pool reference | peak in flight ≤ C |")
    print("|---|---|---|---|---|---|---|---|---|")
    for sc in chosen:
        fl, us, pool = (results.get((sc.key, c)) for c in ("floor", "usual", "pool"))
        for variant in ("nbtools", "nbtools-nocache", "nbtools-nocache-before"):
            nb = results.get((sc.key, variant))
            if nb is None:
                continue
            cpu = nb["cpu_per_req_ms"] / fl["cpu_per_req_ms"] if fl else None
            wall = nb["wall"] / fl["wall"] if fl else None
            best = nb["wall_min"] / fl["wall_min"] if fl and nb["runs"] > 1 else None
            usual = us["cpu_per_req_ms"] / nb["cpu_per_req_ms"] if us else None
            rss = nb["maxrss_mb"] / fl["maxrss_mb"] if fl and sc.rss_target else None
            rss_pool = nb["maxrss_mb"] / pool["maxrss_mb"] if pool else None
            peaks = [p for p in (nb["server_peak"], nb["client_peak"]) if p is not None]
            peak_ok = ("ok" if max(peaks) <= sc.c else f"MISSED ({max(peaks)})") if peaks else "n/a"
            label = {"nbtools": "defaults", "nbtools-nocache": "cache=False"}.get(variant, "cache=False, before")
            print(f"| N={sc.n:,} C={sc.c} | {label} | {ratio_cell(cpu, TARGET_CPU)} | {ratio_cell(wall, TARGET_WALL)} "
                  f"| {ratio_cell(best, None)} | {ratio_cell(usual, TARGET_USUAL, at_most=False)} "
                  f"| {ratio_cell(rss, TARGET_RSS) if sc.rss_target else '-'} | {ratio_cell(rss_pool, None)} "
                  f"| {peak_ok} |")


def _typed_table(chosen: list[Scenario], results: dict[tuple[str, str], dict]) -> None:
    """Parsing and validating each reply (schema=) against the plain path, measured in the same run."""
    typed_rows = [(sc, results.get((sc.key, "nbtools-typed")), results.get((sc.key, "nbtools-nocache"))) for sc in chosen]
    typed_rows = [(sc, t, p) for sc, t, p in typed_rows if t is not None and p is not None]
    if typed_rows:
        print("\n| scenario | typed CPU/req ms | plain CPU/req ms (cache=False) | typed ÷ plain CPU/req | typed ÷ plain wall |")
        print("|---|---|---|---|---|")
        for sc, t, p in typed_rows:
            print(f"| N={sc.n:,} C={sc.c} | {t['cpu_per_req_ms']:.3f} | {p['cpu_per_req_ms']:.3f} "
                  f"| {ratio_cell(t['cpu_per_req_ms'] / p['cpu_per_req_ms'], None)} "
                  f"| {ratio_cell(t['wall'] / p['wall'], None)} |")


def _checks(chosen: list[Scenario], results: dict[tuple[str, str], dict]) -> list[str]:
    """What the runs themselves say about their figures: too many in flight, errors, server-bound runs, memory."""
    notes: list[str] = []
    over = [f"{sc.key}/{c} ({r['server_peak']})" for (k, c), r in results.items() for sc in chosen
            if sc.key == k and r["server_peak"] is not None and r["server_peak"] > sc.c]
    if over:
        notes.append("the server saw more than C requests at once for: " + ", ".join(over))
    errors = sum(r["errors"] for r in results.values())
    if errors:
        notes.append(f"{errors} request(s) failed in total (see the errors column; -v shows the first of each run)")
    for (key, client), r in results.items():
        sc = next(s for s in chosen if s.key == key)
        seen = [n for n in r["server_requests"] if n is not None]
        if seen and any(n != sc.n for n in seen):
            notes.append(f"N={sc.n:,} {client}: the server counted {seen} requests for N={sc.n:,} "
                         "(more: retries; fewer: requests that never reached it, e.g. client-side timeouts)")
        if r["ok_text"] != sc.n - r["errors"]:
            notes.append(f"N={sc.n:,} {client}: {sc.n - r['errors'] - r['ok_text']} replies did not match the fixed "
                         "reply text")
    for sc in chosen:
        for client in CLIENTS:
            r = results.get((sc.key, client))
            if r and r["errors"]:
                notes.append(f"N={sc.n:,} {client}: first error {r['first_error']}")
    busy = [f"{k}/{c}" for (k, c), r in results.items() if r["sim_cpu"] / r["wall"] > 0.85]
    if busy:
        notes.append("the simulator used > 85% of a core during " + ", ".join(busy)
                     + ": there the server, not the client, bounds the wall time")
    for sc in chosen:
        if sc.rss_target:
            bases = [f"{c} {r['rss_before_mb']:.0f} MB" for (k, c), r in results.items() if k == sc.key]
            notes.append(f"peak RSS is the whole client process (interpreter + imports + the {sc.n:,} prompts + the "
                         f"run); at N={sc.n:,} the processes held, before the run: " + ", ".join(bases))
    return notes


def report(chosen: list[Scenario], results: dict[tuple[str, str], dict], args: argparse.Namespace,
           notes: list[str], load_before: tuple[float, ...], started: float) -> None:
    load_after = os.getloadavg()
    print(f"\n### Client cost per request ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, "
          f"Python {sys.version.split()[0]}, median of {args.repeat} run{'s' * (args.repeat > 1)} per client"
          f"{', quick' if args.quick else ''})\n")
    _clients_table(chosen, results)
    _ratios_table(chosen, results)
    _typed_table(chosen, results)
    notes += _checks(chosen, results)
    notes.append("the floor keeps one task per request (gather); the pool reference runs C worker tasks and keeps "
                 "only the reply texts: the least memory a client can use")
    notes.append(f"load average (1 min) {load_before[0]:.1f} before, {load_after[0]:.1f} after: on a shared machine "
                 "absolute numbers move between runs; the ratios come from runs taken side by side")
    print()
    for note in notes:
        print(f"- {note}")
    print(f"\n(total {time.time() - started:.0f} s)")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small N: a smoke run in well under a minute")
    p.add_argument("--repeat", type=int, default=1, metavar="K", help="run each client K times, report medians")
    p.add_argument("--scenario", action="append", choices=["2k", "5k", "20k", "100k"],
                   help="run only these scenarios (repeatable; default: all)")
    p.add_argument("--clients", help=f"comma-separated subset of {','.join(CLIENTS)} (default: all but pool, "
                   "plus pool in the 100k scenario)")
    p.add_argument("--huge-n", type=int, default=100_000, help="N of the latency-0 scenario (default 100000)")
    p.add_argument("--huge-c", type=int, default=200, help="concurrency of the latency-0 scenario (default 200)")
    p.add_argument("--usual-huge", action="store_true",
                   help="also run the usual recipe on N=100000 (skipped by default: it takes many minutes)")
    p.add_argument("--retries", type=int, default=2, help="nbtools retries (the usual recipe keeps its default 2)")
    p.add_argument("--timeout", type=float, default=120.0, help="nbtools per-request timeout, seconds")
    p.add_argument("--nbtools-options", default="{}", metavar="JSON",
                   help="extra nbtools options, e.g. '{\"price\": [1, 1], \"max_tokens\": 64, \"max_cost\": 1000}'")
    p.add_argument("--child-timeout", type=float, default=1800.0, help="kill a client run after this many seconds")
    p.add_argument("--server-cmd", default=f"{shlex.quote(sys.executable)} -m nbtools.sim",
                   help="the simulator command; --port/--latency/--latency-spread/--seed/--reply are appended")
    p.add_argument("--before", metavar="PATH",
                   help="a checkout of earlier code: client nbtools-nocache-before runs it (PYTHONPATH=PATH)")
    p.add_argument("--json", metavar="PATH", help="also write every run's raw figures to PATH")
    p.add_argument("-v", "--verbose", action="store_true", help="progress and first errors on stderr")
    # child mode (internal)
    p.add_argument("--child", choices=CLIENTS, help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, help=argparse.SUPPRESS)
    p.add_argument("--c", type=int, help=argparse.SUPPRESS)
    return p


def _measure(chosen: list[Scenario], args: argparse.Namespace, started: float
             ) -> tuple[dict[tuple[str, str], dict], list[dict], list[str]]:
    """Every client of every scenario, each run in a fresh child process: (median figures, raw runs, notes)."""
    server_cmd = shlex.split(args.server_cmd)
    results: dict[tuple[str, str], dict] = {}
    raw: list[dict] = []
    notes: list[str] = []
    for latency in sorted({s.latency for s in chosen}, reverse=True):
        sim = Simulator(latency, server_cmd)  # one simulator per latency, shared by its scenarios
        try:
            for sc in [s for s in chosen if s.latency == latency]:
                order = clients_for(sc, args)
                if sc.skip_usual and (not args.clients or "usual" in args.clients):
                    notes.append(f"N={sc.n:,}: the usual recipe was skipped (at its ~7 ms of CPU per request "
                                 f"that is ~{sc.n * 0.007:.0f} s per run); --usual-huge runs it")
                runs: dict[str, list[dict]] = {c: [] for c in order}
                for k in range(args.repeat):
                    rotated = order[k % len(order):] + order[: k % len(order)]  # spread drift over clients
                    for client in rotated:
                        if args.verbose:
                            print(f"[{time.time() - started:6.1f}s] N={sc.n} C={sc.c} run {k + 1}/{args.repeat}: "
                                  f"{client}", file=sys.stderr, flush=True)
                        runs[client].append(run_child(client, sc, sim, args))
                for client, rows in runs.items():
                    results[(sc.key, client)] = median_rows(rows)
                    raw.append({"scenario": sc.key, "n": sc.n, "c": sc.c, "latency": sc.latency, "client": client,
                                "runs": rows})
        finally:
            sim.stop()
    return results, raw, notes


def main() -> None:
    p = _parser()
    args = p.parse_args()
    if args.child:
        child(args)
        return
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    if args.clients:
        unknown = {c.strip() for c in args.clients.split(",")} - set(CLIENTS) - {""}
        if unknown:
            p.error(f"unknown client(s) {sorted(unknown)}; choose from {', '.join(CLIENTS)}")
        if "nbtools-nocache-before" in args.clients and not args.before:
            p.error("client nbtools-nocache-before needs --before PATH (a checkout of the earlier code)")

    chosen = scenarios(args)
    started = time.time()
    load_before = os.getloadavg()
    results, raw, notes = _measure(chosen, args, started)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(raw, f, indent=1)
    report(chosen, results, args, notes, load_before, started)


if __name__ == "__main__":
    main()
