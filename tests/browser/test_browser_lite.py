"""nbtools in JupyterLite (the kernel runs in the page, Pyodide), on the site scripts/lite.py builds offline, in
headless Chromium: installed with %pip, the magic and the API on the in-process simulator, the fetch transport's
streaming, timeouts, cancellation and CORS error against servers on 127.0.0.1; no request leaves 127.0.0.1.

The first run downloads Pyodide's core (npm) and the wheels (PyPI) into .lite/cache; later builds take seconds."""

from __future__ import annotations

import http.server
import importlib.util
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser_lab import widget_button
from tests.support.lite_site import AUTHORIZATIONS, printed, run_cells, run_notebook, serving

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def lite() -> Iterator[str]:
    """The site built from this checkout, served on 127.0.0.1; yields its root URL."""
    spec = importlib.util.spec_from_file_location("lite", ROOT / "scripts" / "lite.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    with serving(script.build()) as root:
        yield root


@pytest.fixture
def no_cors() -> Iterator[str]:
    """A server on 127.0.0.1 that sends no CORS headers (as a provider that refuses pages): its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1"
    finally:
        server.shutdown()
        server.server_close()


def test_the_lesson_runs_in_the_browser_on_the_in_process_simulator(browser: Any, lite: str) -> None:
    ran = run_cells(browser, lite, [
        "%pip install nbtools-llm",
        "%load_ext nbtools",
        "%%llm_batch -n 10 -c 10 -o r\nHello, how are you?",
        'import json\nprint("ROWS", json.dumps([row.status for row in r]))\nprint("HOST", json.dumps(r.endpoint.host))',
        "import nbtools\nres = await nbtools.abatch([f'prompt {i}' for i in range(8)], concurrency=4)\n"
        'print("ABATCH", json.dumps([row.status for row in res]))',
        "blocked = nbtools.batch([f'prompt {i}' for i in range(8)], concurrency=4)\n"  # the cell waits (JSPI)
        'print("BATCH", json.dumps([row.status for row in blocked]))',
        "%%llm_batch --compare -n 10 -c 10 -o cmp\nHello, how are you?",
        'print("SPEEDUP", json.dumps(cmp.speedup))',
        "typed = await nbtools.abatch(['Review: great phone'], schema='sentiment: positive|negative, score: int')\n"
        'print("TYPED", json.dumps([typed[0].status, sorted(typed[0].data)]))',
        "import os\njobs = await nbtools.abatch(['one', 'two [[sim:500]]', 'three'], via='batch')\n"
        'print("BATCHAPI", json.dumps([[row.status for row in jobs], os.path.exists("/drive/.nbtools/jobs.sqlite")]))',
        "%%llm_batch --background -n 40 -c 2 -o bg\nHello, how are you?",
        "%llm_cancel bg",
        'await bg\nprint("BACKGROUND", json.dumps(sorted({row.status for row in bg})))',
    ])
    assert printed(ran, "ROWS") == ["ok"] * 10
    assert "no stop while this cell waits: --background keeps a live Cancel" in "\n".join(ran.outputs)  # no interrupt
    assert printed(ran, "HOST").startswith("in-process")  # no socket: the simulator answers in the page
    assert printed(ran, "ABATCH") == ["ok"] * 8
    assert printed(ran, "BATCH") == ["ok"] * 8  # its BatchResult, which awaits to itself, came back to the cell
    assert printed(ran, "SPEEDUP") >= 4
    assert printed(ran, "TYPED") == ["ok", ["score", "sentiment"]]  # pydantic's browser wheel validated it
    assert printed(ran, "BATCHAPI") == [["ok", "error", "ok"], True]  # a Batch API job in the page, its store in /drive
    assert "cancelled" in printed(ran, "BACKGROUND")  # stopped part-way from the next cell
    assert not ran.elsewhere, ran.elsewhere


def test_without_stack_switching_the_magic_runs_and_a_blocking_call_says_what_to_do(browser: Any, lite: str) -> None:
    ran = run_cells(browser, lite, [
        "%pip install nbtools-llm",
        "import json, nbtools\nfrom pyodide.ffi import can_run_sync\nprint('JSPI', json.dumps(can_run_sync()))",
        "%load_ext nbtools",
        "%%llm_batch -n 6 -c 6 -o cell\nHello, how are you?",  # the kernel awaits a %%llm_batch cell: no JSPI needed
        'print("CELL", json.dumps([row.status for row in cell]))',
        "get_ipython().run_cell_magic('llm_batch', '-n 6 -c 6 -o called', 'Hello, how are you?')",
        'await called\nprint("CALLED", json.dumps([row.status for row in called]))',
        "try:\n    nbtools.batch(['a'])\nexcept nbtools.NbtoolsError as exc:\n    print('BLOCKING', json.dumps(str(exc)))",
        "res = await nbtools.abatch(['a', 'b'])\nprint('AWAITED', json.dumps([row.status for row in res]))",
    ], jspi=False)
    assert printed(ran, "JSPI") is False  # the browser has no stack switching, as Safari
    assert printed(ran, "CELL") == ["ok"] * 6
    assert "running as --background" in "\n".join(ran.outputs)  # said in one line, and the batch ran on
    assert printed(ran, "CALLED") == ["ok"] * 6
    assert "await nbtools.abatch" in printed(ran, "BLOCKING")
    assert printed(ran, "AWAITED") == ["ok", "ok"]
    assert not ran.elsewhere, ran.elsewhere


def test_the_fetch_transport_streams_times_out_cancels_and_names_cors(browser: Any, lite: str, no_cors: str) -> None:
    url = f"{lite}/fake/v1"
    ran = run_cells(browser, lite, [
        "%pip install nbtools-llm",
        f"import asyncio, json, time, nbtools\nkw = dict(base_url={url!r}, model='m', cache=False, retries=0)",
        "r = await nbtools.abatch(['hello'], stream=True, **kw)\n"
        'print("STREAM", json.dumps([r[0].status, r[0].text, r[0].ttft < r[0].latency]))',
        "r = await nbtools.abatch(['x stall=3'], timeout=0.5, **kw)\n"
        'print("TIMEOUT", json.dumps([r[0].status, r[0].error_kind, r[0].error]))',
        "r = await nbtools.abatch(['x stall=3'], timeout=0.5, stream=True, **kw)\n"
        'print("SILENCE", json.dumps([r[0].status, r[0].error_kind, r[0].error]))',
        "b = nbtools.start(['x stall=3'] * 4, **kw)\nawait asyncio.sleep(0.3)\nt = time.monotonic()\nb.cancel()\n"
        'await b\nprint("CANCEL", json.dumps([time.monotonic() - t, [row.status for row in b]]))',
        "first = await nbtools.abatch(['kept'], base_url=kw['base_url'], model='m')\n"
        "again = await nbtools.abatch(['kept'], base_url=kw['base_url'], model='m')\nimport os\n"
        'print("CACHE", json.dumps([again[0].cached, os.path.exists("/drive/.nbtools/replies.sqlite")]))',
        f"try:\n    await nbtools.abatch(['x'], base_url={no_cors!r}, model='m', cache=False, retries=0)\n"
        'except nbtools.EndpointError as exc:\n    print("CORS", json.dumps(str(exc)))',
    ])
    assert printed(ran, "STREAM") == ["ok", "w0 w1 w2 w3 w4 ", True]
    status, kind, error = printed(ran, "TIMEOUT")
    assert (status, kind) == ("error", "timeout") and "timed out after 0.5 s" in error
    status, kind, error = printed(ran, "SILENCE")
    assert (status, kind) == ("error", "timeout") and "nothing arrived for 0.5 s" in error
    took, statuses = printed(ran, "CANCEL")
    assert took < 1.0 and "ok" not in statuses, (took, statuses)
    assert printed(ran, "CACHE") == [True, True]  # the reply cache lives under /drive, which a reload keeps
    cors = printed(ran, "CORS")
    assert "CORS" in cors and "Failed to fetch" in cors and "server kernel" in cors, cors
    assert not ran.elsewhere, ran.elsewhere


def test_a_key_typed_into_the_password_field_is_used_and_saved_nowhere(browser: Any, lite: str) -> None:
    key = "sk-typed-in-the-browser-0123456789abcdef"
    ran, saved = run_notebook(browser, lite, [
        "%pip install nbtools-llm",
        "import os, getpass\nos.environ['OPENAI_API_KEY'] = getpass.getpass('OPENAI_API_KEY: ')",
        f"import json, nbtools\nkw = dict(base_url={lite + '/fake/v1'!r}, provider='openai', model='m', retries=0)\n"
        "ok = await nbtools.abatch(['hello'], **kw)\nfailed = await nbtools.abatch(['x stall=3'], timeout=0.3, **kw)\n"
        "ok, failed",
        "key = os.environ['OPENAI_API_KEY']\ncache = open('/drive/.nbtools/replies.sqlite', 'rb').read()\n"
        'print("KEY", json.dumps([ok[0].status, failed[0].status, key.encode() in cache, key in failed[0].error, '
        "len(key)]))",
    ], typed=key)
    assert printed(ran, "KEY") == ["ok", "error", False, False, len(key)]  # not in the cache, nor the error
    assert f"Bearer {key}" in AUTHORIZATIONS  # sent where it belongs
    assert not any(key in text for text in ran.outputs)  # nor in any output, the results' tables included
    assert "OPENAI_API_KEY" in saved and "KEY [" in saved  # the saved notebook holds the cells and outputs...
    assert key not in saved  # ...and not the key


def site_notebook(name: str) -> list[str]:
    """The code cells of a lesson as the site serves it (its first cell installs what it needs)."""
    notebook = json.loads((ROOT / ".lite" / "site" / "files" / name).read_text())
    return ["".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code"]


def test_notebook_1_runs_top_to_bottom_in_the_browser_the_openai_sdk_included(browser: Any, lite: str) -> None:
    ran = run_cells(browser, lite, [*site_notebook("01_serial_vs_concurrent.ipynb"),
                                    'import json\nprint("LESSON", json.dumps([serial_time, concurrent_time]))'])
    text = "\n".join(ran.outputs)
    assert "Traceback" not in text and "Warning" not in text, text  # the seed recipe ran in the page
    assert "same answers either way: True" in text, text
    serial, concurrent = printed(ran, "LESSON")
    assert serial / concurrent >= 4, (serial, concurrent)
    assert "in-process" in text  # %%llm_batch --compare, on the same simulator, inside the page
    assert not ran.elsewhere, ran.elsewhere


def test_notebook_2_runs_top_to_bottom_in_the_browser(browser: Any, lite: str) -> None:
    ran = run_cells(browser, lite, site_notebook("02_concurrency_limit.ipynb"))
    text = "\n".join(ran.outputs)
    assert "Traceback" not in text, text  # every cell ran without an error, its nbtools.batch() calls included
    assert "every row answered: True | some had to wait: True" in text, text
    assert "speedup at most 1.3x, or not claimed: True" in text, text
    assert not ran.elsewhere, ran.elsewhere


def test_notebook_5_runs_then_its_panel_runs_moves_and_cancels_by_hand(browser: Any, lite: str) -> None:
    def by_hand(page: Any) -> None:
        """The panel of the notebook's first cell, as a user drives it: 200 requests at concurrency 1, the slider's
        handle two steps right while they run (1 -> 2 -> 4 in flight), then Cancel."""
        from playwright.sync_api import expect

        out = page.locator(".jp-OutputArea-output", has=page.locator(".widget-slider")).first
        control = out.locator(".widget-hbox", has=page.locator("label", has_text="concurrency")).first
        slider, number = control.locator(".widget-slider"), control.locator("input")
        run, cancel = widget_button(out, "Run"), widget_button(out, "Cancel")
        repeat = out.locator(".widget-text", has=page.locator("label", has_text="repeat")).locator("input")
        repeat.fill("200")
        repeat.press("Enter")
        handle = slider.locator(".noUi-handle")
        handle.focus()
        for _ in range(3):  # the notebook left it at 8
            page.keyboard.press("ArrowLeft")
        expect(number).to_have_value("1")
        run.click()
        header = out.locator(".widget-html-content .nbt").first
        expect(header.locator(".inflight")).to_have_text("1 in flight")
        expect(cancel).to_be_enabled()
        handle.focus()
        for _ in range(2):
            page.keyboard.press("ArrowRight")
        expect(number).to_have_value("4")
        expect(header.locator(".inflight")).to_have_text("4 in flight")
        expect(header).to_contain_text("concurrency 4 · 4 in flight · 200 requests")
        page.wait_for_timeout(2000)  # a few requests end (about 0.6 s each, 4 at a time)
        cancel.click()
        expect(run).to_be_enabled(timeout=10_000)  # the run ended at once
        expect(header).not_to_contain_text("in flight")
        status = out.locator(".widget-html-content", has_text="/200 done").first
        expect(status).to_be_visible()
        done = int(status.inner_text().split("/200 done")[0].split()[-1])
        assert 0 < done < 200, done

    ran = run_cells(browser, lite, site_notebook("05_widget_panel.ipynb"), then=by_hand)
    text = "\n".join(ran.outputs)
    assert "Traceback" not in text, text
    assert "sweep levels: [1, 2, 4, 8]" in text and "errors: 0" in text, text
    assert not ran.elsewhere, ran.elsewhere
