"""The live view of a running batch: header, progress with Cancel, rows, summary, timeline.

One component, used by the magic and the panel. It reads the shared BatchResult on its own clock
(never per request), so its cost does not grow with the request rate: progress at up to 10 Hz,
and the heavier table/timeline render only as often as keeps it under ~5% of the kernel's time.
In a notebook the progress bar and Cancel button are widgets; the rest is one display-data
output updated in place, which static viewers and saved notebooks show as plain HTML.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from IPython.display import display, update_display

from nbtools._engine.transport.base import IN_BROWSER
from nbtools._live import TICK
from nbtools._notebook import kernel as _compat
from nbtools._result import BatchResult
from nbtools._views.live_view import stop_hint_html
from nbtools._views.report import DISPLAY_LIMIT

RENDER_BUDGET = 0.03  # the heavy render may use at most this share of the wall time


def in_notebook() -> bool:
    """True under a Jupyter kernel (a frontend that can show widgets and update outputs)."""
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class LiveDisplay:
    """Shows ``result`` and keeps the view current until the batch ends.

    ``show()`` puts it in the cell's output (the magic); with ``embed=True`` it is a widget,
    ``view.widget``, for a container such as the panel. Then ``refresh()`` on a clock, ``finish()``.
    """

    def __init__(self, result: BatchResult, *, limit: int = DISPLAY_LIMIT, title: str | None = None,
                 embed: bool = False, cancel_button: bool = True, blocking: bool = False) -> None:
        self.result = result
        self.view = result.live_view()  # one endpoint's rows, or several side by side: the result knows which
        self.limit = limit
        self.title = title
        self.notebook = embed or in_notebook()
        self._bar: Any = None
        self._button: Any = None
        self._header: Any = None
        self._body: Any = None  # an HTML widget when embedded
        self._body_id: str | None = None  # else a display id
        self._header_text = ""  # what a terminal was shown at the start
        self._next_render = 0.0  # perf_counter time from which the body may render again
        self._seen: tuple[int, ...] = ()
        self._parent = _compat.cell_parent()  # old kernels: where output sent after the cell ended belongs
        # A blocking cell on an old kernel gets clicks only once it has ended: say how to stop it instead.
        self._stop_hint = blocking and not _compat.widgets_live_during_cell()
        self.widget: Any = self._build_widgets(cancel_button, embed) if self.notebook else None

    # -- building ---------------------------------------------------------------------------------
    def show(self) -> None:
        """Display in the current cell's output: widgets for progress, one updatable HTML output."""
        if self.notebook:
            with _compat.sent_as(self._parent):
                display(self.widget)
                self._body_id = display(self._bundle(), raw=True, display_id=True).display_id
            r = self.result
            self._seen = (r.completed_count, r.stream_chunks, len(r.active), int(r.elapsed()))  # shown just now
        else:
            from tqdm.std import tqdm

            self._header_text = self.view.header_text()
            print(self._header_text, file=sys.stderr)
            self._bar = tqdm(total=len(self.result), desc=self.title or "requests", file=sys.stderr, leave=True)

    def _build_widgets(self, cancel_button: bool, embed: bool) -> Any:
        import ipywidgets as widgets
        from tqdm.notebook import tqdm

        if IN_BROWSER:
            tqdm.monitor_interval = 0  # its monitor is a thread, and a browser tab starts none (it would warn)
        self._header = widgets.HTML(self._header_html())
        self._bar = tqdm(total=len(self.result), desc=self.title or "requests", display=False)
        controls = [self._bar.container]
        if cancel_button and self._stop_hint:
            controls.append(widgets.HTML(stop_hint_html(*_compat.stop_hint())))
        elif cancel_button:
            self._button = widgets.Button(description="Cancel", icon="stop", tooltip="Stop the batch; finished rows are kept")
            self._button.on_click(lambda _: self.result.cancel())
            controls.append(self._button)
        children = [self._header, widgets.HBox(controls)]
        if embed:
            self._body = widgets.HTML(self._bundle()["text/html"])
            children.append(self._body)
        return widgets.VBox(children)

    def _header_html(self) -> str:
        return self.view.header_html(self.title)

    def _bundle(self) -> dict[str, str]:
        return self.view.body(self.limit)

    def _show_body(self) -> None:
        bundle = self._bundle()
        if self._body is not None:
            self._body.value = bundle["text/html"]
        elif self._body_id is not None:
            with _compat.sent_as(self._parent):
                update_display(bundle, raw=True, display_id=self._body_id)

    # -- updating ---------------------------------------------------------------------------------
    def refresh(self) -> None:
        result = self.result
        done = result.completed_count
        if self._bar is not None:
            self._bar.set_postfix_str(f"{result.in_flight} in flight", refresh=False)
            if done != self._bar.n:
                self._bar.update(done - self._bar.n)
        if not self.notebook:
            return
        header = self._header_html()
        if header != self._header.value:  # in-flight count and limit: cheap, so every tick
            self._header.value = header
        now = time.perf_counter()
        # Redraw when rows finish, text streams in, requests start, or a second passes (bars grow).
        state = (done, result.stream_chunks, len(result.active), int(result.elapsed()))
        if now >= self._next_render and state != self._seen:
            self._seen = state
            self._show_body()
            # A render's wall time grows when the kernel is starved of CPU, so this budget
            # shrinks with it: the display keeps the same share of the kernel's own time.
            self._next_render = now + max(TICK, (time.perf_counter() - now) / RENDER_BUDGET)

    def finish(self) -> None:
        result = self.result
        if self._bar is not None:
            self._bar.set_postfix_str("", refresh=False)  # nothing is in flight any more
            self._bar.update(result.completed_count - self._bar.n)
            if result.cancelled or result.failure:
                self._bar.set_description(("cancelled" if result.cancelled else "failed") + f" {self._bar.desc}")
            elif result.capped:  # the bar stops short because of the spending cap
                self._bar.set_description(f"max_cost reached {self._bar.desc}")
            self._bar.close()
        if self._button is not None:
            self._button.disabled = True
        if self.notebook:
            if self._header is not None:
                self._header.value = self._header_html()
            self._show_body()
        else:  # a terminal: the rows too, so errors are seen and not only counted
            print(self.view.end_text(self.limit, self._header_text), file=sys.stderr)
