"""``%%llm_batch`` in a real Jupyter kernel, driven through jupyter_client like a frontend would.

One kernel for the module (the tests leave it idle and usable), and simulators running in this
process on their own threads (``nbtools.sim.serve``), so their counters can be read directly.
Frontend actions are real protocol messages: execute requests, a widget ``comm_msg`` click on the
shell channel, and ``KernelManager.interrupt_kernel()`` (SIGINT) for the stop button.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator

import pytest

from nbtools.sim import SimServer, serve
from tests.support.kernel_helpers import WIDGET_VIEW, Kernel

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]  # real kernels


@pytest.fixture(scope="module")
def kernel() -> Iterator[Kernel]:
    k = Kernel(env={"NBTOOLS_CACHE": "off"})  # timing tests: every request must reach the simulator
    try:
        k.ok("%load_ext nbtools")
        yield k
    finally:
        k.shutdown()


def _sim(latency: float) -> Iterator[SimServer]:
    with serve(latency=latency, latency_spread=0.0, reply="echo") as server:
        yield server


@pytest.fixture(scope="module")
def fast() -> Iterator[SimServer]:
    yield from _sim(0.05)


@pytest.fixture(scope="module")
def mid() -> Iterator[SimServer]:
    yield from _sim(0.2)


@pytest.fixture(scope="module")
def slow() -> Iterator[SimServer]:
    yield from _sim(0.5)


def magic(sim: SimServer, args: str, body: str = "ping") -> str:
    return f"%%llm_batch {args} --base-url {sim.base_url}\n{body}"


def wait_for(predicate, timeout: float, what: str, step: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)


def html_of(msg: dict) -> str:
    return msg["content"]["data"].get("text/html", "")


def state_of(msg: dict) -> str:
    """The "state" cell of the live summary table: running, done or cancelled."""
    found = re.search(r"<tr><th>state</th>.*?</tr><tr><td class='num'>([a-z]+)</td>", html_of(msg))
    assert found, html_of(msg)[:500]
    return found.group(1)


# -- blocking mode -------------------------------------------------------------------------------------
def test_blocking_cell_replies_after_the_batch_and_updates_its_display_in_place(kernel: Kernel, fast: SimServer) -> None:
    fast.reset()
    # 2 prompts x 10 at concurrency 2 on a 0.05 s server: >= 0.5 s of requests. No -m: the model is discovered.
    ex = kernel.run(magic(fast, "-o r -c 2 -n 10", "first prompt\nsecond prompt")).check_ok()
    stats = fast.stats()
    assert stats["completed"] == 20 and stats["in_flight"] == 0  # every request was answered before the reply
    assert ex.replied - ex.sent >= 0.45
    state = kernel.value("[r.done, r.cancelled, len(r), sum(x.ok for x in r), r.texts[0], r.texts[10], r.model]")
    assert state == [True, False, 20, 20, "first prompt", "second prompt", "sim-small"]

    displays = ex.of_type("display_data")
    assert any(WIDGET_VIEW in m["content"]["data"] for m in displays), "no widget view (progress + Cancel)"
    bodies = [m for m in displays if m["content"].get("transient", {}).get("display_id")]
    assert len(bodies) == 1, "one display_data for the table, then updates in place"
    display_id = bodies[0]["content"]["transient"]["display_id"]
    updates = [m for m in ex.of_type("update_display_data") if m["content"]["transient"]["display_id"] == display_id]
    assert len(updates) >= 3, "the table should refresh in place while the batch runs"
    assert all("text/html" in m["content"]["data"] for m in updates)
    assert any(state_of(m) == "running" for m in updates[:-1])
    final = html_of(updates[-1])
    assert state_of(updates[-1]) == "done" and "<td class='num'>20/20</td>" in final and "<svg" in final
    assert updates[-1]["content"]["data"]["text/plain"].startswith("20/20 done")
    assert not ex.of_type("error")


def test_run_all_queued_cells_all_get_replies_in_order(kernel: Kernel, fast: SimServer) -> None:
    # What "Run All" does: every execute request is sent at once, none waits for the previous reply.
    # (With the old nest_asyncio 1.6, the two cells queued behind a blocking magic were lost.)
    sent = [
        kernel.send(magic(fast, "-o ra -c 4 -n 12 -m sim-small")),
        kernel.send("x = 1"),
        kernel.send("print(x + 1)"),
    ]
    done = [kernel.wait(ex, timeout=20) for ex in sent]
    assert [ex.status for ex in done] == ["ok", "ok", "ok"], [ex.error_text() for ex in done]
    counts = [ex.content["execution_count"] for ex in done]
    assert counts == sorted(counts) and len(set(counts)) == 3
    assert done[0].replied <= done[1].replied <= done[2].replied
    assert done[2].stdout == "2\n"
    assert kernel.value("[ra.done, sum(x.ok for x in ra)]") == [True, 12]


# -- background mode -----------------------------------------------------------------------------------
def test_background_batch_returns_at_once_keeps_updating_and_can_be_cancelled(kernel: Kernel, mid: SimServer) -> None:
    mid.reset()
    try:
        _background_batch(kernel, mid)
    finally:
        kernel.run("%llm_cancel")  # never leave it running into the next tests


def _background_batch(kernel: Kernel, mid: SimServer) -> None:
    # 20 requests, 2 at a time, 0.2 s each: 2 s if left alone.
    ex = kernel.run(magic(mid, "--background -o bg -c 2 -n 20 -m sim-small"), timeout=10).check_ok()
    assert ex.replied - ex.sent < 0.6, "a --background cell should return at once"

    # Later cells run while it runs.
    assert kernel.value("[bg.done, 2 + 2]") == [False, 4]
    # Its display keeps updating after the cell's reply (tagged with the cell that started it).
    late = kernel.wait_iopub(
        lambda m: m["parent_header"].get("msg_id") == ex.msg_id and m["msg_type"] == "update_display_data",
        timeout=3,
        since=next(i for i, (t, _) in enumerate(kernel.all_iopub()) if t >= ex.replied),
    )
    assert state_of(late) == "running"
    wait_for(lambda: mid.stats()["completed"] >= 4, 3, "a few background requests to finish")

    cancel = kernel.ok("%llm_cancel bg")
    assert cancel.stdout.strip() == "cancelled 1 running batch"
    after_cancel = mid.stats()["requests"]
    waited = kernel.ok("r_bg = await bg\nprint(r_bg is bg)", timeout=5)
    assert waited.stdout == "True\n"
    done, cancelled, finished, ok, states = kernel.value(
        "[bg.done, bg.cancelled, bg.completed_count, sum(x.ok for x in bg), sorted({x.status for x in bg})]"
    )
    assert done and cancelled
    assert 4 <= finished < 20 and ok == finished, "finished rows are kept, the rest cancelled"
    assert states == ["cancelled", "ok"]
    time.sleep(0.5)  # longer than a request: nothing new may arrive
    assert mid.stats()["requests"] == after_cancel
    # The background display ends showing the cancelled state.
    last = [m for _, m in kernel.iopub_for(ex.msg_id) if m["msg_type"] == "update_display_data"][-1]
    assert state_of(last) == "cancelled"


def test_llm_cancel_without_running_batches_and_with_a_wrong_name(kernel: Kernel) -> None:
    assert kernel.ok("%llm_cancel").stdout.strip() == "cancelled 0 running batches"
    bad = kernel.run("not_a_batch = 3\n%llm_cancel not_a_batch")
    assert bad.status == "error" and bad.content["ename"] == "UsageError"
    assert "not a batch result" in bad.content["evalue"]


# -- the stop button -----------------------------------------------------------------------------------
def test_interrupt_stops_a_blocking_batch_at_once_and_keeps_finished_rows(kernel: Kernel, slow: SimServer) -> None:
    slow.reset()
    # 40 requests, 2 at a time, 0.5 s each: 10 s if left alone. Pairs start at about 0, 0.5, 1.0 s.
    ex = kernel.send(magic(slow, "-o r_int -c 2 -n 40 -m sim-small", "long request"))
    wait_for(lambda: slow.stats()["requests"] >= 6, 5, "the third pair of requests")
    time.sleep(0.08)  # mid-request: nothing is due to start for ~0.4 s
    before = slow.stats()["requests"]
    t_interrupt = time.monotonic()
    kernel.interrupt()
    kernel.wait(ex, timeout=10)
    took = ex.replied - t_interrupt
    assert ex.status == "error"
    assert ex.content["ename"] == "BatchInterrupted", ex.error_text()  # a KeyboardInterrupt, shown in one line
    assert ex.content["traceback"] == [f"BatchInterrupted: {ex.content['evalue']}"]
    m = re.fullmatch(r"batch interrupted: (\d+) of 40 requests had finished \(kept in r_int\)", ex.content["evalue"])
    assert m, ex.content["evalue"]
    finished = int(m.group(1))
    assert took < 1.0, f"the interrupt took {took:.2f} s to surface"  # measured 0.1-0.2 s
    assert 4 <= finished <= 6
    last = ex.of_type("update_display_data")[-1]  # the view ends on the stopped batch, not on "running"
    assert state_of(last) == "cancelled" and "running" not in last["content"]["data"]["text/plain"]

    time.sleep(0.6)  # longer than a request: a leftover dispatcher would have sent more by now
    stats = slow.stats()
    assert stats["requests"] == before, "requests were sent after the interrupt"
    assert stats["in_flight"] == 0
    state = kernel.value(
        "[r_int.done, r_int.cancelled, r_int.completed_count, sum(x.ok for x in r_int), "
        "sum(x.status == 'cancelled' for x in r_int)]"
    )
    assert state == [True, True, finished, finished, 40 - finished]
    assert kernel.value("'still usable'") == "still usable"


def live_clicks(kernel: Kernel) -> bool:
    """Whether this kernel handles a widget click while a cell awaits (ipykernel >= 7.4)."""
    return kernel.value("__import__('nbtools._notebook.kernel', fromlist=['_']).widgets_live_during_cell()")


def test_cancel_button_works_live_during_a_blocking_cell(kernel: Kernel, slow: SimServer) -> None:
    if not live_clicks(kernel):
        pytest.skip("this kernel holds clicks until the cell ends: test_old_kernel_shows_how_to_stop covers it")
    slow.reset()
    mark = kernel.mark()
    ex = kernel.send(magic(slow, "-o r_btn -c 2 -n 40 -m sim-small", "long request"))
    button = kernel.widget_comm("ButtonModel", since=mark, description="Cancel")
    wait_for(lambda: slow.stats()["completed"] >= 2, 5, "the first pair of requests")
    time.sleep(0.1)  # mid-request: the next pair is due in ~0.4 s
    t_click = time.monotonic()
    kernel.click(button)
    kernel.wait(ex, timeout=10).check_ok()
    assert ex.replied - t_click < 1.0, f"the cell ended {ex.replied - t_click:.2f} s after the click"
    after = slow.stats()
    cancelled, finished, ok = kernel.value("[r_btn.cancelled, r_btn.completed_count, sum(x.ok for x in r_btn)]")
    assert cancelled and 2 <= finished < 40 and ok == finished
    # The button is disabled at the end, and the table says cancelled.
    assert any(
        m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == button
        and m["content"]["data"].get("state", {}).get("disabled") is True
        for _, m in ex.messages
    )
    assert state_of(ex.of_type("update_display_data")[-1]) == "cancelled"
    time.sleep(0.6)
    assert slow.stats()["requests"] == after["requests"]


def test_old_kernel_shows_how_to_stop_where_cancel_would_be(kernel: Kernel, slow: SimServer) -> None:
    if live_clicks(kernel):
        pytest.skip("this kernel handles clicks during a cell: the Cancel button is tested live")
    slow.reset()
    mark = kernel.mark()
    ex = kernel.send(magic(slow, "-o r_hint -c 2 -n 40 -m sim-small", "long request"))
    hint = kernel.wait_iopub(
        lambda m: m["msg_type"] == "comm_open"
        and m["content"]["data"].get("state", {}).get("_model_name") == "HTMLModel"
        and "interrupt the kernel" in m["content"]["data"]["state"].get("value", ""),
        timeout=10, since=mark)
    assert "--background keeps a live Cancel" in hint["content"]["data"]["state"]["value"]  # its tooltip
    wait_for(lambda: slow.stats()["completed"] >= 2, 5, "the first pair of requests")
    kernel.interrupt()  # what the hint says: the stop button cancels the batch and keeps finished rows
    kernel.wait(ex, timeout=10)
    assert ex.content["ename"] == "BatchInterrupted", ex.error_text()
    buttons = [m for m in ex.of_type("comm_open")
               if m["content"]["data"].get("state", {}).get("_model_name") == "ButtonModel"]
    assert not buttons, "a Cancel button that cannot act while the cell runs"
    sent = slow.stats()["requests"]
    time.sleep(0.6)
    assert slow.stats()["requests"] == sent
    assert kernel.value("[r_hint.cancelled, r_hint.completed_count >= 2]") == [True, True]


# -- other modes ---------------------------------------------------------------------------------------
def test_stream_cell_gives_rows_with_ttft(kernel: Kernel, fast: SimServer) -> None:
    fast.reset()
    kernel.ok(magic(fast, "--stream -o st -c 4 -n 4 -m sim-small", "tell me a story"))
    rows = kernel.value("[[x.ok, x.ttft, x.latency, x.text] for x in st]")
    assert len(rows) == 4
    for ok, ttft, latency, text in rows:
        assert ok and text == "tell me a story"
        assert ttft is not None and 0 < ttft <= latency
    assert all(rec["stream"] for rec in fast.stats()["log"])


def test_compare_cell_stores_a_comparison(kernel: Kernel, mid: SimServer) -> None:
    ex = kernel.ok(magic(mid, "--compare -o cmp -c 10 -n 10 -m sim-small"), timeout=20)
    name, speedup, serial, concurrent = kernel.value(
        "[type(cmp).__name__, cmp.speedup, cmp.serial.summary().max_concurrency, cmp.concurrent.summary().max_concurrency]"
    )
    assert name == "Comparison" and speedup > 2, speedup
    assert (serial, concurrent) == (1, 10)
    shown = [m for m in ex.of_type("display_data") if "faster" in m["content"]["data"].get("text/html", "")]
    assert len(shown) == 1


# -- bad input -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("cell", "expect"),
    [
        ("%%llm_batch -c 0\nhi", "concurrency=0 must be at least 1"),
        ("%%llm_batch --bogus\nhi", "unknown option --bogus"),
        ("%%llm_batch -o r_empty", "empty body"),
        ("%%llm_batch -o r_empty\n\n  \n", "empty body"),
        ("%%llm_batch\nhi {undefined_name}", "'undefined_name' is not defined"),
        ("%%llm_batch -o 1x\nhi", "not a valid variable name"),
        ("%%llm_batch --params '[1]'\nhi", "must be a JSON object"),
        ("%%llm_batch --base-url localhost:8000\nhi", "is not an http(s) URL"),
    ],
)
def test_usage_errors_give_one_line_and_leave_the_kernel_usable(kernel: Kernel, cell: str, expect: str) -> None:
    ex = kernel.run(cell, timeout=10)
    assert ex.status == "error"
    assert ex.content["ename"] == "UsageError", ex.error_text()
    evalue = ex.content["evalue"]
    assert expect in evalue and "\n" not in evalue
    assert not ex.of_type("display_data"), "nothing is shown for a cell that was refused"
    assert kernel.value("'usable'") == "usable"


# -- once bugs: %%time around the magic, failure vs cancel, Cancel during --compare ------------------------
def test_time_magic_around_llm_batch(kernel: Kernel, fast: SimServer) -> None:
    ex = kernel.run("%%time\n" + magic(fast, "-o r_time -n 3 -m sim-small"), timeout=10)
    assert ex.status == "ok", ex.error_text()
    assert kernel.value("[r_time.done, sum(x.ok for x in r_time)]") == [True, 3]
    # A nested run holds clicks until the cell ends on any kernel: how to stop, not a dead Cancel button.
    models = [m["content"]["data"]["state"] for m in ex.of_type("comm_open") if "state" in m["content"]["data"]]
    assert any("interrupt the kernel" in str(state.get("value", "")) for state in models)
    assert not any(state.get("_model_name") == "ButtonModel" for state in models)


def test_a_failed_batch_is_not_reported_as_cancelled(kernel: Kernel) -> None:
    # Nothing listens on that port and no -m is given, so model discovery fails the whole batch.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ex = kernel.run(f"%%llm_batch -o r_fail -n 3 --base-url http://127.0.0.1:{port}/v1\nhi", timeout=10)
    assert ex.status == "error" and ex.content["ename"] == "UsageError"
    assert "cannot connect" in ex.content["evalue"]
    assert kernel.value("[r_fail.done, r_fail.failure is not None]") == [True, True]
    assert kernel.value("r_fail.cancelled") is False
    assert state_of(ex.of_type("update_display_data")[-1]) != "cancelled"


def test_cancel_button_during_compare_stops_the_cell(kernel: Kernel, slow: SimServer) -> None:
    if not live_clicks(kernel):
        pytest.skip("this kernel holds clicks until the cell ends: the interrupt is tested instead")
    slow.reset()
    mark = kernel.mark()
    ex = kernel.send(magic(slow, "--compare -o cmp_btn -c 5 -n 10 -m sim-small"))
    button = kernel.widget_comm("ButtonModel", since=mark, description="Cancel")
    wait_for(lambda: slow.stats()["completed"] >= 1, 5, "the first serial request")
    time.sleep(0.2)
    at_click = slow.stats()["requests"]
    kernel.click(button)
    kernel.wait(ex, timeout=15)
    time.sleep(0.3)
    assert slow.stats()["requests"] == at_click, "requests went on after Cancel (the concurrent phase started)"
    assert kernel.value("type(cmp_btn).__name__") != "Comparison"


# -- the panel ---------------------------------------------------------------------------------------------
def test_panel_slider_and_buttons_work_through_comm_messages(kernel: Kernel, mid: SimServer) -> None:
    mid.reset()
    mark = kernel.mark()
    kernel.ok(f"import nbtools\npanel = nbtools.Panel([f'q{{i}}' for i in range(60)], base_url={mid.base_url!r}, "
              "model='sim-small', concurrency=2)\npanel")
    run = kernel.widget_comm("ButtonModel", since=mark, description="Run")
    cancel = kernel.widget_comm("ButtonModel", since=mark, description="Cancel")
    slider = kernel.widget_comm("BoundedIntTextModel", since=mark, description="concurrency")
    kernel.click(run)  # as the browser sends it: a comm message on the shell channel
    wait_for(lambda: mid.stats()["completed"] >= 4, 5, "the first requests at concurrency 2")
    assert mid.stats()["peak_in_flight"] == 2
    kernel.comm_msg(slider, {"method": "update", "state": {"value": 8}, "buffer_paths": []})
    time.sleep(0.3)
    mid.reset()  # from here on, only the new limit counts
    wait_for(lambda: mid.stats()["completed"] >= 8, 5, "requests at the new limit")
    assert mid.stats()["peak_in_flight"] == 8
    kernel.click(cancel)
    wait_for(lambda: kernel.value("panel.result.done and not panel.run_button.disabled"), 2, "the cancel")
    assert kernel.value("[panel.result.cancelled, panel.result.concurrency]") == [True, 8]
    sent = mid.stats()["requests"]
    time.sleep(0.5)
    assert mid.stats()["requests"] == sent


# -- blocking calls while other work runs on the kernel's loop -----------------------------------------
@pytest.mark.parametrize("background", ["magic", "own tasks"])
def test_a_blocking_batch_while_other_work_runs_leaves_the_kernel_alive(fast: SimServer, background: str) -> None:
    # The first blocking batch() in a kernel makes its loop re-entrant. If that happens while other
    # callbacks are queued (a --background batch, a user's own tasks), the loop iteration already under
    # way must survive the nested run. A fresh kernel each time: no earlier batch() may have done it.
    k = Kernel(env={"NBTOOLS_CACHE": "off"})
    try:
        if background == "magic":
            k.ok("%load_ext nbtools")
            k.ok(magic(fast, "--background -o bg -c 50 -n 2000 -m sim-small"))
        else:  # many ready callbacks in every loop iteration, none of them ours
            k.ok("import asyncio\n"
                 "async def spin():\n"
                 "    while True:\n"
                 "        await asyncio.sleep(0)\n"
                 "spinners = [asyncio.get_running_loop().create_task(spin()) for _ in range(20)]")
        k.ok(f"import nbtools\nR = nbtools.batch(['a'] * 20, base_url={fast.base_url!r}, model='m', concurrency=5)")
        assert k.value("[sum(r.ok for r in R), 6 * 7]", timeout=15) == [20, 42]  # the kernel still answers
        if background == "magic":
            k.ok("%llm_cancel")
        else:
            k.ok("for t in spinners: t.cancel()")
    finally:
        k.shutdown()


# -- kernel stacks: what differs on the old kernels of Colab and Kaggle (ipykernel 6) ----------------------
def test_a_background_view_stays_in_its_cell_when_later_cells_run_at_once(kernel: Kernel, mid: SimServer) -> None:
    # "Run All" sends every cell at once: the background task's view must not land in a later cell
    # (ipykernel 6 tags output with the latest request unless told otherwise).
    mark = kernel.mark()
    sent = [kernel.send(magic(mid, "--background -o bg_all -c 2 -n 6 -m sim-small")),
            kernel.send("y_all = 2"), kernel.send("print(y_all)")]
    done = [kernel.wait(ex, timeout=20) for ex in sent]
    assert [ex.status for ex in done] == ["ok", "ok", "ok"]
    kernel.ok("await bg_all", timeout=10)
    kernel.wait_iopub(lambda m: m["msg_type"] == "update_display_data" and "<table" in html_of(m)
                      and state_of(m) == "done", timeout=5, since=mark)  # the view's last refresh
    views = [m for _, m in kernel.all_iopub()[mark:]
             if m["msg_type"] in ("display_data", "update_display_data") and "<table" in html_of(m)]
    assert {m["parent_header"]["msg_id"] for m in views} == {sent[0].msg_id}


def test_a_loop_patched_by_the_old_nest_asyncio(fast: SimServer) -> None:
    # Colab pins nest_asyncio 1.6, and its users apply it. On ipykernel 6 that loop loses nothing:
    # nbtools uses it as it is. From ipykernel 7.1 it loses messages: nbtools refuses, saying why.
    k = Kernel(env={"NBTOOLS_CACHE": "off"})
    try:
        k.ok("import nest_asyncio\nnest_asyncio.apply()")
        k.ok("%load_ext nbtools")
        safe = k.value("__import__('nbtools._engine.blocking', fromlist=['_']).old_nest_asyncio_is_safe()")
        sent = [k.send(f"import nbtools\nR = nbtools.batch(['a'] * 10, base_url={fast.base_url!r}, model='m', concurrency=2)"),
                k.send("x = 1"), k.send("print(x + 1)")]
        done = [k.wait(ex, timeout=20) for ex in sent]
        if safe:
            assert [ex.status for ex in done] == ["ok", "ok", "ok"], [ex.error_text() for ex in done]
            assert done[2].stdout == "2\n"
            assert k.value("sum(r.ok for r in R)") == 10
        else:
            assert done[0].status == "error" and "the old nest_asyncio" in done[0].content["evalue"]
        assert k.value("'usable'") == "usable"
    finally:
        k.shutdown()
