"""nbval settings for the teaching notebooks: ``pytest --nbval-lax notebooks``.

- The sanitize patterns in ``sanitize.cfg`` (timings, ports) apply unless ``--nbval-sanitize-with``
  names another file, so cells tagged ``nbval-check-output`` compare what is stable.
- The notebook kernels start as a learner's would on Binder: with no API key or ``NBTOOLS_*``
  setting from this machine (so they use the simulator, not a paid API) and an empty reply cache.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

SANITIZE = Path(__file__).with_name("sanitize.cfg")
HIDDEN_PREFIXES = ("NBTOOLS_", "OPENAI_", "XAI_", "ANTHROPIC_", "OLLAMA_", "VLLM_", "OPENROUTER_")


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config.option, "nbval_sanitize_with") and config.option.nbval_sanitize_with is None:
        config.option.nbval_sanitize_with = str(SANITIZE)


_cache_dir: str | None = None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    # nbval starts a notebook's kernel while setting up its first cell; the kernel inherits os.environ.
    if type(item.parent).__name__ != "IPyNbFile":
        return (yield)
    global _cache_dir
    if _cache_dir is None:
        _cache_dir = tempfile.mkdtemp(prefix="nbtools-notebook-cache-")
    saved = {name: os.environ.pop(name) for name in list(os.environ) if name.startswith(HIDDEN_PREFIXES)}
    os.environ["NBTOOLS_CACHE"] = os.path.join(_cache_dir, "replies.sqlite")
    try:
        return (yield)
    finally:
        os.environ.pop("NBTOOLS_CACHE", None)
        os.environ.update(saved)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _cache_dir is not None:
        shutil.rmtree(_cache_dir, ignore_errors=True)
