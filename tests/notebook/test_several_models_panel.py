"""The panel with several models: pick them from the endpoint's list, run them side by side; and its
concurrency control, set in doubling steps (1, 2, 4 ... 512) or typed."""

from __future__ import annotations

import asyncio

import nbtools
from nbtools._notebook.panel import STEPS
from nbtools._several import MultiModelResult
from tests.support.helpers import until


def test_picking_several_models_runs_them_side_by_side(make_sim) -> None:
    server = make_sim(latency=0.02, models=("alpha", "beta", "gamma"))

    async def main() -> None:
        panel = nbtools.Panel("one\ntwo", base_url=server.base_url, models=["alpha", "gamma"])
        await until(lambda: panel.models.options == ("alpha", "beta", "gamma"), what="the model list")
        assert panel.models.value == ("alpha", "gamma")  # as given to Panel(models=...)
        panel.models.value = ("beta", "gamma")
        assert panel.options()["models"] == ["beta", "gamma"] and panel.options()["model"] is None
        panel.run_button.click()
        await panel.wait()
        result = panel.result
        assert isinstance(result, MultiModelResult) and result.labels == ["beta", "gamma"]
        assert [row.status for row in result] == ["ok"] * 4
        assert "gamma" in panel.output.children[-1].children[0].value  # the live view's header names the models
        panel.models.value = ("beta",)  # one picked: the model box decides, as before
        assert panel.options()["models"] is None

    asyncio.run(main())


def test_concurrency_moves_in_doubling_steps_or_takes_any_number(sim) -> None:
    panel = nbtools.Panel("x", base_url=sim.base_url, model="m", concurrency=6)
    assert STEPS == (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
    assert panel.concurrency_steps.options == STEPS
    assert panel.concurrency.value == 6 and panel.concurrency_steps.value == 4  # a number typed: the step below it
    panel.concurrency_steps.value = 2  # one notch to the left
    assert panel.concurrency.value == 2 and panel.options()["concurrency"] == 2
    panel.concurrency.value = 100
    assert panel.concurrency_steps.value == 64 and panel.concurrency.value == 100
    panel.concurrency_steps.value = 1
    assert panel.options()["concurrency"] == 1
