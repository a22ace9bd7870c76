"""nbtools: run many LLM prompts at once from a notebook, with live timings.

    import nbtools
    result = nbtools.batch(["Hello!"] * 10, concurrency=10)   # the built-in simulator by default
    result.summary()

In IPython/Jupyter: ``%load_ext nbtools`` adds the ``%%llm_batch`` cell magic.
"""

from __future__ import annotations

import sys
from typing import Any

from nbtools._api import abatch, amodels, batch, models, start
from nbtools._base.errors import BatchInterrupted, ConfigError, EndpointError, NbtoolsError
from nbtools._compare import Comparison
from nbtools._dry_run import DryRun, DryRuns, dry_run
from nbtools._engine import endpoints
from nbtools._engine.rows import RequestResult
from nbtools._result import BatchResult
from nbtools._several import ModelResult, MultiModelResult
from nbtools._summary import Summary
from nbtools._sweep import SweepResult, asweep, sweep

__version__ = "0.1.0"

# What the README documents; tests/test_layers.py keeps the two in step.
__all__ = [
    "abatch",
    "batch",
    "start",
    "dry_run",
    "DryRun",
    "DryRuns",
    "models",
    "amodels",
    "sweep",
    "asweep",
    "Panel",
    "BatchResult",
    "RequestResult",
    "MultiModelResult",
    "ModelResult",
    "Summary",
    "Comparison",
    "SweepResult",
    "NbtoolsError",
    "ConfigError",
    "EndpointError",
    "BatchInterrupted",
    "jobs",
    "cancel_job",
    "forget_job",
    "resend",
]

_BATCH_API = ("jobs", "cancel_job", "forget_job", "resend")  # the Batch API's job store


def _start_simulator() -> str:
    from nbtools.sim import shared_server  # aiohttp's server side, imported on first use only

    return shared_server().base_url


def _sim_price(model: str) -> tuple[float, float] | None:
    sim = sys.modules.get("nbtools.sim.lineup")  # loaded with the simulator; never imported for this
    price: tuple[float, float] | None = sim.list_price(model) if sim is not None else None
    return price


def _runs_simulator(url: str) -> bool:
    sim = sys.modules.get("nbtools.sim")  # only if this process started one: never import it for this
    return sim is not None and sim.is_simulator(url)


# The package is where the engine and the simulator meet: the engine never imports the simulator.
endpoints.use_simulator(endpoints.SimulatorHooks(_start_simulator, _runs_simulator, _sim_price))


def __getattr__(name: str) -> Any:
    # The panel needs ipywidgets, the simulator aiohttp's server: import them only when asked for.
    if name == "Panel":
        from nbtools._notebook.panel import Panel

        return Panel
    if name in _BATCH_API:
        from nbtools import _jobs as batch_jobs

        return getattr(batch_jobs, name)
    if name == "sim":
        import importlib

        return importlib.import_module(".sim", __name__)
    raise AttributeError(f"module 'nbtools' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext nbtools``: IPython is imported only here, so the engine never needs it."""
    from nbtools._notebook.magics import load

    load(ipython)
