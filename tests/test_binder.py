"""What Binder does, without Docker: build an environment from ``binder/`` alone, then run every notebook.

repo2docker installs ``binder/requirements.txt`` with pip from the repository root, runs
``binder/postBuild`` if there is one, and starts JupyterLab with that environment's ``python3``
kernel. Here: a fresh venv in a temporary directory, the same pip command in a clean copy of the
repository, then nbval over each notebook with that venv's python and kernel (``JUPYTER_PATH``
points at the venv first, so no other ``python3`` kernelspec on the machine can be picked).

Slow (a real pip install, network or pip cache): deselect with ``-m "not binder"``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# A clean checkout: nothing built, installed or cached by this machine.
IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "venv", "*.egg-info", "__pycache__", ".pytest_cache", ".ipynb_checkpoints",
    "build", "dist", "test-artifacts", "output",
)
# Binder has no keys or nbtools settings: neither may the notebooks' kernels here.
HIDDEN_PREFIXES = ("NBTOOLS_", "OPENAI_", "XAI_", "ANTHROPIC_", "OLLAMA_", "VLLM_", "OPENROUTER_", "PYTEST_",
                   "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "JUPYTER_")
HARNESS = ["pytest>=8", "nbval>=0.11"]  # the test runner only, installed after the Binder environment is checked
NOTEBOOK_TIMEOUT = 240  # seconds per notebook (each takes well under 60 s alone)

pytestmark = [pytest.mark.binder, pytest.mark.timeout(1200)]


def _run(command: list[str | os.PathLike[str]], cwd: Path, env: dict[str, str], timeout: float) -> str:
    proc = subprocess.run([str(c) for c in command], cwd=cwd, env=env, timeout=timeout,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.returncode == 0, f"{' '.join(map(str, command))} failed ({proc.returncode}):\n{proc.stdout[-6000:]}"
    return proc.stdout


@pytest.mark.skipif(not NOTEBOOKS, reason="no notebooks to run")
def test_binder_environment_runs_every_notebook(tmp_path: Path) -> None:
    t0 = time.perf_counter()
    repo = tmp_path / "repo"
    shutil.copytree(ROOT, repo, ignore=IGNORE)
    assert (repo / "binder" / "requirements.txt").is_file(), "binder/requirements.txt is what Binder installs"

    venv = tmp_path / "venv"
    bindir = venv / ("Scripts" if sys.platform == "win32" else "bin")
    python = bindir / ("python.exe" if sys.platform == "win32" else "python")
    env = {k: v for k, v in os.environ.items() if not k.startswith(HIDDEN_PREFIXES)}
    env.update(
        PATH=os.pathsep.join([str(bindir), env.get("PATH", "")]),
        VIRTUAL_ENV=str(venv),
        JUPYTER_PATH=str(venv / "share" / "jupyter"),  # searched before the user's and system's kernelspecs
        JUPYTER_PLATFORM_DIRS="1",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PYTHONDONTWRITEBYTECODE="1",
    )

    # 1. The environment, from binder/ only (pip's own cache is used when it has the files).
    _run([sys.executable, "-m", "venv", venv], tmp_path, env, 120)
    _run([python, "-m", "pip", "install", "--no-compile", "-r", "binder/requirements.txt"], repo, env, 900)
    if (repo / "binder" / "postBuild").exists():
        _run(["bash", "binder/postBuild"], repo, env, 600)
    _run([python, "-m", "pip", "check"], repo, env, 120)
    t_env = time.perf_counter() - t0

    # 2. What JupyterLab on Binder needs: the lab, the widgets frontend, and this venv's python3 kernel.
    probe = (
        "import json, sys, jupyterlab, ipywidgets, nbtools\n"
        "from jupyter_client.kernelspec import KernelSpecManager\n"
        "spec = KernelSpecManager().get_kernel_spec('python3')\n"
        "print(json.dumps({'prefix': sys.prefix, 'resource_dir': spec.resource_dir, 'argv0': spec.argv[0],\n"
        "                  'nbtools': nbtools.__file__}))\n"
    )
    info = json.loads(_run([python, "-c", probe], repo, env, 120).strip().splitlines()[-1])
    assert Path(info["resource_dir"]).resolve().is_relative_to(venv.resolve()), info
    assert info["argv0"] in ("python", "python3") or Path(info["argv0"]).resolve().is_relative_to(venv.resolve()), info
    assert Path(info["nbtools"]).resolve().is_relative_to(repo.resolve()), info  # the repo itself, installed
    widgets_frontend = venv / "share" / "jupyter" / "labextensions" / "@jupyter-widgets" / "jupyterlab-manager"
    assert (widgets_frontend / "package.json").is_file(), "ipywidgets' JupyterLab extension is missing"
    _run([python, "-c", "import IPython; ip = IPython.core.interactiveshell.InteractiveShell.instance();"
                        " ip.run_line_magic('load_ext', 'nbtools'); assert 'llm_batch' in ip.magics_manager.magics['cell']"],
         repo, env, 120)

    # 3. Every notebook under nbval, with the venv's python (the test runner is added only now).
    _run([python, "-m", "pip", "install", "--no-compile", *HARNESS], repo, env, 600)
    t_nb = time.perf_counter()
    runs = {
        nb.name: subprocess.Popen(
            [str(python), "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider", "-q",
             "--nbval-cell-timeout", "120", f"notebooks/{nb.name}"],
            cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for nb in NOTEBOOKS  # in parallel: each notebook mostly waits on its (simulated) requests
    }
    failures = []
    for name, proc in runs.items():
        try:
            out, _ = proc.communicate(timeout=NOTEBOOK_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            failures.append(f"{name}: timed out after {NOTEBOOK_TIMEOUT} s\n{out[-4000:]}")
            continue
        if proc.returncode != 0:
            failures.append(f"{name}: nbval exit code {proc.returncode}\n{out[-4000:]}")
    assert not failures, "\n\n".join(failures)
    print(f"binder environment built in {t_env:.0f} s; {len(runs)} notebooks passed nbval in "
          f"{time.perf_counter() - t_nb:.0f} s")
