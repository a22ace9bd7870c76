"""What the Jupyter kernel we run in can do: the one place that knows how kernel stacks differ.

Hosted notebooks run old kernels: Colab and Kaggle have ipykernel 6.17 and IPython 7.34 (with
ipywidgets 7 and 8), the newest stack ipykernel 7.4+ and IPython 9. Measured with a real kernel on
both (tests/notebook/test_kernel.py, tests/stacks/), the differences that matter to nbtools are:

- ipykernel < 7.4 handles no widget message while a cell runs: a click on Cancel waits until the
  blocking cell has ended (clicked 1 s into a 10 s batch, the cell ended 9.5 s later). The kernel's
  stop button still cancels the batch at once, and a ``--background`` batch keeps a live Cancel, so
  the blocking view says so where its Cancel button would be.
- ipykernel < 7 tags every output with the latest request, not with the cell whose task sends it:
  a background batch's view updates are sent under the header of the cell that started it.
- the original nest_asyncio 1.6 is safe on ipykernel 6 (cells queued behind a nested run all get
  replies) and loses messages from ipykernel 7.1 on.

The kernel's version and whether nest_asyncio 1.6 is safe on it live in nbtools._engine.blocking, which needs them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from nbtools._engine.blocking import kernel_version, running_kernel
from nbtools._engine.transport.base import IN_BROWSER

STOP_HINT = "to stop: interrupt the kernel (\u25a0)"
STOP_TOOLTIP = ("This kernel (ipykernel < 7.4, or a cell magic around this one) holds button clicks until the "
                "cell ends. The kernel's stop (interrupt) button stops the batch at once and keeps finished rows; "
                "--background keeps a live Cancel.")
# JupyterLite: clicks wait for the cell too, and a static site's kernel cannot be interrupted (that needs a
# cross-origin isolated page; measured: neither Ctrl-C nor a click stopped a waiting cell).
BROWSER_STOP_HINT = "no stop while this cell waits: --background keeps a live Cancel"
BROWSER_STOP_TOOLTIP = ("A browser tab's kernel handles a click only after the running cell ends, and cannot "
                        "interrupt it. Run the cell with --background (or call nbtools.start()) to keep a live Cancel "
                        "and %llm_cancel; finished rows are kept either way.")


def stop_hint() -> tuple[str, str]:
    """How a cell that waits for its batch can be stopped here: the line shown, and its tooltip."""
    return (BROWSER_STOP_HINT, BROWSER_STOP_TOOLTIP) if IN_BROWSER else (STOP_HINT, STOP_TOOLTIP)


def widgets_live_during_cell() -> bool:
    """True where a click reaches the kernel while the cell runs: ipykernel >= 7.4 in an awaiting cell, or no kernel."""
    if running_kernel() is None:
        return True  # terminal IPython, scripts: no widgets to wait for
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if getattr(loop, "_num_runs_pending", 0) > 1:
        return False  # a nested run (e.g. %%time around the magic): clicks wait for the cell on any kernel
    version = kernel_version()
    return version is None or version >= (7, 4)


def cell_parent() -> Any:
    """What ``sent_as`` needs to send later output as the current cell's: None where the kernel does it itself."""
    version = kernel_version()
    kernel = running_kernel()
    if kernel is None or version is None or version >= (7,):
        return None  # ipykernel 7 keeps the parent in a context variable, which tasks inherit
    publisher = getattr(getattr(kernel, "shell", None), "display_pub", None)  # a browser's kernel has no shell
    header = getattr(publisher, "parent_header", None)
    return (publisher, dict(header)) if publisher is not None and header else None


@contextmanager
def sent_as(parent: Any) -> Iterator[None]:
    """Display messages sent inside are tagged with the cell captured by ``cell_parent()``."""
    if parent is None:
        yield
        return
    publisher, header = parent
    current = publisher.parent_header
    publisher.parent_header = header
    try:
        yield
    finally:
        publisher.parent_header = current

