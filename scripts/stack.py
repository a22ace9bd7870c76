"""Run tests on another kernel stack: a venv pinned by a constraints file in tests/stacks/.

    python3 scripts/stack.py tests/stacks/colab.txt [pytest arguments]

A stack file lists ``name==version`` pins, as a hosted notebook has them preinstalled, and says
which Python it runs (``# python: 3.13``) and may name its tests (``# tests: tests/notebook/test_kernel.py``).
The venv (``.venv-stacks/<name>``) gets the pins first,
then nbtools and the test tools installed *under the pins as constraints*: pip must fit nbtools
into the host as it is, changing none of its packages (tests/test_stacks.py checks that it did).
Without pytest arguments, it runs what differs between kernel stacks: the real-kernel tests, the
stack checks, the teaching notebooks (nbval) and the classic-Notebook browser test.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from _bootstrap import ROOT

STACK_TESTS = ["tests/notebook/test_kernel.py", "tests/test_stacks.py", "tests/browser/test_browser_classic.py",
               "--nbval-lax", "notebooks"]


def stack_tests(stack: Path) -> list[str]:
    """The pytest arguments of the stack file's ``# tests:`` line, else STACK_TESTS."""
    found = re.search(r"^#\s*tests:(.*)$", stack.read_text(), re.MULTILINE)
    return found.group(1).split() if found else STACK_TESTS


def stack_python_version(stack: Path) -> str | None:
    found = re.search(r"^#\s*python:\s*(\d+\.\d+)", stack.read_text(), re.MULTILINE)
    return found.group(1) if found else None


def find_python(version: str | None) -> str:
    """An interpreter of ``version``: pyenv's, else python3.X on PATH; else this one, said out loud."""
    if version is None or f"{sys.version_info[0]}.{sys.version_info[1]}" == version:
        return sys.executable
    candidates = [*sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python")), reverse=True),
                  shutil.which(f"python{version}")]
    for candidate in candidates:  # a pyenv shim on PATH exists but may refuse to run: try each
        if candidate and subprocess.call([candidate, "-c", "pass"], stderr=subprocess.DEVNULL) == 0:
            return candidate
    print(f"Python {version} not found (pyenv or python{version} on PATH): using {sys.version.split()[0]} instead",
          flush=True)
    return sys.executable


def stack_venv(stack: Path, out: IO[str] | None = None) -> Path:
    """The stack's venv python, built (again only when the stack file or pyproject.toml changes)."""
    venv = ROOT / ".venv-stacks" / stack.stem
    python = venv / "bin" / "python"
    digest = hashlib.sha256(stack.read_bytes() + (ROOT / "pyproject.toml").read_bytes()).hexdigest()
    stamp = venv / ".installed"
    if python.exists() and stamp.exists() and stamp.read_text() == digest:
        return python
    t0 = time.perf_counter()
    shutil.rmtree(venv, ignore_errors=True)
    base = find_python(stack_python_version(stack))
    print(f"building {venv} from {stack} ...", file=out, flush=True)
    subprocess.run([base, "-m", "venv", venv], check=True, stdout=out, stderr=out)
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True, stdout=out, stderr=out)
    subprocess.run([*pip, "-r", stack], check=True, stdout=out, stderr=out)  # the host as it comes
    subprocess.run([*pip, "-c", stack, "-e", f"{ROOT}[stack-test]"], check=True, stdout=out, stderr=out)  # nbtools fitted in
    stamp.write_text(digest)
    print(f"built {venv.name} in {time.perf_counter() - t0:.0f} s", file=out, flush=True)
    return python


def run(stack: Path, args: list[str], out: IO[str] | None = None) -> int:
    """The stack's tests (or ``args``) in its venv; their output to ``out`` (default: this process's)."""
    python = stack_venv(stack, out)
    venv = python.parent.parent
    subprocess.run([python, "-m", "ipykernel", "install", "--sys-prefix", "--name", "python3"], check=True,
                   stdout=subprocess.DEVNULL)
    env = {**os.environ, "JUPYTER_PATH": str(venv / "share" / "jupyter"), "NBTOOLS_TEST_STACK": str(stack),
           "PYTHONWARNINGS": "ignore::DeprecationWarning"}  # old Jupyter packages on new Python: noise only
    command = [str(python), "-m", "pytest", *(args or stack_tests(stack)), "-p", "no:cacheprovider"]
    print(" ".join(command), file=out, flush=True)
    t0 = time.perf_counter()
    code = subprocess.call(command, cwd=ROOT, env=env, stdout=out, stderr=out)
    print(f"{stack.stem} stack: tests took {time.perf_counter() - t0:.0f} s", file=out, flush=True)
    return code


def main() -> int:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    return run(Path(sys.argv[1]).resolve(), sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
