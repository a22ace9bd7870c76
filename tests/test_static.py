"""Static checks that run with the suite: type hints hold (mypy) and no dead imports or names (pyflakes rules)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_the_package_type_checks() -> None:
    proc = _run("mypy", "--no-error-summary")  # settings in pyproject.toml
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_no_unused_imports_or_undefined_names() -> None:
    proc = _run("ruff", "check", "--output-format", "concise", "nbtools", "tests", "benchmarks", "scripts")
    assert proc.returncode == 0, proc.stdout + proc.stderr
