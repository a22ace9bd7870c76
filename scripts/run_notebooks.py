"""Re-execute the teaching notebooks in place, so their saved outputs show what a learner will see.

    python3 scripts/run_notebooks.py [notebooks/NAME.ipynb ...]   # default: every notebook

Runs each notebook top to bottom in a fresh kernel of ./.venv, as nbval and Binder would: no API key or
``NBTOOLS_*`` setting from this machine (so only the simulator is used and no key can reach an output)
and an empty reply cache. Widget state is saved with the outputs, so progress bars and the panel render
in JupyterLab and static viewers. Commit the result after reading the diff.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _bootstrap import ROOT, VENV, venv_python

HIDDEN_PREFIXES = ("NBTOOLS_", "OPENAI_", "XAI_", "ANTHROPIC_", "OLLAMA_", "VLLM_", "OPENROUTER_", "GEMINI_", "GROQ_",
                   "TOGETHER_", "DEEPSEEK_", "MISTRAL_", "FIREWORKS_", "CEREBRAS_")

EXECUTE = """
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

for name in sys.argv[1:]:
    path = Path(name)
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}},
                   store_widget_state=True).execute()
    nbformat.write(notebook, path)
    print("executed", path, flush=True)
"""


def main() -> int:
    python = venv_python("test")
    subprocess.run([python, "-m", "ipykernel", "install", "--sys-prefix", "--name", "python3"], check=True,
                   stdout=subprocess.DEVNULL)
    notebooks = sys.argv[1:] or sorted(str(p.relative_to(ROOT)) for p in (ROOT / "notebooks").glob("*.ipynb"))
    with tempfile.TemporaryDirectory(prefix="nbtools-notebook-cache-") as cache:
        env = {k: v for k, v in os.environ.items() if not k.startswith(HIDDEN_PREFIXES)}
        env.update(JUPYTER_PATH=str(VENV / "share" / "jupyter"), NBTOOLS_CACHE=str(Path(cache) / "replies.sqlite"))
        return subprocess.call([python, "-c", EXECUTE, *notebooks], cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main())
