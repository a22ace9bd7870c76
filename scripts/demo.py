"""The main job: serial vs concurrent on the built-in simulator.

    python3 scripts/demo.py             # opens the lesson notebook in JupyterLab
    python3 scripts/demo.py --headless  # prints the timings in the terminal instead
"""

from __future__ import annotations

import os
import subprocess
import sys

from _bootstrap import ROOT, VENV, venv_python

NOTEBOOK = "notebooks/01_serial_vs_concurrent.ipynb"


def main() -> int:
    headless = "--headless" in sys.argv[1:]
    python = venv_python("lab")
    if headless:
        return subprocess.call([python, "-m", "nbtools", *[a for a in sys.argv[1:] if a != "--headless"]])
    subprocess.run([python, "-m", "ipykernel", "install", "--sys-prefix", "--name", "python3"], check=True,
                   stdout=subprocess.DEVNULL)
    print(f"opening {NOTEBOOK} in JupyterLab (Ctrl-C to stop)", flush=True)
    # JupyterLab refuses to start as root (containers, cloud VMs) unless told it is meant.
    as_root = ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    return subprocess.call([python, "-m", "jupyterlab", *as_root, NOTEBOOK], cwd=ROOT,
                           env={**os.environ, "JUPYTER_PATH": str(VENV / "share" / "jupyter")})


if __name__ == "__main__":
    sys.exit(main())
