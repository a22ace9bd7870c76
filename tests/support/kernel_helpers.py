"""A real Jupyter kernel driven through jupyter_client, for tests and benchmarks.

``Kernel`` starts one ipykernel (the ``python3`` kernelspec), keeps a thread draining iopub into a
timestamped list (so messages that arrive after a cell's reply, e.g. from a background batch, are
kept), and offers ``run(code)`` -> ``Execution`` plus the frontend side of the widget protocol
(``comm_msg``) and ``interrupt()``.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jupyter_client.manager import KernelManager

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@dataclass
class Execution:
    """One execute request: when it was sent, its reply, and every iopub message it caused."""

    kernel: Kernel
    msg_id: str
    code: str
    sent: float
    reply: dict[str, Any] | None = None
    replied: float | None = None

    @property
    def content(self) -> dict[str, Any]:
        assert self.reply is not None, "no reply yet"
        return self.reply["content"]

    @property
    def status(self) -> str:
        return self.content["status"]

    @property
    def messages(self) -> list[tuple[float, dict[str, Any]]]:
        """(arrival time, message) for every iopub message whose parent is this request."""
        return self.kernel.iopub_for(self.msg_id)

    def of_type(self, *types: str) -> list[dict[str, Any]]:
        return [m for _, m in self.messages if m["msg_type"] in types]

    @property
    def stdout(self) -> str:
        return "".join(m["content"]["text"] for m in self.of_type("stream") if m["content"]["name"] == "stdout")

    @property
    def stderr(self) -> str:
        return "".join(m["content"]["text"] for m in self.of_type("stream") if m["content"]["name"] == "stderr")

    def error_text(self) -> str:
        c = self.content
        return f"{c.get('ename')}: {c.get('evalue')}\n" + "\n".join(c.get("traceback", []))

    def check_ok(self) -> Execution:
        assert self.status == "ok", f"cell failed:\n{self.code}\n{self.error_text()}\nstderr: {self.stderr}"
        return self


class Kernel:
    def __init__(self, env: dict[str, str] | None = None, kernel_name: str = "python3") -> None:
        kernel_env = {k: v for k, v in os.environ.items() if not k.startswith(("NBTOOLS_", "OPENAI_", "PYTEST_"))}
        kernel_env.update(env or {})
        self.km = KernelManager(kernel_name=kernel_name)
        self.km.start_kernel(env=kernel_env)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)
        self._lock = threading.Condition()
        self._iopub: list[tuple[float, dict[str, Any]]] = []
        self._by_parent: dict[str, list[tuple[float, dict[str, Any]]]] = {}
        self._replies: dict[str, tuple[float, dict[str, Any]]] = {}
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read_iopub, name="iopub-reader", daemon=True)
        self._reader.start()

    # -- channels -----------------------------------------------------------------------------------
    def _read_iopub(self) -> None:
        while not self._stop.is_set():
            try:
                msg = self.kc.get_iopub_msg(timeout=0.05)
            except queue.Empty:
                continue
            except Exception:  # the channel was closed under us at shutdown
                if self._stop.is_set():
                    return
                raise
            now = time.monotonic()
            parent = msg.get("parent_header", {}).get("msg_id", "")
            with self._lock:
                self._iopub.append((now, msg))
                self._by_parent.setdefault(parent, []).append((now, msg))
                self._lock.notify_all()

    def iopub_for(self, msg_id: str) -> list[tuple[float, dict[str, Any]]]:
        with self._lock:
            return list(self._by_parent.get(msg_id, []))

    def all_iopub(self) -> list[tuple[float, dict[str, Any]]]:
        with self._lock:
            return list(self._iopub)

    def wait_iopub(self, predicate: Callable[[dict[str, Any]], bool], timeout: float, since: int = 0) -> dict[str, Any]:
        """The first iopub message (from index ``since``) satisfying ``predicate``; AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for _, msg in self._iopub[since:]:
                    if predicate(msg):
                        return msg
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no matching iopub message within {timeout} s")
                self._lock.wait(left)

    # -- execution ----------------------------------------------------------------------------------
    def send(self, code: str) -> Execution:
        """Send an execute request without waiting for anything."""
        msg_id = self.kc.execute(code, store_history=True, allow_stdin=False)
        return Execution(self, msg_id, code, time.monotonic())

    def wait(self, ex: Execution, timeout: float = 30) -> Execution:
        """Wait for ``ex``'s execute_reply and for its iopub 'idle' status; after an error, until the kernel
        takes requests again (``settle``)."""
        deadline = time.monotonic() + timeout
        ex.replied, ex.reply = self._reply_to(ex.msg_id, deadline, f"no execute_reply within {timeout} s for:\n{ex.code}")
        self.wait_iopub(
            lambda m: m["parent_header"].get("msg_id") == ex.msg_id
            and m["msg_type"] == "status"
            and m["content"]["execution_state"] == "idle",
            timeout=max(1.0, deadline - time.monotonic()),
        )
        if ex.status == "error":
            self.settle(max(1.0, deadline - time.monotonic()))
        return ex

    def settle(self, timeout: float = 10) -> int:
        """After an error, wait until the kernel runs requests again; how many it aborted meanwhile.

        A kernel aborts the execute requests that reach it right after an error (``stop_on_error``, as a
        frontend sends it) until it has gone through its queue; ipykernel 5 goes on aborting for
        ``stop_on_error_timeout`` (0.1 s) more, and its 'idle' for the failed cell comes before that. So a
        cell sent as soon as the error's reply and 'idle' arrive can come back 'aborted', the more so on a
        busy machine. Here a silent, empty execute request (no history, no execution count) is sent until
        one is not aborted: the kernel's own answer that it has finished aborting."""
        deadline = time.monotonic() + timeout
        aborted = 0
        while True:
            probe = self.kc.execute("", silent=True, store_history=False, allow_stdin=False)
            _, reply = self._reply_to(probe, deadline, f"the kernel still aborted requests {timeout} s after an error")
            if reply["content"]["status"] != "aborted":
                return aborted
            aborted += 1

    def _reply_to(self, msg_id: str, deadline: float, late: str) -> tuple[float, dict[str, Any]]:
        """(arrival time, message) of the shell reply to ``msg_id``, keeping the others that arrive meanwhile;
        AssertionError(``late``) past the deadline."""
        while msg_id not in self._replies:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(late)
            try:
                msg = self.kc.get_shell_msg(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            self._replies[msg["parent_header"].get("msg_id", "")] = (time.monotonic(), msg)
        return self._replies[msg_id]

    def run(self, code: str, timeout: float = 30) -> Execution:
        return self.wait(self.send(code), timeout)

    def ok(self, code: str, timeout: float = 30) -> Execution:
        return self.run(code, timeout).check_ok()

    def value(self, expr: str, timeout: float = 30) -> Any:
        """Evaluate ``expr`` in the kernel and return it, through JSON."""
        marker = "@@" + uuid.uuid4().hex
        ex = self.ok(f"import json as _j\nprint({marker!r} + _j.dumps({expr}))", timeout)
        line = next(printed for printed in ex.stdout.splitlines() if printed.startswith(marker))
        return json.loads(line[len(marker):])

    # -- frontend actions ---------------------------------------------------------------------------
    def comm_msg(self, comm_id: str, data: dict[str, Any]) -> None:
        """Send a comm message on the shell channel, as a frontend does (a widget click, ...)."""
        msg = self.kc.session.msg("comm_msg", {"comm_id": comm_id, "data": data})
        self.kc.shell_channel.send(msg)

    def click(self, comm_id: str) -> None:
        self.comm_msg(comm_id, {"method": "custom", "content": {"event": "click"}})

    def interrupt(self) -> None:
        self.km.interrupt_kernel()

    def widget_comm(self, model_name: str, since: int = 0, timeout: float = 10, **state: Any) -> str:
        """The comm id of the first widget of ``model_name`` whose state includes ``state``."""

        def match(m: dict[str, Any]) -> bool:
            if m["msg_type"] != "comm_open" or m["content"].get("target_name") != "jupyter.widget":
                return False
            s = m["content"]["data"].get("state", {})
            return s.get("_model_name") == model_name and all(s.get(k) == v for k, v in state.items())

        return self.wait_iopub(match, timeout, since)["content"]["comm_id"]

    def mark(self) -> int:
        """An index into the iopub log, for ``since=``."""
        with self._lock:
            return len(self._iopub)

    def shutdown(self) -> None:
        self._stop.set()
        self._reader.join(2)
        try:
            self.kc.stop_channels()
        finally:
            self.km.shutdown_kernel(now=True)
