"""nbtools: run many LLM prompts at once from a notebook, with live timings.

    import nbtools
    result = nbtools.batch(["Hello!"] * 10, concurrency=10)   # the built-in simulator by default
    result.summary()

In IPython/Jupyter: ``%load_ext nbtools`` adds the ``%%llm_batch`` cell magic.

This module is the whole public face: the names in ``__all__`` (tests/test_public_api.py checks that nothing else
is public here). They are defined in private modules and folders below it: ``_base`` (the shared vocabulary),
``_engine`` (sends requests), ``_views`` (text, HTML, SVG), ``_notebook`` (IPython and widgets).
"""

import importlib as _importlib
import sys as _sys
from typing import Any as _Any

from nbtools._api import abatch, amodels, batch, models, providers, start
from nbtools._base.errors import BatchInterrupted, ConfigError, EndpointError, NbtoolsError
from nbtools._base.version import VERSION as __version__  # noqa: F401  (a module attribute, not in __all__)
from nbtools._compare import Comparison
from nbtools._dry_run import DryRun, DryRuns, dry_run
from nbtools._engine import endpoints as _endpoints
from nbtools._engine.rows import RequestResult
from nbtools._manifest import Manifest
from nbtools._result import BatchResult
from nbtools._several import ModelResult, MultiModelResult
from nbtools._summary import Summary
from nbtools._sweep import SweepResult, asweep, sweep

__all__ = [  # what the docs' API page documents (tests/test_public_api.py, tests/test_docs.py)
    "abatch",
    "batch",
    "start",
    "dry_run",
    "DryRun",
    "DryRuns",
    "models",
    "amodels",
    "providers",
    "sweep",
    "asweep",
    "Panel",
    "BatchResult",
    "RequestResult",
    "MultiModelResult",
    "ModelResult",
    "Summary",
    "Comparison",
    "Manifest",
    "SweepResult",
    "NbtoolsError",
    "ConfigError",
    "EndpointError",
    "BatchInterrupted",
    "jobs",
    "cancel_job",
    "forget_job",
    "resend",
    "sim",
]



# -- the built-in simulator, plugged into the engine here: the engine never imports it --------------------
def _start_simulator(in_process: bool) -> str:
    from nbtools.sim import shared_server  # imported on first use only

    return shared_server(in_process).base_url


def _runs_simulator(url: str) -> bool:
    sim = _sys.modules.get("nbtools.sim")  # only if this process started one: never import it for this
    return sim is not None and sim.is_simulator(url)


def _sim_price(model: str) -> tuple[float, float, float] | None:
    lineup = _sys.modules.get("nbtools.sim.lineup")  # loaded with the simulator; never imported for this
    price: tuple[float, float, float] | None = lineup.list_price(model) if lineup is not None else None
    return price


def _local_simulator(url: str) -> _Any:
    sim = _sys.modules.get("nbtools.sim")  # only if this process started one
    return sim.local_server(url) if sim is not None else None


_endpoints.use_simulator(_endpoints.SimulatorHooks(_start_simulator, _runs_simulator, _sim_price, _local_simulator))

# -- the public names -------------------------------------------------------------------------------------
# Imported when first asked for: the panel needs ipywidgets, the job store SQLite, the simulator aiohttp's server.
_LAZY = {"Panel": "nbtools._notebook.panel", "jobs": "nbtools._jobs", "cancel_job": "nbtools._jobs",
         "forget_job": "nbtools._jobs", "resend": "nbtools._jobs"}


def __getattr__(name: str) -> _Any:
    if name == "sim":
        return _importlib.import_module("nbtools.sim")
    if name in _LAZY:
        return getattr(_importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'nbtools' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*__all__, "load_ipython_extension", "__version__"])


def load_ipython_extension(ipython: _Any) -> None:
    """``%load_ext nbtools``: IPython is imported only here, so the engine never needs it."""
    from nbtools._notebook.magics import load

    load(ipython)
