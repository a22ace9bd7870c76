"""``%%llm_batch`` and ``%llm_cancel``: a thin IPython layer over the engine and the live display.

In a Jupyter kernel the cell is rewritten (an input transformer) into ``await run_cell(...)``, so
it runs as a top-level-await cell on the kernel's own loop: the cell still blocks ("Run All" and
nbval wait for it), yet ipykernel >= 7.4 keeps handling widget messages, so Cancel works live, and
the stop button arrives as a cancellation. Elsewhere (terminal IPython, ``run_cell_magic``) the
magic drives the loop itself.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, cast

from IPython.core.error import UsageError
from IPython.core.magic import cell_magic, line_magic, magics_class
from traitlets import Int, TraitError

from nbtools._api import start
from nbtools._base.errors import BatchInterrupted, NbtoolsError
from nbtools._base.options import OPTIONS, options_from
from nbtools._engine.blocking import can_block, run_blocking
from nbtools._live import follow_judged, run_live
from nbtools._notebook import cells
from nbtools._notebook.display import LiveDisplay
from nbtools._notebook.magic_flags import CELL_FLAGS, OptionTraits, line_options, parse_line, with_flags
from nbtools._result import BatchResult
from nbtools._several import MultiModelResult

_running: set[BatchResult] = set()
_background: set[asyncio.Task[Any]] = set()
_instance: LLMBatch | None = None


@dataclass
class ParsedCell:
    """A parsed cell: the prompts, the engine options, and what to do with the result."""

    prompts: list[str]
    options: dict[str, Any] = field(default_factory=dict)
    out: str | None = None
    background: bool = False
    compare: bool = False
    display: bool = True
    wait: bool = False  # via="batch": block the cell until the job ends
    template: str = ""  # the cell's text, before its {names} were filled in

    @property
    def batch_api(self) -> bool:
        return self.options.get("via") == "batch"


@magics_class
class LLMBatch(OptionTraits):  # type: ignore[misc]
    """Run many LLM prompts at once. Defaults: ``%config LLMBatch.<option> = value``."""

    display_limit = Int(20, help="Most rows shown in the live table.").tag(config=True)

    def __init__(self, shell: Any) -> None:
        super().__init__(shell=shell)
        self._last_options: dict[str, dict[str, Any]] = {}  # by cell text: the options it last ran with
        shell.configurables.append(self)  # so `%config LLMBatch` lists the options

    @property
    def _user_ns(self) -> dict[str, Any]:
        assert self.shell is not None
        return cast("dict[str, Any]", self.shell.user_ns)

    @with_flags
    @cell_magic
    def llm_batch(self, line: str, cell: str) -> None:
        """Send each line of the cell (or each block between --- lines) as a prompt, concurrently.

        {name} fills in a variable; {{ and }} are literal braces. Example::

            %%llm_batch -c 10 -o answers
            Summarize {topic} in one line.
            Name three facts about {topic}.
        """
        parsed = self.parse(line, cell)
        if not can_block():  # a browser without JSPI, the magic called from code: no cell can wait for the batch
            if parsed.compare:
                raise UsageError("--compare needs a cell that waits, which this browser cannot make from code: "
                                 "run it as a %%llm_batch cell of its own")
            if not parsed.background:
                print("nbtools: this browser cannot make this cell wait (no WebAssembly stack switching): "
                      "running as --background")
            self._begin(replace(parsed, background=True), between_cells=True)  # starting it needs no wait
            return
        # Asked before we run a loop of our own: a kernel's loop runs on after the cell, terminal IPython has none.
        run_blocking(self.dispatch(parsed, between_cells=_loop_running()))

    @line_magic
    def llm_panel(self, line: str) -> Any:
        """Open the widget panel; takes the same options as %%llm_batch for its initial values.

        Example: ``%llm_panel -c 8 --provider sim``
        """
        from nbtools._notebook.panel import Panel

        args = parse_line(LLMBatch.llm_batch, line)
        refused = [(flag.flags[-1], flag.name) for flag in CELL_FLAGS if not flag.panel_takes]
        refused += [(spec.flags[-1], name) for name, (_, spec) in OPTIONS.items() if not spec.panel_takes]
        unused = [shown for shown, name in refused if getattr(args, name, None)]
        if unused:
            raise UsageError(f"%llm_panel does not take {', '.join(unused)}: its buttons do that (Run, Compare)")
        options = self._options(args)
        try:
            panel = Panel(**options)
        except (NbtoolsError, TraitError) as exc:
            raise UsageError(str(exc)) from None
        if args.out:
            self._user_ns[args.out] = panel
        return panel

    @line_magic
    def llm_cancel(self, line: str) -> None:
        """Cancel running batches: all of them, or the one stored in VAR (``%llm_cancel VAR``)."""
        name = line.strip()
        if name:
            target = self._user_ns.get(name)
            if not isinstance(target, BatchResult):
                raise UsageError(f"%llm_cancel {name}: {name} is not a batch result; use the variable given to -o")
            targets = [target] if target.busy else []
        else:
            targets = [r for r in _running if r.busy]
        for result in targets:
            result.cancel()
        print(f"cancelled {len(targets)} running batch{'es' if len(targets) != 1 else ''}")

    @line_magic
    def llm_jobs(self, line: str) -> Any:
        """List Batch API jobs (provider, status, counts, age); ``%llm_jobs cancel ID`` or ``%llm_jobs forget ID``.

        ID is the first column of the list, or a provider's job id.
        """
        from nbtools._jobs import cancel_job, forget_job, jobs

        words = line.split()
        try:
            if not words:
                return jobs()
            if len(words) == 2 and words[0] == "cancel":
                for state in cancel_job(words[1]):
                    print(state)
                return None
            if len(words) == 2 and words[0] == "forget":
                forget_job(words[1])
                print(f"forgotten: {words[1]} (running the same cell again submits a new job)")
                return None
        except NbtoolsError as exc:
            raise UsageError(str(exc)) from None
        raise UsageError("%llm_jobs takes nothing, 'cancel ID' or 'forget ID' (ID: the first column of %llm_jobs)")

    # -- parsing ----------------------------------------------------------------------------------
    def parse(self, line: str, cell: str) -> ParsedCell:
        """Everything the cell asks for, checked up front: UsageError names the problem and the fix."""
        args = parse_line(LLMBatch.llm_batch, line)
        options = self._options(args)
        if not cell.strip():
            raise UsageError("%%llm_batch has an empty body: write one prompt per line below the magic line")
        namespace = self._user_ns
        try:
            if args.over is not None:
                items = cells.items_of(cells.over_value(args.over, namespace), args.over)
                prompts = cells.fill_over(cell.strip(), items, namespace)
            else:
                prompts = [cells.fill(p, namespace) for p in cells.split_prompts(cell)]
            options_from(options)  # validate now, before anything is shown
        except NbtoolsError as exc:
            raise UsageError(str(exc)) from None
        if args.background and args.compare:
            raise UsageError("--background and --compare cannot be combined: drop one of them")
        if options["dry_run"] and (args.background or args.compare):
            raise UsageError("--dry-run sends nothing, so it takes no --background or --compare: drop them")
        if options["via"] == "batch" and args.compare:
            raise UsageError("--compare times online requests: drop --via batch (or --compare)")
        if args.wait and options["via"] != "batch":
            raise UsageError("--wait is for --via batch (an online cell always waits): drop --wait")
        return ParsedCell(prompts, options, args.out, args.background, args.compare, not args.no_display, args.wait,
                          cell.strip())

    def _options(self, args: Any) -> dict[str, Any]:
        """The engine options: the %config defaults, overridden by what the line gives."""
        return line_options(args, {name: getattr(self, name) for name in OPTIONS}, self._named(args))

    def _named(self, args: Any) -> Callable[[str, str], Any]:
        """How the line's variable names are looked up: ``--schema``'s its own way, the others (``--expected``,
        ``--checks``, ``--images``, ``--files``) as a variable, a column of one (``df.answer``), or a column of the
        ``--over`` frame."""

        def named(option: str, text: str) -> Any:
            if option == "schema":
                return self._schema_named(text)
            flag = "--" + option.replace("_", "-")
            try:
                if text.isidentifier() and text not in self._user_ns and args.over is not None:
                    frame = cells.over_value(args.over, self._user_ns, "--over")
                    if hasattr(frame, "columns") and text in frame.columns:
                        return frame[text]
                return cells.over_value(text, self._user_ns, flag)
            except NbtoolsError as exc:
                raise UsageError(str(exc)) from None

        return named

    def _schema_named(self, text: str) -> Any:
        """``--schema NAME`` names a variable (a model class or a dict); anything else is the short form."""
        if text.isidentifier():
            if text not in self._user_ns:
                raise UsageError(f"--schema {text}: {text!r} is not defined; define the model (or dict) in a cell "
                                 "above, or write the short form, e.g. --schema \"score: int, label: good|bad\"")
            return self._user_ns[text]
        return text

    # -- running ----------------------------------------------------------------------------------
    def _bind(self, parsed: ParsedCell, result: BatchResult) -> None:
        """A batch has started: bound to -o VAR at once (an interrupt keeps what finished), and cancellable."""
        result.template = parsed.template
        if parsed.out:
            self._user_ns[parsed.out] = result
        _running.add(result)

    def _view(self, parsed: ParsedCell) -> Callable[[BatchResult, str | None], LiveDisplay | None]:
        def view(result: BatchResult, title: str | None) -> LiveDisplay | None:
            if not parsed.display:
                return None
            # blocking: on kernels that hold clicks until the cell ends, a stop hint replaces Cancel
            live = LiveDisplay(result, limit=self.display_limit, title=title, blocking=not parsed.background)
            live.show()
            return live

        return view

    async def dispatch(self, parsed: ParsedCell, between_cells: bool) -> None:
        """The one way a parsed cell runs: in the background, submitted to a Batch API, or to the end in view.
        ``between_cells``: a loop runs on after the cell (a kernel's), so work may outlive it."""
        if self._begin(parsed, between_cells):
            return
        if parsed.batch_api and not parsed.wait and between_cells:  # return once submitted
            await self._submit_batch(parsed)
        else:
            await self.run(parsed)

    def _begin(self, parsed: ParsedCell, between_cells: bool) -> bool:
        """What every run does first, with no wait: say what changed, and start a --background run (True: all done)."""
        self._say_what_changed(parsed)
        if parsed.background:
            self._start_background(parsed, between_cells)
        return parsed.background

    def _say_what_changed(self, parsed: ParsedCell) -> None:
        """A cell run again with other options says which, in one line: its replies are not the last run's."""
        # Settings only: the data named on the line (images=, expected=) changes with the prompts, as the reply
        # cache's keys do, and is not kept here.
        options = {name: value for name, value in parsed.options.items()
                   if name != "dry_run" and not (name in OPTIONS and OPTIONS[name][1].kind.per_prompt)}
        before = self._last_options.get(parsed.template)
        self._last_options[parsed.template] = options
        changed = cells.changed_options(before, options) if before is not None else ""
        if changed:
            print(f"nbtools: options changed since this cell last ran in this kernel: {changed}")

    async def run(self, parsed: ParsedCell) -> None:
        """Run the cell's batch to the end (or the stop button), showing it live."""
        if parsed.options["dry_run"]:  # nothing is sent
            self._dry_run(parsed)
            return
        current: list[BatchResult] = []

        def started(result: BatchResult) -> None:
            current.append(result)
            self._bind(parsed, result)

        try:
            outcome = await run_live(parsed.prompts, parsed.options, view_for=self._view(parsed), compare=parsed.compare,
                                     on_start=started)
        except asyncio.CancelledError:  # the stop button
            if not current:
                raise
            raise BatchInterrupted(current[-1], _interrupted(current[-1], parsed.out)) from None
        except NbtoolsError as exc:  # bad options, or what stopped the batch (its rows stay in -o VAR)
            raise UsageError(str(exc)) from None
        finally:
            _running.difference_update(current)
        if isinstance(outcome, BatchResult):
            return
        if parsed.out:
            self._user_ns[parsed.out] = outcome
        from IPython.display import display

        display(outcome)

    def _dry_run(self, parsed: ParsedCell) -> None:
        from IPython.display import display

        from nbtools._dry_run import dry_run

        try:
            estimate = dry_run(parsed.prompts, **parsed.options)
        except NbtoolsError as exc:
            raise UsageError(str(exc)) from None
        if parsed.out:
            self._user_ns[parsed.out] = estimate
        display(estimate)

    async def _submit_batch(self, parsed: ParsedCell) -> None:
        """Start a Batch API run, follow it in the background, return once its jobs are submitted."""
        try:
            result = start(parsed.prompts, **parsed.options)
        except NbtoolsError as exc:
            raise UsageError(str(exc)) from None
        self._follow_in_background(parsed, result, "Batch API")
        parts = list(result.by_model.values()) if isinstance(result, MultiModelResult) else [result]
        for part in parts:  # several models: one job (or more) each, each submitted on its own
            assert part.batch_run is not None  # via="batch": a Batch API run drives it
            await part.batch_run.submitted.wait()
        if result.failure is not None:
            raise UsageError(str(result.failure))
        if not result.done:
            name = parsed.out or "the result (-o VAR)"
            print(f"submitted; the view above updates in the background. `await {name}` or {name}.wait() blocks "
                  "until the job ends; running this cell again reattaches to the job; %llm_jobs lists jobs")
            if result.options.judge is not None:
                print("the judge runs once the job is back, while this kernel runs (or when this cell, run again, "
                      "reattaches): `await` the result for its verdicts")

    def _follow_in_background(self, parsed: ParsedCell, result: BatchResult, title: str) -> None:
        """Bind ``result`` and keep its view current from a task of the kernel's loop, after the cell ends."""
        self._bind(parsed, result)
        task = asyncio.get_running_loop().create_task(follow_judged(result, self._view(parsed), title))
        _background.add(task)
        task.add_done_callback(_background.discard)
        task.add_done_callback(lambda _: _running.discard(result))
        task.add_done_callback(_quiet)

    def _start_background(self, parsed: ParsedCell, between_cells: bool) -> None:
        if not between_cells:
            raise UsageError(
                "--background needs a Jupyter kernel (no event loop runs here between cells): drop --background"
            )
        try:
            result = start(parsed.prompts, **parsed.options)  # now, so -o VAR is bound when the cell ends
        except NbtoolsError as exc:
            raise UsageError(str(exc)) from None
        self._follow_in_background(parsed, result, "background")
        if not parsed.out:
            print("running in the background; %llm_cancel stops it (use -o VAR to keep the result)")


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False  # a terminal IPython: nothing runs between cells, so the cell waits for the job
    return True


def _interrupted(result: BatchResult, out: str | None) -> str:
    s = result.summary()
    where = f"kept in {out}" if out else "use -o VAR to keep them next time"
    return f"batch interrupted: {s.completed} of {s.total} requests had finished ({where})"


def _quiet(task: asyncio.Task[Any]) -> None:
    # A background batch reports through its display and result; don't log "exception never retrieved".
    if not task.cancelled():
        task.exception()


def transform_cell(lines: list[str]) -> list[str]:
    """Input transformer: ``%%llm_batch ARGS\\nBODY`` becomes ``await run_cell(ARGS, BODY)``."""
    if not lines or not lines[0].startswith("%%llm_batch"):
        return lines
    head = lines[0].rstrip("\n")[len("%%llm_batch"):]
    if (head and not head[0].isspace()) or head.rstrip().endswith("?"):
        return lines  # another magic's name, or a help request
    if _inside_a_cell_magic():
        return lines  # e.g. the body of %%time: compiled outside any coroutine, so no await here
    body = "".join(lines[1:])
    return [f"await __import__('nbtools._notebook.magics', fromlist=['run_cell']).run_cell({head.strip()!r}, {body!r})\n"]


def _inside_a_cell_magic() -> bool:
    """True when another cell magic (%%time, %%capture...) is transforming its body, not IPython a cell."""
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_name == "run_cell_magic":
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


async def run_cell(line: str, cell: str) -> None:
    """What a transformed ``%%llm_batch`` cell awaits."""
    magics = _instance
    assert magics is not None, "%load_ext nbtools first"
    assert magics.shell is not None
    line = magics.shell.var_expand(line)  # {name} and $name in the magic line, as run_cell_magic does
    await magics.dispatch(magics.parse(line, cell), between_cells=True)


def load(shell: Any) -> None:
    global _instance
    _instance = LLMBatch(shell)
    shell.register_magics(_instance)
    if getattr(shell, "kernel", None) is not None:
        import ipywidgets  # noqa: F401  # imported now, not in the middle of the first batch
        import tqdm.notebook  # noqa: F401

        if transform_cell not in shell.input_transformers_cleanup:
            shell.input_transformers_cleanup.append(transform_cell)
