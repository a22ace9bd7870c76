"""The static checks, with their settings in pyproject.toml: ruff (pycodestyle errors and line length,
pyflakes, import order, bugbear) over nbtools, tests, scripts, benchmarks and docs (its conf.py), and mypy --strict
over nbtools.

    python3 scripts/check.py [ruff] [mypy]

Runs every check named (all of them by default), prints each finding, and exits non-zero if there was one.
scripts/test.py runs them before pytest; tests/test_static.py runs each one in the fast tier.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHECKS = {
    "ruff": ["ruff", "check", "--output-format", "concise", "nbtools", "tests", "scripts", "benchmarks", "docs"],
    "mypy": ["mypy"],  # [tool.mypy]: strict over nbtools/
}


def run(names: list[str], python: str | Path = sys.executable) -> int:
    """Run each named check with ``python -m``; all of them run, so one failing hides none of the others."""
    failed = []
    for name in names:
        command = [str(python), "-m", *CHECKS[name]]
        print(" ".join(command), flush=True)
        if subprocess.call(command, cwd=ROOT) != 0:
            failed.append(name)
    if failed:
        print(f"static checks failed: {', '.join(failed)} (the findings are above)", flush=True)
    return 1 if failed else 0


def main() -> int:
    names = sys.argv[1:] or list(CHECKS)
    unknown = [name for name in names if name not in CHECKS]
    if unknown:
        sys.exit(f"unknown check {unknown[0]!r}: the checks are {', '.join(CHECKS)}")
    return run(names)


if __name__ == "__main__":
    sys.exit(main())
