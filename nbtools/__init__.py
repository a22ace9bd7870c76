"""nbtools: run many LLM prompts at once from a notebook, with live timings.

    import nbtools
    result = nbtools.batch(["Hello!"] * 10, concurrency=10)   # the built-in simulator by default
    result.summary()

In IPython/Jupyter: ``%load_ext nbtools`` adds the ``%%llm_batch`` cell magic.
"""

from __future__ import annotations

from typing import Any

from .endpoints import PROFILES, Endpoint, resolve_endpoint
from .errors import BatchInterrupted, ConfigError, EndpointError, NbtoolsError
from .limiter import Limiter
from .options import BatchOptions
from .results import BatchResult, RequestResult, Summary
from .runner import abatch, batch, start
from .sweep import SweepResult, asweep, sweep

__version__ = "0.1.0"

__all__ = [
    "abatch",
    "batch",
    "start",
    "sweep",
    "asweep",
    "SweepResult",
    "Panel",
    "BatchOptions",
    "BatchResult",
    "RequestResult",
    "Summary",
    "Limiter",
    "Endpoint",
    "PROFILES",
    "resolve_endpoint",
    "NbtoolsError",
    "ConfigError",
    "EndpointError",
    "BatchInterrupted",
    "jobs",
    "cancel_job",
    "forget_job",
    "resend",
]

_BATCH_API = ("jobs", "cancel_job", "forget_job", "resend")  # issue 15: the Batch API's job store


def __getattr__(name: str) -> Any:
    # The panel needs ipywidgets, the simulator aiohttp's server: import them only when asked for.
    if name == "Panel":
        from .panel import Panel

        return Panel
    if name in _BATCH_API:
        from . import batchapi

        return getattr(batchapi, name)
    if name == "sim":
        import importlib

        return importlib.import_module(".sim", __name__)
    raise AttributeError(f"module 'nbtools' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext nbtools``: IPython is imported only here, so the engine never needs it."""
    from .magics import load

    load(ipython)
