"""Build the documentation site (docs/: MyST Markdown pages, the notebooks' saved outputs, the API from docstrings).

    python3 scripts/docs.py           # into docs/_build/html (again only what changed); open its index.html
    python3 scripts/docs.py --clean   # from scratch

Offline (nothing is downloaded), with warnings as errors and every reference checked (-W --keep-going -n): a broken
link, a reference to nothing or a docstring that does not parse fails the build. tests/test_docs.py runs the same
command. The settings are docs/conf.py's.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
BUILD = DOCS / "_build"


def sphinx_command(python: str | Path, out: Path, source: Path = DOCS) -> list[str]:
    """Build ``source`` (with docs/conf.py) into ``out``/html; warnings fail it, and every one of them is printed."""
    return [str(python), "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-n", "-q",
            "-c", str(DOCS), "-d", str(out / "doctrees"), str(source), str(out / "html")]


def main() -> int:
    from _bootstrap import venv_python

    python = venv_python("test")
    if "--clean" in sys.argv[1:]:
        shutil.rmtree(BUILD, ignore_errors=True)
    t0 = time.perf_counter()
    code = subprocess.call(sphinx_command(python, BUILD), cwd=ROOT)
    took = time.perf_counter() - t0
    if code:
        print(f"the docs build failed after {took:.1f} s: the warnings above say where", file=sys.stderr)
    else:
        print(f"built in {took:.1f} s: {(BUILD / 'html' / 'index.html').relative_to(ROOT)}")
    return code


if __name__ == "__main__":
    sys.exit(main())
