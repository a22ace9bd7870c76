"""``%llm_panel`` in JupyterLab, in headless Chromium: Run, the live concurrency steps, Cancel, Run again."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from nbtools.sim import SimServer
from tests.support.browser_lab import panel_cells, show_panel

pytestmark = pytest.mark.timeout(150)

HEADER = ".widget-html-content .nbt"


def test_panel_run_slider_changes_in_flight_then_cancel_and_run_again(notebook, slow_echo_sim: SimServer) -> None:
    nb = notebook(panel_cells(slow_echo_sim))
    out, slider, number, run, cancel = show_panel(nb, slow_echo_sim)
    expect(run).to_be_enabled()
    expect(cancel).to_be_disabled()
    nb.screenshot("panel", show=out)

    run.click()
    header = out.locator(HEADER).first
    expect(header.locator(".inflight")).to_have_text("2 in flight")
    expect(header).to_contain_text("concurrency 2 · 2 in flight · 200 requests")
    expect(cancel).to_be_enabled()
    expect(run).to_be_disabled()
    assert slow_echo_sim.stats()["peak_in_flight"] == 2
    nb.screenshot("running-at-2", show=header)

    # The keyboard on the slider's handle, as a user would: two steps, 2 -> 4 -> 8, while the batch runs.
    slider.locator(".noUi-handle").focus()
    for _ in range(2):
        nb.page.keyboard.press("ArrowRight")
    expect(number).to_have_value("8")
    expect(header.locator(".inflight")).to_have_text("8 in flight")
    expect(header).to_contain_text("concurrency 8 · 8 in flight · 200 requests")
    nb.screenshot("running-at-8", show=header)

    cancel.click()
    final = nb.wait_summary(1, "s.state === 'cancelled'")
    done = int(final["done"].split("/")[0])
    assert 0 < done < 200 and int(final["cancelled"]) == 200 - done, final
    expect(run).to_be_enabled()
    expect(cancel).to_be_disabled()
    expect(header).not_to_contain_text("in flight")
    expect(out.locator(".widget-html-content").first).to_contain_text(f"{done}/200 done")  # the status line
    assert slow_echo_sim.stats()["peak_in_flight"] == 8  # the limit moved up, and no further
    nb.screenshot("cancelled", show=header)

    # Run again, smaller: it goes to the end.
    repeat = out.locator(".widget-text", has=nb.page.locator("label", has_text="repeat")).locator("input")
    repeat.fill("12")
    repeat.press("Enter")
    run.click()
    final = nb.wait_summary(1, "s.state === 'done'")
    assert final["done"] == "12/12", final
    rows = nb.rows(1)
    assert len(rows) == 12 and all(r["status"] == "ok" and r["response"] == "Hello, how are you?" for r in rows), rows
    expect(run).to_be_enabled()
    expect(out.locator(".widget-html-content").first).to_contain_text("12/12 done")
    nb.screenshot("second-run-done", show=header)
    assert not nb.errors, nb.errors
