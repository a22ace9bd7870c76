"""The widget panel, driven programmatically: values set on the widgets, clicks through button.click()."""

from __future__ import annotations

import asyncio
import re

import ipywidgets as widgets
import pytest

import nbtools
from nbtools._base.options import OPTIONS, BatchOptions
from nbtools._compare import Comparison
from nbtools._sweep import levels
from nbtools.sim import SimServer
from tests.support.helpers import until


def _header(panel: nbtools.Panel) -> str:
    """The header of the newest live view in the panel (the view's first widget)."""
    return panel.output.children[-1].children[0].value


def make_panel(server: SimServer, **options) -> nbtools.Panel:
    return nbtools.Panel([f"prompt {i}" for i in range(40)], base_url=server.base_url, model="m", **options)


def test_controls_carry_the_batch_option_names(sim: SimServer) -> None:
    panel = make_panel(sim, concurrency=7, repeat=2, stream=True, max_tokens=99, temperature=0.5)
    options = panel.options()
    assert options["concurrency"] == 7 and options["repeat"] == 2 and options["stream"] is True
    assert options["max_tokens"] == 99 and options["temperature"] == 0.5 and options["base_url"] == sim.base_url
    assert panel.provider.value == "custom" and panel.concurrency.max >= 512
    BatchOptions(**{k: v for k, v in options.items()})  # every control maps onto a real option
    # The controls are exactly the options declared with a panel control; the rest are kept as given.
    controls = {name for name, (_, spec) in OPTIONS.items() if spec.panel}
    assert {name for name in OPTIONS if isinstance(getattr(panel, name, None), widgets.Widget)} == controls
    assert set(options) == set(OPTIONS)


def test_bad_initial_options_are_rejected() -> None:
    with pytest.raises(nbtools.ConfigError, match="concurrency=0"):
        nbtools.Panel("x", concurrency=0)


def test_model_choices_come_from_the_endpoint(make_sim) -> None:
    server = make_sim(latency=0.01, models=("alpha", "beta"))

    async def main() -> None:
        panel = make_panel(server)
        await until(lambda: panel.model.options == ("alpha", "beta"), what="the model list")
        assert "2 models" in panel.status.value

    asyncio.run(main())


def test_slider_changes_the_running_limit_and_cancel_keeps_rows(make_sim) -> None:
    server = make_sim(latency=0.15)

    async def main() -> None:
        panel = make_panel(server, concurrency=2)
        panel.run_button.click()
        assert panel.run_button.disabled and not panel.cancel_button.disabled
        await until(lambda: server.stats()["requests"] >= 4, what="two rounds at concurrency 2")
        assert server.stats()["peak_in_flight"] == 2
        panel.concurrency.value = 6  # as if the user dragged the slider
        await until(lambda: server.stats()["in_flight"] == 6, what="6 in flight after the slider moved")
        server.reset()
        await until(lambda: server.stats()["requests"] >= 12, what="two rounds at concurrency 6")
        assert server.stats()["peak_in_flight"] == 6
        shown = re.search(r"(\d+) in flight", _header(panel))
        assert shown and int(shown.group(1)) > 2  # the header follows the new limit
        panel.cancel_button.click()
        t = asyncio.get_running_loop().time()
        await panel.wait()
        assert asyncio.get_running_loop().time() - t < 1.0
        result = panel.result
        assert result.cancelled and 0 < result.summary().ok < 40
        assert "in flight" not in _header(panel)  # the view shows the final state
        assert not panel.run_button.disabled and panel.cancel_button.disabled

    asyncio.run(main())


def test_compare_and_sweep_buttons(make_sim) -> None:
    server = make_sim(latency=0.1)

    async def main() -> None:
        panel = nbtools.Panel("one\ntwo\nthree\nfour", base_url=server.base_url, model="m", concurrency=4)
        panel.compare_button.click()
        await panel.wait()
        assert isinstance(panel.result, Comparison) and panel.result.speedup > 1.5  # ideal 4x; slack for a busy machine
        panel.max_sweep.value = 4
        panel.sweep_button.click()
        await panel.wait()
        points = panel.sweep_result.points
        assert [p.concurrency for p in points] == [1, 2, 4]
        assert points[-1].throughput > 2 * points[0].throughput
        assert "<svg" in panel.output.children[0].value and "concurrency" in repr(panel.sweep_result)

    asyncio.run(main())


def test_errors_show_in_the_status_line(sim: SimServer) -> None:
    async def main() -> None:
        panel = make_panel(sim)
        panel.prompts.value = "   "
        panel.run_button.click()
        await panel.wait()
        assert "no prompts" in panel.status.value and not panel.run_button.disabled

    asyncio.run(main())


def test_sweep_levels() -> None:
    assert levels(1) == [1] and levels(8) == [1, 2, 4, 8] and levels(12) == [1, 2, 4, 8, 12]


def test_sweep_api_flattens_at_the_servers_capacity(make_sim) -> None:
    server = make_sim(latency=0.05, capacity=4)
    result = nbtools.sweep([f"x{i}" for i in range(16)], max_concurrency=16, base_url=server.base_url, model="m")
    by_c = {p.concurrency: p.throughput for p in result.points}
    assert by_c[4] > 2.2 * by_c[1]  # ideal 4x
    assert by_c[16] < 1.3 * by_c[4]  # past the capacity, more concurrency buys nothing


def test_panel_sends_only_what_was_set_and_keeps_multiline_prompts(sim: SimServer) -> None:
    panel = nbtools.Panel(["line one\nline two", "second"], base_url=sim.base_url, rpm=600, cache=False)
    options = panel.options()
    assert options["temperature"] is None and options["max_tokens"] is None
    assert options["rpm"] == 600 and options["cache"] is False
    assert panel._prompts() == ["line one\nline two", "second"]
    panel.temperature.value = 0.3  # moving the slider means "send it"
    assert panel.options()["temperature"] == 0.3
    with pytest.raises(nbtools.ConfigError, match="slider"):
        nbtools.Panel("x", concurrency="auto")


def test_the_judge_picker_runs_the_judge_after_the_batch(make_sim) -> None:
    server = make_sim(latency=0.01, latency_spread=0)

    async def main() -> None:
        panel = nbtools.Panel("What is 2 + 2?\nWhat is 3 + 4?", base_url=server.base_url, model="sim-pro")
        assert panel.judge.value == "" and panel.options()["judge"] is None
        panel.judge.value = "sim-judge"  # on the panel's own endpoint
        panel.run_button.click()
        await panel.wait()
        assert panel.result.judged is not None and all(row.judge is not None for row in panel.result)
        assert len(panel.output.children) == 2  # the batch's live view, then the judge's

    asyncio.run(main())
