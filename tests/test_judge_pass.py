"""The judge's pass after a batch started in the background (``start(judge=...)``, the magic's ``--background`` and
``--via batch`` cells): awaited with the batch, stopped by its cancel, the verdicts already back kept. Against the
independent sums server (tests/support/sums_server.py) and the simulator's Batch API; the magic in a real IPython
shell, run as a kernel runs a cell (on a loop that runs on after it)."""

from __future__ import annotations

import asyncio

import nbtools
from nbtools._notebook import magics
from nbtools._notebook.magics import run_cell
from nbtools._result import BatchResult

PROMPTS = [f"What is {a} + {a + 3}?" for a in range(8)]  # odd-wrong answers the odd first numbers wrong
PASSED = [a % 2 == 0 for a in range(8)]
JUDGED = "-m odd-wrong --judge judge-right --judge-scale pass/fail"


async def _until_some_verdicts(result: BatchResult) -> int:
    """Wait until the judge's pass has some verdicts back, not all; how many."""
    for _ in range(500):
        count = sum(row.judge is not None for row in result)
        if count:
            assert count < len(result), "the judge was done before it could be cancelled: raise the stagger"
            return count
        await asyncio.sleep(0.01)
    raise AssertionError("no verdict came back in 5 s")


def _kept(result: BatchResult, seen: int) -> None:
    """A cancelled judge's pass: the batch done, not cancelled; the verdicts back (right ones) kept, not all came."""
    assert result.done and not result.cancelled and not result.busy
    assert result.judged is not None and result.judged.cancelled
    kept = [row.judge.passed for row in result if row.judge is not None]
    assert seen <= len(kept) < len(PROMPTS)
    assert kept == [passed for row, passed in zip(result, PASSED, strict=True) if row.judge is not None]


def test_start_runs_the_judge_after_the_batch_and_await_waits_for_it(sums) -> None:
    server, url = sums

    async def main() -> BatchResult:
        result = nbtools.start(PROMPTS, base_url=url, model="odd-wrong", judge="judge-right", judge_scale="pass/fail")
        return await result

    result = asyncio.run(main())
    assert not result.busy and server.calls == {"odd-wrong": 8, "judge-right": 8}
    assert [row.judge.passed for row in result] == PASSED
    assert result.judged is not None and result.judged.summary().completed == 8


def test_cancel_stops_the_judges_pass_and_keeps_the_verdicts_back(sums) -> None:
    server, url = sums
    server.stagger = 0.1  # verdicts come one at a time, 0.1 s apart

    async def main() -> tuple[BatchResult, int]:
        result = nbtools.start(PROMPTS, base_url=url, model="odd-wrong", judge="judge-right", judge_scale="pass/fail")
        seen = await _until_some_verdicts(result)
        result.cancel()
        return await result, seen  # a cancel is not an error

    _kept(*asyncio.run(main()))


def test_a_background_cell_shows_the_judges_pass_and_llm_cancel_stops_it(ip, sums, capsys) -> None:
    server, url = sums
    server.stagger = 0.1

    async def main() -> tuple[BatchResult, int]:
        await run_cell(f"--background --base-url {url} {JUDGED} -o bg", "\n".join(PROMPTS))
        result = ip.user_ns["bg"]
        seen = await _until_some_verdicts(result)
        ip.run_line_magic("llm_cancel", "")
        await asyncio.gather(*magics._background)  # the views end on their own once the pass has
        return await result, seen

    result, seen = asyncio.run(main())
    shown = capsys.readouterr()
    assert "cancelled 1 running batch" in shown.out
    assert "cancelled judge judge-right" in shown.err  # the judge's own view (a terminal's bar) shows its end
    _kept(result, seen)


def test_a_background_cell_is_awaited_with_its_judges_verdicts(ip, sums) -> None:
    server, url = sums

    async def main() -> BatchResult:
        await run_cell(f"--background --base-url {url} {JUDGED} --no-display -o bg", "\n".join(PROMPTS[:4]))
        return await ip.user_ns["bg"]

    result = asyncio.run(main())
    assert [row.judge.passed for row in result] == PASSED[:4] and server.calls["judge-right"] == 4


def test_a_batch_api_cell_without_wait_judges_once_the_job_is_back(ip, make_sim, capsys) -> None:
    server = make_sim(batch_delay=0.2)

    async def main() -> tuple[BatchResult, bool]:
        await run_cell(f"--via batch --poll-interval 0.05 --base-url {server.base_url} -m sim-small "
                       "--judge sim-judge --judge-scale pass/fail --no-display -o job", "one\ntwo\n")
        result = ip.user_ns["job"]
        submitted_before_end = not result.done
        return await result, submitted_before_end

    result, submitted_before_end = asyncio.run(main())
    assert submitted_before_end and "the judge runs once the job is back" in capsys.readouterr().out
    assert result.judged is not None and result.judged.options.via == "batch"
    assert all(row.judge is not None for row in result)


def test_a_batch_api_cell_run_again_reattaches_and_judges(ip, make_sim) -> None:
    server = make_sim(batch_delay=0.2)
    line = (f"--via batch --poll-interval 0.05 --base-url {server.base_url} -m sim-small --judge sim-judge "
            "--judge-scale pass/fail --no-display -o job")

    async def submit() -> None:  # the loop ends with the job still running: a kernel restarted
        await run_cell(line, "one\ntwo\n")

    async def again() -> BatchResult:
        await run_cell(line, "one\ntwo\n")
        return await ip.user_ns["job"]

    asyncio.run(submit())
    assert ip.user_ns["job"].judged is None  # detached before its job was back: nothing judged yet
    result = asyncio.run(again())
    assert server.batch_stats()["jobs"] == 2  # the batch's job, reattached, and the judge's
    assert all(row.judge is not None for row in result)
