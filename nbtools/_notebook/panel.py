"""``nbtools.Panel``: widgets to write prompts, pick an endpoint, run, cancel, compare and sweep.

A thin layer: the controls carry the same option names as ``batch()`` and ``%%llm_batch``, and the
live view below them is the magic's LiveDisplay. Moving the concurrency slider during a run
changes the running batch's limit at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import ipywidgets as widgets

from nbtools._base.errors import ConfigError, NbtoolsError
from nbtools._base.options import OPTIONS, options_from
from nbtools._compare import Comparison
from nbtools._engine.blocking import run_blocking
from nbtools._engine.client import ChatClient
from nbtools._engine.endpoints import PROFILES, resolve_endpoint
from nbtools._engine.failures import RequestFailed
from nbtools._live import follow, run_live
from nbtools._notebook import cells
from nbtools._notebook.display import LiveDisplay
from nbtools._result import BatchResult
from nbtools._sweep import SweepResult, asweep
from nbtools._views.panel_status import status_html

MAX_CONCURRENCY = 512
STEPS: tuple[int, ...] = tuple(1 << k for k in range(10))  # 1, 2, 4 ... 512: small values as easy to pick as large ones
_CUSTOM = "custom"


JUDGE_PICK = "sim:sim-judge"  # offered in the judge picker: it needs no key


class Panel:
    """Interactive batch runner. ``Panel(prompts, **options)``; ``panel.result`` holds the last result."""

    def __init__(self, prompts: str | list[str] = "Hello, how are you?", **options: Any) -> None:
        opts = options_from(options)  # same names and checks as batch()
        if opts.concurrency == "auto":
            raise ConfigError("the panel's concurrency is a slider: pass a number, e.g. concurrency=8")
        if isinstance(prompts, str):
            text = prompts
        elif not isinstance(prompts, (list, tuple)) or not all(isinstance(p, str) for p in prompts):
            raise ConfigError(f"prompts={prompts!r:.40} must be a string or a list of strings: e.g. Panel(['Hello!'])")
        else:  # one per line, unless a prompt has several lines: then blocks between --- lines
            text = ("\n---\n" if any("\n" in p for p in prompts) else "\n").join(prompts)
        self.result: BatchResult | Comparison | None = None
        self.sweep_result: SweepResult | None = None
        self._task: asyncio.Task[None] | None = None
        self._current: BatchResult | None = None

        style = {"description_width": "90px"}
        wide = widgets.Layout(width="98%")
        self.prompts = widgets.Textarea(text, description="prompts",
                                        placeholder="one prompt per line, or blocks between --- lines",
                                        layout=widgets.Layout(width="98%", height="90px"), style=style)
        provider = opts.provider or ("custom" if opts.base_url else "sim")
        self.provider = widgets.Dropdown(options=[*PROFILES, _CUSTOM], value=provider, description="provider", style=style)
        self.base_url = widgets.Text(opts.base_url or "", description="base_url", placeholder="http://localhost:8000/v1",
                                     style=style,
                                     layout=widgets.Layout(width="420px", display="" if provider == _CUSTOM else "none"))
        self.model = widgets.Combobox(value=opts.model or "", options=[], description="model", placeholder="(default)",
                                      ensure_option=False, style=style)
        # The number itself, and a slider of doubling steps to set it: on a linear 1..512 slider, 2, 4 and
        # 8 sat within a few pixels of each other.
        self.concurrency = widgets.BoundedIntText(opts.concurrency, min=1, max=max(MAX_CONCURRENCY, opts.concurrency),
                                                  description="concurrency", style=style, layout=widgets.Layout(width="200px"))
        self.concurrency_steps = widgets.SelectionSlider(options=STEPS, value=_step(int(opts.concurrency)), readout=False,
                                                         continuous_update=True, tooltip="1, 2, 4, 8 ... 512",
                                                         layout=widgets.Layout(width="300px"))
        self.models = widgets.SelectMultiple(options=[], description="models", rows=3, style=style,
                                             tooltip="pick several (Ctrl- or Shift-click) to run them side by side")
        # Sent only when set: the provider's defaults stay in force otherwise (some models reject them).
        self.temperature = widgets.FloatSlider(opts.temperature if opts.temperature is not None else 1.0, min=0, max=2, step=0.1,
                                               description="temperature", style=style)
        self.temperature_set = widgets.Checkbox(opts.temperature is not None, description="send", indent=False,
                                                layout=widgets.Layout(width="70px"))
        self.temperature.observe(lambda _: setattr(self.temperature_set, "value", True), names="value")
        self.max_tokens = widgets.BoundedIntText(opts.max_tokens or 0, min=0, max=1_000_000, description="max_tokens",
                                                 tooltip="0: the provider's default", style=style,
                                                 layout=widgets.Layout(width="200px"))
        self.repeat = widgets.BoundedIntText(opts.repeat, min=1, max=100_000, description="repeat", style=style,
                                             layout=widgets.Layout(width="200px"))
        self.stream = widgets.Checkbox(opts.stream, description="stream", indent=False)
        # A judge grades each reply after the batch (judge=): a provider:model name, or none.
        self.judge = widgets.Combobox(value=opts.judge.label if opts.judge is not None else "", options=[JUDGE_PICK],
                                      description="judge", placeholder="(none)", ensure_option=False, style=style,
                                      tooltip="a model that grades each reply after the batch, e.g. sim:sim-judge")
        self.max_sweep = widgets.BoundedIntText(64, min=2, max=MAX_CONCURRENCY, description="sweep to", style=style,
                                                layout=widgets.Layout(width="200px"))
        self.run_button = widgets.Button(description="Run", button_style="primary", icon="play")
        self.cancel_button = widgets.Button(description="Cancel", icon="stop", disabled=True)
        self.compare_button = widgets.Button(description="Compare", icon="columns", tooltip="serial, then concurrent")
        self.sweep_button = widgets.Button(description="Sweep", icon="line-chart", tooltip="concurrency 1, 2, 4, ...")
        self.status = widgets.HTML()
        self.output = widgets.VBox(layout=wide)
        # Options without a control of their own are kept as given.
        self._fixed = {name: getattr(opts, name) for name, (_, spec) in OPTIONS.items() if not spec.panel}
        self._models_task: asyncio.Task[None] | None = None
        self._wanted = [item.settings.get("model") for item in opts.models or () if not item.new_endpoint]
        self._sweep_view: asyncio.Task[BatchResult] | None = None  # keeps the sweep's live view task referenced

        self.run_button.on_click(lambda _: self._launch(self._run()))
        self.compare_button.on_click(lambda _: self._launch(self._compare()))
        self.sweep_button.on_click(lambda _: self._launch(self._sweep()))
        self.cancel_button.on_click(lambda _: self.cancel())
        self.concurrency.observe(self._on_concurrency, names="value")
        self.concurrency_steps.observe(self._on_step, names="value")
        self.provider.observe(self._on_provider, names="value")
        self.widget = widgets.VBox([
            self.prompts,
            widgets.HBox([self.provider, self.base_url]),
            widgets.HBox([self.model, self.stream]),
            self.judge,
            self.models,
            widgets.HBox([self.concurrency, self.concurrency_steps]),
            widgets.HBox([self.temperature, self.temperature_set, self.max_tokens, self.repeat]),
            widgets.HBox([self.run_button, self.cancel_button, self.compare_button, self.sweep_button, self.max_sweep]),
            self.status,
            self.output,
        ])
        self._refresh_models()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    # -- options ----------------------------------------------------------------------------------
    def options(self) -> dict[str, Any]:
        """The controls' values, named as ``batch()`` names them."""
        custom = self.provider.value == _CUSTOM
        base_url = self.base_url.value.strip() or None
        if custom and base_url is None:
            raise ConfigError("provider 'custom' needs a base_url: e.g. http://localhost:8000/v1")
        several = list(self.models.value) if len(self.models.value) >= 2 else None  # side by side
        return {
            "provider": None if custom else self.provider.value,
            "base_url": base_url if custom else None,
            "model": None if several else self.model.value.strip() or None,
            "models": several,
            "concurrency": self.concurrency.value,
            "temperature": self.temperature.value if self.temperature_set.value else None,
            "max_tokens": self.max_tokens.value or None,
            "repeat": self.repeat.value,
            "stream": self.stream.value,
            "judge": self.judge.value.strip() or None,
            **self._fixed,
        }

    def _prompts(self) -> list[str]:
        prompts = cells.split_prompts(self.prompts.value)
        if not prompts:
            raise NbtoolsError("no prompts: write one prompt per line in the prompts box")
        return prompts

    def _on_concurrency(self, change: dict[str, Any]) -> None:
        if _step(change["new"]) != self.concurrency_steps.value:
            self.concurrency_steps.value = _step(change["new"])
        if self._current is not None and not self._current.done:
            self._current.concurrency = change["new"]

    def _on_step(self, change: dict[str, Any]) -> None:
        if _step(self.concurrency.value) != change["new"]:  # not the echo of a number typed in
            self.concurrency.value = change["new"]

    def _on_provider(self, change: dict[str, Any]) -> None:
        self.base_url.layout.display = "" if change["new"] == _CUSTOM else "none"
        self.model.value = ""
        self._refresh_models()

    def _refresh_models(self) -> None:
        """Fill the model choices from the endpoint's /v1/models, in the background."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no kernel loop (a plain script): the model box stays free text
        if self._models_task is not None:
            self._models_task.cancel()  # a slower answer for the previous provider must not win
        self._models_task = loop.create_task(self._list_models())

    async def _list_models(self) -> None:
        try:
            opts = self.options()
            endpoint = resolve_endpoint(opts["provider"], opts["base_url"], None, opts["api_key_env"])
            async with ChatClient(endpoint, timeout=5) as client:
                models = await client.list_models()
        except (NbtoolsError, RequestFailed) as exc:
            self._say(str(exc), error=True)
            return
        self.model.options = models
        self.models.options = models
        self.models.value = tuple(m for m in self._wanted if m in models)  # Panel(models=[...]) on its own endpoint
        self.model.placeholder = f"(default: {endpoint.default_model or (models[0] if models else '?')})"
        self._say(f"{len(models)} models at {endpoint.host}" + (" (simulated)" if endpoint.simulated else ""))

    def _say(self, message: str, *, error: bool = False) -> None:
        self.status.value = status_html(message, error=error)

    # -- running ----------------------------------------------------------------------------------
    def _launch(self, work: Coroutine[Any, Any, None]) -> None:
        if self._task is not None and not self._task.done():
            work.close()
            self._say("a batch is already running: Cancel it first", error=True)
            return
        self._busy(True)  # at once, so a second click cannot slip in before the task starts
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            run_blocking(self._guarded(work))  # a plain script: run to the end
            return
        self._task = loop.create_task(self._guarded(work))

    async def _guarded(self, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except NbtoolsError as exc:
            self._say(str(exc), error=True)
        finally:
            self._busy(False)

    def _busy(self, busy: bool) -> None:
        self.cancel_button.disabled = not busy
        for button in (self.run_button, self.compare_button, self.sweep_button):
            button.disabled = busy

    def _started(self, result: BatchResult) -> None:
        self._current = self.result = result  # at once: the batch (or half of a comparison) now running

    def _view(self, result: BatchResult, title: str | None) -> LiveDisplay:
        """Each batch's live view, added below the previous one (a comparison shows both halves)."""
        view = LiveDisplay(result, title=title, embed=True, cancel_button=False)
        self.output.children = [*self.output.children, view.widget]
        return view

    async def _run(self, compare: bool = False) -> None:
        self.output.children = []
        outcome = await run_live(self._prompts(), self.options(), view_for=self._view, compare=compare,
                                 on_start=self._started)
        self.result = outcome
        if isinstance(outcome, BatchResult):
            self._say(str(outcome.summary()).replace("\n", " "))
        else:
            self.output.children = [*self.output.children, widgets.HTML(outcome._repr_mimebundle_()["text/html"])]

    async def _compare(self) -> None:
        await self._run(compare=True)

    async def _sweep(self) -> None:
        chart = widgets.HTML()
        slot = widgets.VBox()
        self.output.children = [chart, slot]

        def on_start(result: BatchResult) -> None:
            self._current = result
            view = LiveDisplay(result, title=f"concurrency {result.concurrency}", embed=True, cancel_button=False)
            slot.children = [view.widget]
            self._sweep_view = asyncio.get_running_loop().create_task(follow(result, view))
            # The sweep itself reports a failure: the view's copy of it needs no second report.
            self._sweep_view.add_done_callback(lambda task: task.cancelled() or task.exception())

        sweep_result = await asweep(self._prompts(), max_concurrency=self.max_sweep.value, on_start=on_start,
                                    **{k: v for k, v in self.options().items() if k != "concurrency"})
        self.sweep_result = sweep_result
        self.result = sweep_result.results[-1] if sweep_result.results else self._current
        chart.value = sweep_result._repr_mimebundle_()["text/html"]
        self._say(f"sweep done: {len(sweep_result.points)} levels")

    async def wait(self) -> BatchResult | Comparison | None:
        """Wait for the run started by Run, Compare or Sweep (if any); returns ``panel.result``."""
        if self._task is not None:
            await self._task
        return self.result

    def cancel(self) -> None:
        """Stop the running batch (and a sweep or comparison it belongs to); finished rows are kept."""
        if self._current is not None:
            self._current.cancel()


def _step(value: int) -> int:
    """The largest step at or below ``value``: where the steps slider stands for it."""
    return max(step for step in STEPS if step <= max(value, 1))
