"""The whole test suite: installs everything into ./.venv, runs the static checks (scripts/check.py: ruff and
mypy --strict; a finding fails the run before the tests start), then pytest over tests/ and notebooks/.

    python3 scripts/test.py [extra pytest arguments]

Beside it, the kernel tests, notebooks and a classic-Notebook browser test on Colab's pinned kernel stack
(ipykernel 6, IPython 7, ipywidgets 7), and the kernel tests on Kaggle's (the same with ipywidgets 8)
and on the lowest versions declared, each in its own venv: scripts/stack.py, tests/stacks/.
With extra pytest arguments only the main pytest run happens (they name tests of the main venv).
"""

from __future__ import annotations

import concurrent.futures
import os
import shutil
import subprocess
import sys
import tempfile

import check
import stack
from _bootstrap import ROOT, VENV, venv_python

# Old kernel stacks every run covers: Colab's (ipywidgets 7), Kaggle's (ipywidgets 8 on the same kernel),
# and the lowest versions pyproject.toml declares.
STACKS = [ROOT / "tests" / "stacks" / f"{name}.txt" for name in ("colab", "kaggle", "minimum")]


def ensure_chromium() -> None:
    """tests/browser drives Debian's Chromium: install it with apt-get when it is missing (never fails the run)."""
    chromium = os.environ.get("NBTOOLS_TEST_CHROMIUM", "/usr/bin/chromium")
    if os.path.exists(chromium):
        return
    sudo = [] if not hasattr(os, "geteuid") or os.geteuid() == 0 else ["sudo", "-n"]
    ok = False
    if shutil.which("apt-get") and (not sudo or shutil.which("sudo")):
        print(f"{chromium} is missing: installing chromium with apt-get for the browser tests ...", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        ok = (subprocess.call([*sudo, "apt-get", "update", "-q"], env=env) == 0
              and subprocess.call([*sudo, "apt-get", "install", "-y", "-q", "chromium"], env=env) == 0
              and os.path.exists(chromium))
    print("chromium installed" if ok else f"could not install chromium at {chromium}: the browser tests will fail",
          flush=True)


def main() -> int:
    python = venv_python("test")
    args = sys.argv[1:]
    # The static checks take seconds: a finding fails the run before the long tests start.
    if not args and check.run(list(check.CHECKS), python) != 0:
        return 1
    ensure_chromium()
    # The kernel that tests and notebooks start must be this venv's, whatever else the machine has.
    subprocess.run([python, "-m", "ipykernel", "install", "--sys-prefix", "--name", "python3"], check=True,
                   stdout=subprocess.DEVNULL)
    # JUPYTER_PATH is searched first, so a user-level "python3" kernelspec elsewhere cannot win.
    jupyter_path = [str(VENV / "share" / "jupyter"), os.environ.get("JUPYTER_PATH")]
    env = {**os.environ, "JUPYTER_PATH": os.pathsep.join(filter(None, jupyter_path))}
    command = [python, "-m", "pytest", "tests", "--nbval-lax", "notebooks", "-p", "no:cacheprovider",
               *(args or ["--deselect", "tests/test_static.py"])]  # tests/test_static.py: the checks just run
    print(" ".join(map(str, command)), flush=True)
    if args:
        return subprocess.call(command, cwd=ROOT, env=env)
    # The runs mostly wait on timers, servers and kernels (about a third of one core in all), so the old stacks
    # run beside the main run, each in its own venv; their output is printed after it, not interleaved.
    with tempfile.TemporaryFile("w+") as out:
        stacks = concurrent.futures.ThreadPoolExecutor(1).submit(lambda: [stack.run(host, [], out) for host in STACKS])
        code = subprocess.call(command, cwd=ROOT, env=env)
        codes = stacks.result()
        out.seek(0)
        print(out.read(), flush=True)
    return code or next((c for c in codes if c), 0)


if __name__ == "__main__":
    sys.exit(main())
