"""The whole test suite: installs everything into ./.venv, then runs pytest over tests/ and notebooks/.

    python3 scripts/test.py [extra pytest arguments]
"""

from __future__ import annotations

import os
import subprocess
import sys

from _bootstrap import ROOT, VENV, venv_python


def main() -> int:
    python = venv_python("test")
    # The kernel that tests and notebooks start must be this venv's, whatever else the machine has.
    subprocess.run([python, "-m", "ipykernel", "install", "--sys-prefix", "--name", "python3"], check=True,
                   stdout=subprocess.DEVNULL)
    # JUPYTER_PATH is searched first, so a user-level "python3" kernelspec elsewhere cannot win.
    env = {**os.environ, "JUPYTER_PATH": os.pathsep.join(filter(None, [str(VENV / "share" / "jupyter"), os.environ.get("JUPYTER_PATH")]))}
    command = [python, "-m", "pytest", "tests", "--nbval-lax", "notebooks", "-p", "no:cacheprovider", *sys.argv[1:]]
    print(" ".join(map(str, command)), flush=True)
    return subprocess.call(command, cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main())
