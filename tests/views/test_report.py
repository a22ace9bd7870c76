"""What the views show, from real batches against the simulator: timelines, table limits, streaming rows."""

from __future__ import annotations

import asyncio
import re

import nbtools
from nbtools._views import report as render
from nbtools._views.timeline import timeline_svg
from nbtools.sim import SimServer


def test_a_small_batch_gets_one_bar_per_request(sim: SimServer) -> None:
    result = nbtools.batch([f"p{i}" for i in range(10)], base_url=sim.base_url, model="m", concurrency=3)
    svg = timeline_svg(result)
    assert svg.count("<title>") == 10 and "one bar per request" in svg
    waits = [float(w) for w in re.findall(r"waited (\d+\.\d+) s", svg)]
    assert sum(w > 0.02 for w in waits) >= 6  # past the first 3, requests waited for a slot: the limit shows


def test_a_large_batch_shows_the_true_peak_in_flight_under_the_limit(make_sim) -> None:
    server = make_sim(latency=0.02)
    result = nbtools.batch([f"p{i}" for i in range(600)], base_url=server.base_url, model="m", concurrency=50)
    svg = timeline_svg(result)
    peak = int(re.search(r"peak (\d+) in flight", svg).group(1))
    assert "limit 50" in svg and svg.count("<rect") == 0  # an area chart, not 600 bars
    assert peak == result.summary().max_concurrency == server.stats()["peak_in_flight"] == 50
    assert len(svg) < 10_000


def test_the_table_is_bounded_and_says_how_many_rows_are_left_out(sim: SimServer) -> None:
    result = nbtools.batch([f"p{i}" for i in range(30)], base_url=sim.base_url, model="m", concurrency=30)
    text, html = render.table_text(result, 8), render.table_html(result, 8)
    assert text.count("\n") == 1 + 8 and text.endswith("… 22 more rows in the result")
    assert html.count("<tr>") == 1 + 8 and "22 more rows in the result" in html


def test_streamed_text_of_running_rows_grows_in_the_table(make_sim) -> None:
    server = make_sim(latency=0.6, reply="one two three four five six seven eight nine ten eleven twelve")

    async def main() -> list[str]:
        result = nbtools.start(["hi"], base_url=server.base_url, model="m", stream=True)
        seen = []
        while not result.done:
            rows = [line for line in render.table_text(result).splitlines()[1:] if line[0].isdigit()]
            if rows:  # once the request has started
                seen.append(rows[0].split(" | ")[2])  # row 0's response cell
            await asyncio.sleep(0.05)
        return seen

    seen = asyncio.run(main())
    lengths = [len(s) for s in seen]
    assert lengths == sorted(lengths) and len(set(lengths)) >= 4, seen  # grew step by step while running
