#!/usr/bin/env python
"""What the live display costs: the same %%llm_batch in a real kernel, with and without the display.

Starts the simulator as a separate process (fixed latency, spread 0) and one Jupyter kernel (the
``python3`` kernelspec, driven through jupyter_client like a frontend; a thread drains iopub so the
kernel is never held up by an unread socket). Then, alternating display on / ``--no-display`` for
--rounds rounds (after one unmeasured warm-up of each), runs

    %%llm_batch -c 500 -n 10000 -m sim-small --base-url URL --no-cache [--no-display]
    ping

and reads, inside the kernel: the batch's wall time (``r.summary().wall``) and the kernel process's
CPU time for the cell (``resource.getrusage`` user + sys, all threads, taken by pre/post_run_cell
hooks). Prints every round, the medians and the on/off ratios. Target: on <= 1.1x off.

    python benchmarks/display_cost.py                    # 3 rounds
    python benchmarks/display_cost.py --rounds 5 --n 20000
    python benchmarks/display_cost.py --profile          # plus one cProfile'd display-on run

Needs only the package and its test extra (jupyter_client, ipykernel).
"""

from __future__ import annotations

import argparse
import os
import pstats
import re
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))  # the kernel driver lives in tests/support/

from tests.support.kernel_helpers import Kernel  # noqa: E402

TARGET = 1.10

SETUP = r"""
%load_ext nbtools
import resource as _bench_resource, time as _bench_time
_bench = {"cpu": None, "wall": None, "profile": None}

def _bench_cpu():
    ru = _bench_resource.getrusage(_bench_resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime

def _bench_pre(info):
    if info.raw_cell.startswith("%%llm_batch"):
        _bench["t0"] = (_bench_cpu(), _bench_time.perf_counter())
        _bench["display"] = _bench["render"] = 0.0
        if _bench["profile"] is not None:
            _bench["profile"].enable()

def _bench_post(result):
    if "t0" in _bench:
        if _bench["profile"] is not None:
            _bench["profile"].disable()
        cpu0, wall0 = _bench.pop("t0")
        _bench["cpu"], _bench["wall"] = _bench_cpu() - cpu0, _bench_time.perf_counter() - wall0

# The display's own CPU on the kernel's main thread (thread_time: immune to other processes), and
# the part of it spent building the table/summary/timeline bundle.
import nbtools._notebook.display as _bench_display

def _bench_wrap(name, key):
    original = getattr(_bench_display.LiveDisplay, name, None)
    if original is None:
        return
    def timed(self, *args, **kwargs):
        t0 = _bench_time.thread_time()
        try:
            return original(self, *args, **kwargs)
        finally:
            _bench[key] += _bench_time.thread_time() - t0
    setattr(_bench_display.LiveDisplay, name, timed)

_bench["display"] = _bench["render"] = 0.0
for _name in ("__init__", "show", "refresh", "finish"):
    _bench_wrap(_name, "display")
_bench_wrap("_bundle", "render")

get_ipython().events.register("pre_run_cell", _bench_pre)
get_ipython().events.register("post_run_cell", _bench_post)
"""


def start_sim(latency: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "nbtools.sim", "--port", "0", "--latency", str(latency), "--latency-spread", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    found = re.search(r"listening on (http://\S+/v1)", line)
    if not found:
        proc.kill()
        raise SystemExit(f"the simulator did not start: {line!r}")
    return proc, found.group(1)


def run_once(kernel: Kernel, url: str, n: int, c: int, display: bool) -> dict[str, float]:
    flag = "" if display else " --no-display"
    cell = f"%%llm_batch -o _bench_r -c {c} -n {n} -m sim-small --base-url {url} --no-cache{flag}\nping"
    ex = kernel.run(cell, timeout=600).check_ok()
    ok, total, wall, cpu, cell_wall, disp, render = kernel.value(
        "[sum(x.ok for x in _bench_r), len(_bench_r), _bench_r.summary().wall, _bench['cpu'], _bench['wall'], "
        "_bench['display'], _bench['render']]"
    )
    if ok != total:
        raise SystemExit(f"only {ok} of {total} requests succeeded")
    messages = len(ex.messages)
    kernel.ok("del _bench_r; import gc; gc.collect()")
    return {"wall": wall, "cpu": cpu, "cell": cell_wall, "iopub": messages, "display": disp, "render": render}


def profile_once(kernel: Kernel, url: str, n: int, c: int, top: int) -> None:
    path = os.path.join(tempfile.mkdtemp(prefix="nbtools-prof-"), "display.prof")
    kernel.ok("import cProfile; _bench['profile'] = cProfile.Profile()")
    run_once(kernel, url, n, c, display=True)
    kernel.ok(f"_bench['profile'].dump_stats({path!r}); _bench['profile'] = None")
    stats = pstats.Stats(path)
    total = stats.total_tt  # type: ignore[attr-defined]
    print(f"\ncProfile of one display-on run (kernel main thread, {total:.2f} s profiled CPU), saved to {path}")
    print("Display-related functions by cumulative time:")
    rows = []
    for (file, line, name), (_cc, nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if re.search(r"nbtools/(display|render)\.py|tqdm/|ipywidgets/|IPython/core/display", file):
            where = os.path.relpath(file, os.path.join(HERE, "..")) if "nbtools" in file else file.split("site-packages/")[-1]
            rows.append((ct, tt, nc, f"{where}:{line}({name})"))
    rows.sort(reverse=True)
    print(f"{'cumtime':>8} {'tottime':>8} {'calls':>7}  function")
    for ct, tt, nc, where in rows[:top]:
        print(f"{ct:8.3f} {tt:8.3f} {nc:7d}  {where}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="display on/off pairs to measure (default: %(default)s)")
    parser.add_argument("--n", type=int, default=10_000, help="requests per run (default: %(default)s)")
    parser.add_argument("--c", type=int, default=500, help="concurrency (default: %(default)s)")
    parser.add_argument("--latency", type=float, default=0.05, help="simulator latency, s (default: %(default)s)")
    parser.add_argument("--profile", action="store_true", help="also profile one display-on run with cProfile")
    parser.add_argument("--top", type=int, default=25, help="rows of the profile to print (default: %(default)s)")
    args = parser.parse_args()

    sim, url = start_sim(args.latency)
    kernel = Kernel(env={"NBTOOLS_CACHE": "off"})
    try:
        kernel.ok(SETUP)
        print(f"simulator {url} (latency {args.latency}, spread 0); {args.n} requests at concurrency {args.c}; "
              f"{os.cpu_count()} CPUs; ideal wall {-(-args.n // args.c) * args.latency:.2f} s")
        for display in (True, False):  # warm-up: imports, widgets, connection pool
            run_once(kernel, url, min(args.n, 2000), args.c, display)
        results: dict[bool, list[dict[str, float]]] = {True: [], False: []}
        print(f"{'round':>5} {'display':>8} {'wall s':>8} {'cell s':>8} {'CPU s':>8} {'display CPU s':>13} "
              f"{'of it render':>12} {'iopub msgs':>10}")
        for k in range(args.rounds):
            order = (True, False) if k % 2 == 0 else (False, True)  # alternate who goes first
            for display in order:
                m = run_once(kernel, url, args.n, args.c, display)
                results[display].append(m)
                print(f"{k + 1:>5} {'on' if display else 'off':>8} {m['wall']:8.2f} {m['cell']:8.2f} {m['cpu']:8.2f} "
                      f"{m['display']:13.3f} {m['render']:12.3f} {m['iopub']:>10}")
        med = {
            d: {key: statistics.median(r[key] for r in results[d]) for key in ("wall", "cpu", "cell", "display", "render")}
            for d in results
        }
        print()
        print("| display | median wall (r.summary().wall) | median cell wall | median kernel CPU for the cell |")
        print("|---|---|---|---|")
        for d in (True, False):
            print(f"| {'on' if d else 'off (--no-display)'} | {med[d]['wall']:.2f} s | {med[d]['cell']:.2f} s "
                  f"| {med[d]['cpu']:.2f} s |")
        wall_ratio = med[True]["wall"] / med[False]["wall"]
        cpu_ratio = med[True]["cpu"] / med[False]["cpu"]
        print(f"| ratio on/off | {wall_ratio:.3f}x | {med[True]['cell'] / med[False]['cell']:.3f}x | {cpu_ratio:.3f}x |")
        share = med[True]["display"] / med[True]["cpu"]
        print(f"\ndisplay on: the display's own main-thread CPU {med[True]['display']:.2f} s "
              f"({share:.1%} of the cell's kernel CPU), of which building the HTML/text bundle "
              f"{med[True]['render']:.2f} s")
        verdict = "met" if wall_ratio <= TARGET and cpu_ratio <= TARGET else "MISSED"
        print(f"\ntarget: display on <= {TARGET:.2f}x off (wall and CPU): {verdict}")
        if args.profile:
            profile_once(kernel, url, args.n, args.c, args.top)
        return 0 if verdict == "met" else 1
    finally:
        kernel.shutdown()
        sim.terminate()
        sim.wait(10)


if __name__ == "__main__":
    sys.exit(main())
