"""The JupyterLite site of scripts/lite.py, served on 127.0.0.1 with a small OpenAI-like endpoint beside it, and
cells run in its REPL app in headless Chromium, counting every request that would leave 127.0.0.1."""

from __future__ import annotations

import functools
import http.server
import json
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DONE = "ALL" + "CELLS" + "RAN"  # printed by the last cell; the text itself never appears in a cell's source
AUTHORIZATIONS: list[str] = []  # the Authorization header of every request to the fake endpoint


class _SiteHandler(http.server.SimpleHTTPRequestHandler):
    """The static site, plus POST /fake/v1/chat/completions: a reply, streamed in 5 chunks 0.05 s apart when asked,
    or after ``stall`` seconds when the prompt says ``stall=N`` (for the fetch transport's timeouts)."""

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.split("?")[0] != "/jupyter-lite.json":
            super().do_GET()
            return
        # The tests drive the app through window.jupyterapp, which JupyterLab exposes for automation on request.
        config = json.loads((Path(self.directory) / "jupyter-lite.json").read_text())
        config["jupyter-config-data"]["exposeAppInBrowser"] = True
        data = json.dumps(config).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        if not self.path.startswith("/fake/v1/chat/completions"):
            self.send_error(404)
            return
        AUTHORIZATIONS.append(self.headers.get("Authorization", ""))
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][-1]["content"]
        if "stall=" in prompt:
            time.sleep(float(prompt.split("stall=")[1].split()[0]))
        words = [f"w{i} " for i in range(5)]
        self.send_response(200)
        if not body.get("stream"):
            reply = {"id": "c", "object": "chat.completion", "model": "m", "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "".join(words)}, "finish_reason": "stop"}]}
            data = json.dumps(reply).encode()
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()  # HTTP/1.0: the body ends when the connection closes
        for word in words:
            chunk = {"id": "c", "object": "chat.completion.chunk", "model": "m",
                     "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
            time.sleep(0.05)
        end = {"id": "c", "object": "chat.completion.chunk", "model": "m",
               "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        self.wfile.write(f"data: {json.dumps(end)}\n\ndata: [DONE]\n\n".encode())


@contextmanager
def serving(site: Path) -> Iterator[str]:
    """``site`` on a free port of 127.0.0.1 until the block ends; yields its root URL."""
    handler = functools.partial(_SiteHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Ran:
    outputs: list[str]  # the text of each output area, in order
    elsewhere: list[str] = field(default_factory=list)  # requests to any host but 127.0.0.1
    seconds: float = 0.0


def _without_jspi(route: Any) -> None:
    """Pyodide's loader as a browser without WebAssembly stack switching (Safari; Firefox unflagged) runs it: the
    kernel's worker sees no ``WebAssembly.Suspending`` (Chromium has no switch that turns JSPI off)."""
    response = route.fetch()
    route.fulfill(response=response, body="delete WebAssembly.Suspending; delete WebAssembly.promising;\n" + response.text())


def run_cells(browser: Any, root: str, cells: list[str], timeout: float = 150.0,
              then: Callable[[Any], None] | None = None, jspi: bool = True) -> Ran:
    """Open the REPL app with ``cells`` (run in order as it starts, a last one printing DONE) and wait for DONE;
    ``then(page)``: what a user does next on the page, once every cell ran (its outputs are collected after);
    ``jspi=False``: the kernel runs as in a browser without WebAssembly stack switching."""
    cells = [*cells, f"print({DONE[:3]!r} + {DONE[3:]!r})"]
    query = "&".join("code=" + urllib.parse.quote(cell) for cell in cells)
    context = browser.new_context()
    if not jspi:
        context.route("**/static/pyodide/pyodide.mjs", _without_jspi)
    elsewhere: list[str] = []
    context.on("request", lambda request: elsewhere.append(request.url)
               if urllib.parse.urlsplit(request.url).scheme in ("http", "https", "ws", "wss")
               and urllib.parse.urlsplit(request.url).hostname != "127.0.0.1" else None)
    page = context.new_page()
    started = time.monotonic()
    texts = "els => els.map(e => e.innerText)"
    try:
        page.goto(f"{root}/repl/index.html?kernel=python&{query}")
        try:
            page.wait_for_function(f"() => document.body.innerText.includes({DONE!r})", timeout=timeout * 1000)
        except Exception:
            outputs = page.eval_on_selector_all(".jp-OutputArea-output", texts)
            raise AssertionError("the cells did not all run; outputs:\n" + "\n---\n".join(outputs)) from None
        if then is not None:
            then(page)
        outputs = page.eval_on_selector_all(".jp-OutputArea-output", texts)
    finally:
        seconds = time.monotonic() - started
        context.close()
    return Ran(outputs, elsewhere, seconds)


def printed(ran: Ran, label: str) -> Any:
    """The value a cell printed as ``print(label, json.dumps(value))``."""
    for line in "\n".join(ran.outputs).splitlines():
        if line.startswith(label + " "):
            return json.loads(line[len(label) + 1:])
    raise AssertionError(f"no output starts with {label!r}:\n" + "\n---\n".join(ran.outputs))


_NEW_NOTEBOOK = """async ([cells]) => {
    const app = window.jupyterapp;
    await app.restored;
    const made = await app.serviceManager.contents.newUntitled({type: 'notebook', path: ''});
    const panel = await app.commands.execute('docmanager:open', {path: made.path, factory: 'Notebook',
                                                                 kernel: {name: 'python'}});
    await panel.context.ready;
    await panel.sessionContext.ready;
    panel.content.model.sharedModel.insertCells(0, cells.map(source => ({cell_type: 'code', source})));
    window.nbtoolsPanel = panel;
    return made.path;
}"""
_RUN_CELL = """([index]) => {
    window.nbtoolsPanel.content.activeCellIndex = index;
    window.nbtoolsRun = window.jupyterapp.commands.execute('notebook:run-cell');
}"""
_SAVE_AND_READ = """async ([path]) => {
    const app = window.jupyterapp;
    await app.commands.execute('docmanager:save');
    const saved = await app.serviceManager.contents.get(path, {content: true});
    return JSON.stringify(saved.content);
}"""


def run_notebook(browser: Any, root: str, cells: list[str], typed: str, timeout: float = 150.0) -> tuple[Ran, str]:
    """A new notebook in the lab app with ``cells``, run one by one (``typed`` into the cell's password prompt
    where one asks), saved, and read back from the site's storage: what ran, and the saved notebook's text."""
    context = browser.new_context()
    page = context.new_page()
    started = time.monotonic()
    try:
        page.goto(f"{root}/lab/index.html")
        page.wait_for_function("() => window.jupyterapp", timeout=timeout * 1000)
        path = page.evaluate(_NEW_NOTEBOOK, [cells])
        for index, cell in enumerate(cells):
            page.evaluate(_RUN_CELL, [index])
            if "getpass" in cell:
                field = page.locator(".jp-Stdin-input")
                field.wait_for(timeout=timeout * 1000)
                field.fill(typed)
                field.press("Enter")
            page.evaluate("() => window.nbtoolsRun")
        outputs = page.eval_on_selector_all(".jp-OutputArea-output", "els => els.map(e => e.innerText)")
        saved = page.evaluate(_SAVE_AND_READ, [path])
    finally:
        seconds = time.monotonic() - started
        context.close()
    return Ran(outputs, [], seconds), saved
