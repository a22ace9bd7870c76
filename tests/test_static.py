"""Static checks that run with the fast tier: mypy --strict over the package, and ruff's rules (pycodestyle errors
and line length, pyflakes, import order, bugbear) over the code. The commands live in scripts/check.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _check(name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "check.py"), name], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def test_the_package_type_checks() -> None:
    proc = _check("mypy")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_code_passes_the_lint_rules() -> None:
    proc = _check("ruff")
    assert proc.returncode == 0, proc.stdout + proc.stderr
