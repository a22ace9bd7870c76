#!/usr/bin/env python
"""The lesson (10 identical prompts, serially then 10 at once, on the simulator) on CPython and in a browser.

In one run, side by side: CPython with the simulator over HTTP (aiohttp, the default), CPython with the
simulator in-process (transport='in-process'), and JupyterLite in headless Chromium (Pyodide; the simulator
in-process, as a browser always runs it), on the site scripts/lite.py builds. Each row runs the same code:

    s = await nbtools.abatch("Hello, how are you?", repeat=10, concurrency=1)
    c = await nbtools.abatch("Hello, how are you?", repeat=10, concurrency=10)

and reports both wall times (``elapsed()``) and their ratio. The simulator's latencies are drawn from a fixed
seed, so every row waits for the same simulated replies: what differs is each platform's own overhead.

    python benchmarks/browser_lesson.py             # one run of each
    python benchmarks/browser_lesson.py --repeat 3  # medians of 3

Needs the test extra (playwright) and Chromium (/usr/bin/chromium).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.browser_lab import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from tests.support.lite_site import printed, run_cells, serving  # noqa: E402

LESSON = """import json, nbtools
s = await nbtools.abatch("Hello, how are you?", repeat=10, concurrency=1{extra})
c = await nbtools.abatch("Hello, how are you?", repeat=10, concurrency=10{extra})
print("LESSON", json.dumps([s.elapsed(), c.elapsed()]))"""


def on_cpython(transport: str) -> tuple[float, float]:
    extra = f", transport={transport!r}"
    code = "import asyncio\nasync def main():\n" + "\n".join("    " + line for line in LESSON.format(extra=extra).splitlines())
    out = subprocess.run([sys.executable, "-c", code + "\nasyncio.run(main())"], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    line = next(line for line in out.stdout.splitlines() if line.startswith("LESSON "))
    serial, concurrent = json.loads(line[len("LESSON "):])
    return serial, concurrent


def in_browser(browser: object, root: str) -> tuple[float, float]:
    ran = run_cells(browser, root, ["%pip install nbtools-llm", LESSON.format(extra="")])
    serial, concurrent = printed(ran, "LESSON")
    return serial, concurrent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each row; medians are reported")
    args = parser.parse_args()
    spec = importlib.util.spec_from_file_location("lite", ROOT / "scripts" / "lite.py")
    assert spec is not None and spec.loader is not None
    lite = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lite)
    site = lite.build()
    from playwright.sync_api import sync_playwright

    rows: dict[str, list[tuple[float, float]]] = {"CPython, simulator over HTTP (aiohttp)": [],
                                                   "CPython, simulator in-process": [],
                                                   "JupyterLite (Pyodide, Chromium), simulator in-process": []}
    with sync_playwright() as playwright, serving(site) as root:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for _ in range(args.repeat):  # the rows take turns, so a busy moment falls on all of them
            rows["CPython, simulator over HTTP (aiohttp)"].append(on_cpython("auto"))
            rows["CPython, simulator in-process"].append(on_cpython("in-process"))
            rows["JupyterLite (Pyodide, Chromium), simulator in-process"].append(in_browser(browser, root))
        browser.close()
    base = statistics.median(s for s, _ in rows["CPython, simulator over HTTP (aiohttp)"])
    base_c = statistics.median(c for _, c in rows["CPython, simulator over HTTP (aiohttp)"])
    print(f"\n### The lesson on CPython and in a browser (median of {args.repeat})\n")
    print("| where | serially (s) | concurrently (s) | speedup | serially ÷ CPython | concurrently ÷ CPython |")
    print("|---|---|---|---|---|---|")
    for name, runs in rows.items():
        serial, concurrent = statistics.median(s for s, _ in runs), statistics.median(c for _, c in runs)
        print(f"| {name} | {serial:.2f} | {concurrent:.2f} | {serial / concurrent:.1f}x | {serial / base:.3f} | "
              f"{concurrent / base_c:.3f} |")


if __name__ == "__main__":
    main()
