"""Hosted notebooks' kernel stacks (tests/stacks/*.txt): nbtools installs into them as they are, and runs.

- Main suite: for every stack file, pip's resolver (a dry run for that stack's Python, wheels only)
  fits nbtools' dependencies and the stack's pins together.
- In a stack's own venv (scripts/stack.py sets NBTOOLS_TEST_STACK): the installed versions are the
  pins, and a plain ``pip install`` of nbtools there (no constraints, as a Colab user types it)
  would change none of them.
- Everywhere: a notebook runs ``%load_ext nbtools``, a blocking ``%%llm_batch -o r`` and a
  ``--background`` batch awaited in a later cell, with every row answered.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STACKS = sorted((ROOT / "tests" / "stacks").glob("*.txt"))
IN_STACK = os.environ.get("NBTOOLS_TEST_STACK")


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(stack: Path) -> dict[str, str]:
    """{normalized name: version} of the ``name==version`` lines."""
    found = re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", stack.read_text(), re.MULTILINE)
    return {_normal(name): version for name, version in found}


def python_of(stack: Path) -> str:
    found = re.search(r"^#\s*python:\s*(\d+\.\d+)", stack.read_text(), re.MULTILINE)
    assert found, f"{stack.name} says which Python the host runs: '# python: 3.13'"
    return found.group(1)


def resolved(report: Path) -> dict[str, str]:
    """{normalized name: version} of what pip's --report says it would install."""
    data = json.loads(report.read_text())
    return {_normal(item["metadata"]["name"]): item["metadata"]["version"] for item in data["install"]}


@pytest.mark.skipif(bool(IN_STACK), reason="run once, in the main suite")
@pytest.mark.skipif(sys.version_info < (3, 11), reason="reads pyproject.toml with tomllib (Python 3.11+)")
@pytest.mark.parametrize("stack", STACKS, ids=[s.stem for s in STACKS])
def test_the_resolver_fits_nbtools_into_the_pins(stack: Path, tmp_path: Path) -> None:
    import tomllib
    from packaging.requirements import Requirement

    # pip evaluates environment markers with this Python, not --python-version: do it for the stack's.
    dependencies = []
    for line in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]:
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate({"python_version": python_of(stack)}):
            requirement.marker = None
            dependencies.append(str(requirement))
    report = tmp_path / "report.json"
    # Wheels only, so pip need not build anything for another Python.
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
               "--disable-pip-version-check", "--only-binary=:all:", "--python-version", python_of(stack),
               "--report", str(report), "-c", str(stack), "-r", str(stack), *dependencies]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"pip cannot fit nbtools into {stack.name}:\n{proc.stderr[-3000:]}"
    got = resolved(report)
    assert {name: got.get(name) for name in pins(stack)} == pins(stack)


@pytest.mark.stack
@pytest.mark.skipif(not IN_STACK, reason="runs in a stack's venv: python3 scripts/stack.py tests/stacks/NAME.txt")
def test_the_venv_is_the_host_and_pip_install_changes_none_of_it(tmp_path: Path) -> None:
    stack = Path(IN_STACK or "")
    installed = {name: metadata.version(name) for name in pins(stack)}
    assert installed == pins(stack), "the stack's venv is not the host it stands for"
    report = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--disable-pip-version-check",
                           "--report", str(report), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    changed = {name: version for name, version in resolved(report).items() if name in installed}
    assert not changed, f"pip install nbtools would change the host's {changed}"


def test_a_notebook_loads_runs_blocking_and_awaits_a_background_batch(tmp_path: Path) -> None:
    import nbformat
    from nbclient import NotebookClient

    cells = [
        "%load_ext nbtools",
        "%%llm_batch -o r -n 6 -c 3\nHello, how are you?",
        "%%llm_batch --background -o bg -n 6 -c 3\nWhat is a semaphore?",
        "await bg\nprint(len(r), sum(x.ok for x in r), len(bg), sum(x.ok for x in bg), bg.cancelled)",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NBTOOLS_", "OPENAI_", "PYTEST_"))}
    env["NBTOOLS_CACHE"] = str(tmp_path / "replies.sqlite")
    saved = os.environ.copy()
    os.environ.clear()
    os.environ.update(env)  # the kernel inherits this process's environment: no key, the simulator
    try:
        NotebookClient(nb, timeout=60, kernel_name="python3").execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    last = "".join(o.get("text", "") for o in nb.cells[3].outputs if o.output_type == "stream")
    assert last.strip() == "6 6 6 6 False", nb.cells[3].outputs
    shown = [o for o in nb.cells[1].outputs if o.output_type == "display_data" and "text/html" in o.data]
    assert shown and "6/6" in shown[-1].data["text/plain"], "the blocking cell's view ends on 6/6 done"
