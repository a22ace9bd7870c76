#!/usr/bin/env python3
"""Build a static JupyterLite site of the lessons (nbtools in the browser, no server), offline, and serve it.

    python3 scripts/lite.py              # build .lite/site, serve it on http://127.0.0.1:8000/ until Ctrl-C
    python3 scripts/lite.py --no-serve   # build only (publish .lite/site as it is, e.g. on GitHub Pages)

Everything comes from PyPI and npm (see docs/browser.md): Pyodide's core from npm, every wheel from PyPI, and
Pyodide's lock file rewritten to those wheels, so the site loads nothing from a CDN. Downloads are kept in
.lite/cache (git-ignored): a re-build downloads nothing.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import http.server
import json
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LITE = ROOT / ".lite"
CACHE, SITE, VENV = LITE / "cache", LITE / "site", LITE / "venv"
PYODIDE = "314.0.7"  # npm's pyodide: its Python is 3.14, its wheels' platform the one below
PYTHON, PLATFORM = "3.14", "pyemscripten_2026_0_wasm32"
BUILD_TOOLS = ["jupyterlite-core==0.8.6", "jupyterlite-pyodide-kernel==0.8.6", "jupyter-server", "jupyterlab_widgets<4"]
# What the kernel loads as it starts (IPython, completion, micropip) and what nbtools needs in a browser (its
# environment markers leave out what needs sockets or threads). The kernel's own stand-ins (ipykernel,
# widgetsnbextension) come with jupyterlite-pyodide-kernel.
BROWSER_WHEELS = ["micropip", "ipython", "jedi", "ipywidgets", "platformdirs", "pydantic", "tqdm", "traitlets",
                  "genai-prices",
                  "httpx2-jsfetch",  # httpx2 (genai-prices') needs it in a browser: pip, resolving for Linux, skips it
                  "openai"]  # notebook 1's seed recipe; its jiter has browser wheels on PyPI from 0.16
# The lessons that need no pandas, and what each installs first: a browser tab's Python starts with neither.
NOTEBOOKS = {"01_serial_vs_concurrent.ipynb": "nbtools-llm openai", "02_concurrency_limit.ipynb": "nbtools-llm",
             "05_widget_panel.ipynb": "nbtools-llm"}


def run(*cmd: str | Path, cwd: Path | None = None) -> None:
    subprocess.run([str(c) for c in cmd], cwd=cwd, check=True)


def normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def build_tools() -> Path:
    """A virtual environment with JupyterLite's build tools (made once)."""
    python = VENV / "bin" / "python"
    if not python.exists():
        run(sys.executable, "-m", "venv", VENV)
        run(python, "-m", "pip", "install", "-q", *BUILD_TOOLS)
    return python


def pyodide_core() -> Path:
    """Pyodide's core from npm (pyodide.mjs, the wasm, the standard library, the lock file): no wheels in it."""
    core = CACHE / f"pyodide-{PYODIDE}"
    if not (core / "package" / "pyodide-lock.json").exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        run("npm", "pack", "--silent", f"pyodide@{PYODIDE}", cwd=CACHE)
        with tarfile.open(CACHE / f"pyodide-{PYODIDE}.tgz") as archive:
            archive.extractall(core, filter="data")
    return core / "package"


def lock_closure(lock: dict[str, Any], names: list[str]) -> set[str]:
    """``names`` and every package the lock file says they depend on (the kernel loads those by the lock)."""
    by_name = {normal(name): entry for name, entry in lock["packages"].items()}
    found: set[str] = set()
    todo = [normal(name) for name in names]
    while todo:
        name = todo.pop()
        if name not in found and name in by_name:
            found.add(name)
            todo += [normal(dep) for dep in by_name[name]["depends"]]
    return found


def browser_wheels(lock: dict[str, Any]) -> list[Path]:
    """The wheels from PyPI for Pyodide's Python and platform, with their dependencies (downloaded once)."""
    wheels, wanted = CACHE / "wheels", sorted(set(BROWSER_WHEELS) | lock_closure(lock, BROWSER_WHEELS))
    done = wheels / ".done"  # what was downloaded: a new list downloads again
    if not done.exists() or done.read_text() != "\n".join(wanted):
        wheels.mkdir(parents=True, exist_ok=True)
        run(sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "--python-version", PYTHON,
            "--platform", PLATFORM, "--platform", "any", "-d", wheels, *wanted)
        done.write_text("\n".join(wanted))
    # pip resolved markers for this machine (Linux): the Linux-only extras (pexpect and co.) are never asked for.
    return sorted(wheels.glob("*.whl"))


def nbtools_wheel(python: Path) -> Path:
    """A wheel of this checkout."""
    out = LITE / "dist"
    shutil.rmtree(out, ignore_errors=True)
    run(python, "-m", "pip", "wheel", "-q", "--no-deps", "-w", out, ROOT)
    return next(out.glob("nbtools_llm-*.whl"))


def place_wheels(core: Path, static: Path, wheels: list[Path]) -> list[Path]:
    """Copy Pyodide's core into the site, point its lock file at the PyPI wheels of the packages it lists (copied
    beside it); return the others, for the site's own package index (what ``%pip install`` finds)."""
    shutil.copytree(core, static, dirs_exist_ok=True)
    lock = json.loads((core / "pyodide-lock.json").read_text())
    by_name = {normal(name): entry for name, entry in lock["packages"].items()}
    others = []
    for wheel in wheels:
        name, version = wheel.name.split("-")[:2]
        entry = by_name.get(normal(name))
        if entry is None:
            others.append(wheel)
            continue
        shutil.copy2(wheel, static / wheel.name)
        entry.update(file_name=wheel.name, version=version, sha256=hashlib.sha256(wheel.read_bytes()).hexdigest())
    (static / "pyodide-lock.json").write_text(json.dumps(lock))
    return others


def for_the_browser(notebook: Path, install: str) -> str:
    """The notebook as the site serves it: a first code cell installs what it needs into the tab's Python."""
    cells = json.loads(notebook.read_text())
    cell = {"cell_type": "code", "execution_count": None, "id": "install-in-the-browser", "metadata": {},
            "outputs": [], "source": ["# JupyterLite: installed from this site into this browser tab\n",
                                            f"%pip install -q {install}"]}
    title = 1 if cells["cells"] and cells["cells"][0]["cell_type"] == "markdown" else 0
    cells["cells"].insert(title, cell)
    return json.dumps(cells, indent=1, ensure_ascii=False) + "\n"


def write_config(site: Path) -> None:
    """Pyodide from the site itself, and no fallback to PyPI: nothing is fetched from anywhere else."""
    config_path = site / "jupyter-lite.json"
    config = json.loads(config_path.read_text())
    settings = config["jupyter-config-data"].setdefault("litePluginSettings", {})
    settings.setdefault("@jupyterlite/pyodide-kernel-extension:kernel", {}).update({  # the build's pipliteUrls kept
        "pyodideUrl": "../static/pyodide/pyodide.mjs",  # every app (lab/, repl/, notebooks/) is one level down
        "loadPyodideOptions": {"indexURL": "./static/pyodide/", "lockFileURL": "./static/pyodide/pyodide-lock.json"},
        "disablePyPIFallback": True,
    })
    config_path.write_text(json.dumps(config, indent=2))


def build() -> Path:
    started = time.monotonic()
    python = build_tools()
    core = pyodide_core()
    wheels = browser_wheels(json.loads((core / "pyodide-lock.json").read_text()))
    ours = nbtools_wheel(python)
    contents = LITE / "contents"
    shutil.rmtree(contents, ignore_errors=True)
    contents.mkdir(parents=True)
    for name, install in NOTEBOOKS.items():
        (contents / name).write_text(for_the_browser(ROOT / "notebooks" / name, install))
    shutil.rmtree(SITE, ignore_errors=True)
    work = LITE / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    staged = CACHE / "staged"  # the wheels that are not in the lock file, served by the site's package index
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir()
    others = place_wheels(core, work / "pyodide", wheels)
    for wheel in [*others, ours]:
        shutil.copy2(wheel, staged / wheel.name)
    run(python, "-m", "jupyter", "lite", "build", "--contents", contents, "--piplite-wheels", staged,
        "--output-dir", SITE, cwd=work)
    shutil.copytree(work / "pyodide", SITE / "static" / "pyodide", dirs_exist_ok=True)
    write_config(SITE)
    print(f"built {SITE} in {time.monotonic() - started:.1f} s", flush=True)
    return SITE


def serve(site: Path, port: int) -> None:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
        print(f"serving http://127.0.0.1:{server.server_port}/lab/index.html (Ctrl-C stops)", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-serve", action="store_true", help="build only")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    site = build()
    if not args.no_serve:
        serve(site, args.port)


if __name__ == "__main__":
    main()
