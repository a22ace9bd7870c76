"""%%llm_batch --via batch and %llm_jobs in a real IPython shell, against the simulator's Batch API."""

from __future__ import annotations

import asyncio

import pytest
from IPython.core.error import UsageError

from nbtools._jobs import RecordedRuns
from nbtools._notebook import magics
from nbtools._notebook.magics import run_cell
from tests.support.helpers import shown_html


@pytest.fixture
def batch_sim(ip, make_sim):
    server = make_sim(batch_delay=0.4, reply="echo")
    ip.run_line_magic("config", f"LLMBatch.base_url = {server.base_url!r}")
    ip.run_line_magic("config", "LLMBatch.model = 'sim-small'")
    yield server
    ip.run_line_magic("config", "LLMBatch.base_url = None")
    ip.run_line_magic("config", "LLMBatch.model = None")


def test_a_cell_via_batch_fills_the_same_result(ip, batch_sim) -> None:
    ip.user_ns["topics"] = ["tea", "rain"]
    ip.run_cell_magic("llm_batch", "--via batch --poll-interval 0.05 --over topics -o r", "About {item}.")
    result = ip.user_ns["r"]
    assert result.texts == ["About tea.", "About rain."] and result.done
    assert batch_sim.batch_stats()["jobs"] == 1
    ip.run_cell_magic("llm_batch", "--via batch --poll-interval 0.05 --over topics -o again", "About {item}.")
    assert ip.user_ns["again"].texts == result.texts and batch_sim.batch_stats()["jobs"] == 1  # reattached


def test_in_a_running_loop_the_cell_returns_once_submitted(ip, batch_sim) -> None:
    async def main():
        await run_cell("--via batch --poll-interval 0.05 -o bg", "one\ntwo\n")
        result = ip.user_ns["bg"]
        submitted_before_end = not result.done
        await result
        await asyncio.gather(*magics._background)  # the live view ends on its own once the job has
        return result, submitted_before_end

    result, submitted_before_end = asyncio.run(main())
    assert submitted_before_end and result.texts == ["one", "two"]


@pytest.mark.parametrize("line, needle", [
    ("--via batch --stream", "stream cannot be used with via='batch'"),
    ("--via batch -c 8", "concurrency cannot be used with via='batch'"),
    ("--via batch --rpm 60", "rpm cannot be used"),
    ("--wait", "--wait is for --via batch"),
    ("--via batch --compare", "drop --via batch"),
])
def test_options_that_make_no_sense_for_batch_are_one_line_errors(ip, line: str, needle: str) -> None:
    with pytest.raises(UsageError, match=needle.replace("(", r"\(")):
        ip.run_cell_magic("llm_batch", line, "x")


def test_llm_jobs_lists_and_forgets(ip, batch_sim, capsys) -> None:
    ip.run_cell_magic("llm_batch", "--via batch --wait --poll-interval 0.05 -o r", "listed")
    listing = ip.run_line_magic("llm_jobs", "")
    assert isinstance(listing, RecordedRuns) and len(listing) == 1
    text = repr(listing)
    assert "completed" in text and "1/1" in text and "sim-small" in text
    assert "<table>" in shown_html(listing)
    ip.run_line_magic("llm_jobs", f"forget {listing[0].id}")
    assert len(ip.run_line_magic("llm_jobs", "")) == 0
    with pytest.raises(UsageError, match="takes nothing, 'cancel ID' or 'forget ID'"):
        ip.run_line_magic("llm_jobs", "frobnicate")
