"""The timeline, on fixed states: one bar per request (queued, then running) for a small batch, requests in flight
against the limit for a large one, a lane per model in its colour, and untrusted labels escaped."""

from __future__ import annotations

import re

from nbtools._engine.rows import ERROR, OK, PENDING, RUNNING
from nbtools._views.grid import colour, lanes
from nbtools._views.report import lanes as one_lane
from nbtools._views.timeline import PER_REQUEST_MAX, Lane, timeline_svg
from tests.support.states import batch, row, several


def test_a_small_batch_gets_one_bar_per_request_with_the_time_it_waited() -> None:
    # concurrency 3: the first three start at once, the rest wait for a slot
    rows = [row(i, queued=0.0, started=0.5 * (i // 3), finished=0.5 * (i // 3) + 0.4) for i in range(9)]
    state = batch(rows, elapsed=1.5, concurrency=3)
    svg = timeline_svg(one_lane(state), state.elapsed())
    assert svg.count("<title>") == 9 and "one bar per request" in svg
    waits = [float(w) for w in re.findall(r"waited (\d+\.\d+) s", svg)]
    assert waits == [0.0] * 3 + [0.5] * 3 + [1.0] * 3


def test_a_running_row_grows_to_now_and_a_pending_one_is_only_queued() -> None:
    state = batch([row(0, RUNNING, started=0.2), row(1, PENDING)], elapsed=1.0, done=False)
    svg = timeline_svg(one_lane(state), 1.0)
    assert svg.count("<title>") == 1 and "#0 running: waited 0.20 s, ran 0.8" in svg
    assert svg.count("fill='#eeeeee'") == 2  # both were queued at 0; only one has started


def test_a_large_batch_draws_requests_in_flight_with_the_true_peak_under_the_limit() -> None:
    # 600 requests of 0.1 s, 50 at a time: ten waves of fifty
    rows = [row(i, started=0.1 * (i // 50), finished=0.1 * (i // 50) + 0.1) for i in range(600)]
    state = batch(rows, elapsed=1.2, concurrency=50)
    svg = timeline_svg(one_lane(state), state.elapsed())
    assert len(rows) > PER_REQUEST_MAX and "requests in flight over time" in svg
    assert "limit 50" in svg and "<rect" not in svg  # an area chart, not 600 bars
    assert re.search(r"peak (\d+) in flight", svg).group(1) == "50"  # a wave that ends as the next starts: not 100
    assert len(svg) < 10_000


def test_several_models_get_a_lane_each_in_their_colour_and_an_error_in_red() -> None:
    state = several({"small": [row(0), row(1, ERROR)], "large": [row(0), row(1)]})
    svg = timeline_svg(lanes(state), state.elapsed(), title="timeline by model")
    fills = re.findall(r"fill='(#[0-9a-f]{6})'><title>", svg)
    assert fills == [colour(0), "#e45756", colour(1), colour(1)]
    assert "aria-label='timeline by model'" in svg and "small #1 error" in svg


def test_untrusted_labels_and_titles_are_escaped() -> None:
    hostile = "<script>alert(1)</script>"
    svg = timeline_svg([Lane([row(0, OK)], hostile, "#4c78a8")], 1.0, title=hostile)
    assert "<script>" not in svg and "&lt;script&gt;" in svg
