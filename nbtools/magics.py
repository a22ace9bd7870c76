"""``%%llm_batch`` and ``%llm_cancel``: a thin IPython layer over the engine and the live display.

In a Jupyter kernel the cell is rewritten (an input transformer) into ``await run_cell(...)``, so
it runs as a top-level-await cell on the kernel's own loop: the cell still blocks ("Run All" and
nbval wait for it), yet ipykernel >= 7.4 keeps handling widget messages, so Cancel works live, and
the stop button arrives as a cancellation. Elsewhere (terminal IPython, ``run_cell_magic``) the
magic drives the loop itself.
"""

from __future__ import annotations

import asyncio
import json
import keyword
import sys
from dataclasses import dataclass, field, fields
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from traitlets import Bool, Dict, Enum, Float, Int, TraitError, Unicode, Union

from . import cells
from .blocking import run_blocking
from .compare import Comparison
from .display import LiveDisplay, follow
from .errors import BatchInterrupted, NbtoolsError
from .options import BatchOptions
from .results import BatchResult
from .runner import start

__all__ = ["LLMBatch", "load", "run_cell"]

_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(BatchOptions)}
_OPTION_NAMES = [f.name for f in fields(BatchOptions)]
_running: set[BatchResult] = set()
_background: set[asyncio.Task[Any]] = set()
_instance: LLMBatch | None = None


@dataclass
class Job:
    """A parsed cell: the prompts, the engine options, and what to do with the result."""

    prompts: list[str]
    options: dict[str, Any] = field(default_factory=dict)
    out: str | None = None
    background: bool = False
    compare: bool = False
    display: bool = True


def _concurrency(value: str) -> int | str:
    if value.strip("'\"") == "auto":
        return "auto"
    try:
        return int(value)
    except ValueError:
        raise ValueError(value) from None  # argparse reports it with the name below


_concurrency.__name__ = "concurrency (a whole number or 'auto')"


@magics_class
class LLMBatch(Magics):
    """Run many LLM prompts at once. Defaults: ``%config LLMBatch.<option> = value``."""

    model = Unicode(None, allow_none=True, help="Model name; default: the provider's default model.").tag(config=True)
    concurrency = Union([Int(), Enum(["auto"])], default_value=_DEFAULTS["concurrency"],
                        help="Most requests in flight at once, or 'auto'.").tag(config=True)
    repeat = Int(_DEFAULTS["repeat"], help="Send each prompt this many times.").tag(config=True)
    system = Unicode(None, allow_none=True, help="System message sent before each prompt.").tag(config=True)
    temperature = Float(None, allow_none=True, help="Sampling temperature (0-2).").tag(config=True)
    max_tokens = Int(None, allow_none=True, help="Most tokens per reply.").tag(config=True)
    stream = Bool(_DEFAULTS["stream"], help="Stream replies token by token.").tag(config=True)
    timeout = Float(_DEFAULTS["timeout"], help="Seconds allowed per request attempt (streaming: the longest silence).").tag(config=True)
    retries = Int(_DEFAULTS["retries"], help="Retries for 408/409/429/5xx and connection errors.").tag(config=True)
    params = Dict(help="Extra request fields, e.g. {'seed': 1}.").tag(config=True)
    provider = Unicode(None, allow_none=True, help="openai, xai, anthropic, ollama, vllm or sim.").tag(config=True)
    base_url = Unicode(None, allow_none=True, help="Any OpenAI-compatible base URL.").tag(config=True)
    api_key_env = Unicode(None, allow_none=True, help="NAME of the environment variable holding the key.").tag(config=True)
    rpm = Float(None, allow_none=True, help="Client-side budget: requests per minute, evenly spread.").tag(config=True)
    tpm = Float(None, allow_none=True, help="Client-side budget: tokens per minute (estimated, then corrected).").tag(config=True)
    cache = Bool(None, allow_none=True, help="Reuse replies to identical requests from the on-disk cache "
                 "(default: on, except on the simulator).").tag(config=True)
    display_limit = Int(20, help="Most rows shown in the live table.").tag(config=True)

    def __init__(self, shell: Any) -> None:
        super().__init__(shell=shell)
        shell.configurables.append(self)  # so `%config LLMBatch` lists the options

    @property
    def _user_ns(self) -> dict[str, Any]:
        assert self.shell is not None
        return self.shell.user_ns

    @magic_arguments()
    @argument("-m", "--model", help="model name (default: the provider's default)")
    @argument("-c", "--concurrency", type=_concurrency, help="most requests in flight at once, or 'auto' to adapt")
    @argument("-n", "--repeat", type=int, help="send each prompt N times")
    @argument("-s", "--system", help="system message, quoted: -s \"You are terse.\"")
    @argument("-t", "--temperature", type=float, help="sampling temperature, 0 to 2")
    @argument("--max-tokens", type=int, help="most tokens per reply")
    @argument("-o", "--out", metavar="VAR", help="store the BatchResult in this variable (set at once, filled live)")
    @argument("--stream", action="store_true", default=None, help="stream replies; the table grows as tokens arrive")
    @argument("--background", action="store_true", help="return at once; stop with Cancel or %%llm_cancel")
    @argument("--compare", action="store_true", help="run serially, then concurrently, and compare")
    @argument("--over", metavar="NAME", help="run the body once per item of this list/Series ({item})")
    @argument("--provider", help="openai, xai, anthropic, ollama, vllm or sim")
    @argument("--base-url", help="any OpenAI-compatible base URL, e.g. http://localhost:8000/v1")
    @argument("--api-key-env", metavar="NAME", help="NAME of the environment variable holding the key")
    @argument("--timeout", type=float, help="seconds allowed per request attempt (streaming: the longest silence)")
    @argument("--retries", type=int, help="retries for 408/409/429/5xx and connection errors")
    @argument("--params", metavar="JSON", help="extra request fields as JSON: --params '{\"seed\": 1}'")
    @argument("--rpm", type=float, help="client-side budget in requests per minute (no burst)")
    @argument("--tpm", type=float, help="client-side budget in tokens per minute")
    @argument("--cache", action="store_true", default=None, help="answer identical requests from the on-disk cache")
    @argument("--no-cache", dest="cache", action="store_false", help="always send, even if a reply is cached")
    @argument("--no-display", action="store_true", help="no live display (the result is still stored)")
    @cell_magic
    def llm_batch(self, line: str, cell: str) -> None:
        """Send each line of the cell (or each block between --- lines) as a prompt, concurrently.

        {name} fills in a variable; {{ and }} are literal braces. Example::

            %%llm_batch -c 10 -o answers
            Summarize {topic} in one line.
            Name three facts about {topic}.
        """
        job = self.parse(line, cell)
        if job.background:
            self._start_background(job)
            return
        run_blocking(self.run(job))

    @line_magic
    def llm_panel(self, line: str) -> Any:
        """Open the widget panel; takes the same options as %%llm_batch for its initial values.

        Example: ``%llm_panel -c 8 --provider sim``
        """
        from .panel import Panel

        args = _parse_line(line)
        unused = [flag for flag, value in (("--background", args.background), ("--compare", args.compare),
                                           ("--over", args.over), ("--no-display", args.no_display)) if value]
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
            targets = [target] if not target.done else []
        else:
            targets = [r for r in _running if not r.done]
        for result in targets:
            result.cancel()
        print(f"cancelled {len(targets)} running batch{'es' if len(targets) != 1 else ''}")

    # -- parsing ----------------------------------------------------------------------------------
    def parse(self, line: str, cell: str) -> Job:
        """Everything the cell asks for, checked up front: UsageError names the problem and the fix."""
        args = _parse_line(line)
        options = self._options(args)
        if not cell.strip():
            raise UsageError("%%llm_batch has an empty body: write one prompt per line below the magic line")
        namespace = self._user_ns
        try:
            if args.over is not None:
                if args.over not in namespace:
                    raise UsageError(f"--over {args.over}: {args.over!r} is not defined; define it in a cell above")
                items = cells.items_of(namespace[args.over], args.over)
                prompts = cells.fill_over(cell.strip(), items, namespace)
            else:
                prompts = [cells.fill(p, namespace) for p in cells.split_prompts(cell)]
            BatchOptions(**options)  # validate now, before anything is shown
        except NbtoolsError as exc:
            raise UsageError(str(exc)) from None
        if args.background and args.compare:
            raise UsageError("--background and --compare cannot be combined: drop one of them")
        return Job(prompts, options, args.out, args.background, args.compare, not args.no_display)

    def _options(self, args: Any) -> dict[str, Any]:
        """The engine options: the %config defaults, overridden by what the line gives."""
        options = {name: getattr(self, name) for name in _OPTION_NAMES}
        for name in _OPTION_NAMES:
            value = getattr(args, name, None)
            if value is not None and name != "params":
                options[name] = value
        options["params"] = {**self.params, **(_json_object(args.params) if args.params is not None else {})}
        return options

    # -- running ----------------------------------------------------------------------------------
    def _launch(self, job: Job, **overrides: Any) -> BatchResult:
        try:
            result = start(job.prompts, **{**job.options, **overrides})
        except NbtoolsError as exc:
            raise UsageError(str(exc)) from None
        if job.out:
            self._user_ns[job.out] = result  # bound at once, so an interrupt keeps what finished
        _running.add(result)
        return result

    async def run(self, job: Job) -> None:
        """Run the cell's batch to the end (or the stop button), showing it live."""
        if job.compare:
            # A timing lesson: replies from the cache would make both runs instant.
            serial = await self._follow(job, self._launch(job, concurrency=1, cache=False), "serial")
            if serial.cancelled:
                return  # Cancel means stop, not "go on to the next half"
            concurrent = await self._follow(job, self._launch(job, cache=False), "concurrent")
            if concurrent.cancelled:
                return
            comparison = Comparison(serial, concurrent)
            if job.out:
                self._user_ns[job.out] = comparison
            from IPython.display import display

            display(comparison)
            return
        await self._follow(job, self._launch(job), None)

    async def _follow(self, job: Job, result: BatchResult, title: str | None) -> BatchResult:
        view = LiveDisplay(result, limit=self.display_limit, title=title,
                           blocking=not job.background) if job.display else None  # compat: stop hint on old kernels
        try:
            if view is not None:
                view.show()
            await follow(result, view)
        except asyncio.CancelledError:  # the stop button
            await result.aclose()
            raise BatchInterrupted(result, _interrupted(result, job.out)) from None
        finally:
            _running.discard(result)
            if not result.done:  # the display itself failed: don't leave the batch running unseen
                await result.aclose()
        if result.failure is not None:
            raise UsageError(str(result.failure))
        return result

    def _start_background(self, job: Job) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise UsageError(
                "--background needs a Jupyter kernel (no event loop runs here between cells): drop --background"
            ) from None
        result = self._launch(job)
        task = loop.create_task(self._follow(job, result, "background"))
        _background.add(task)
        task.add_done_callback(_background.discard)
        task.add_done_callback(_quiet)
        if not job.out:
            print("running in the background; %llm_cancel stops it (use -o VAR to keep the result)")


def _interrupted(result: BatchResult, out: str | None) -> str:
    s = result.summary()
    where = f"kept in {out}" if out else "use -o VAR to keep them next time"
    return f"batch interrupted: {s.completed} of {s.total} requests had finished ({where})"


def _parse_line(line: str) -> Any:
    """The magic line's options, unquoted, with ``-o`` checked."""
    try:
        args = parse_argstring(LLMBatch.llm_batch, line)
    except UsageError as exc:
        message = str(exc)
        if message.startswith("unrecognized arguments:"):
            words = message.split(":", 1)[1].split()
            if words and words[0].startswith("-"):
                raise UsageError(f"unknown option {words[0]}: %%llm_batch? lists the options") from None
            raise UsageError(
                f"{message}: quote values that have spaces, e.g. -s \"Be brief.\" --params '{{\"seed\": 1}}'"
            ) from None
        raise UsageError(f"{message} (%%llm_batch? lists the options)") from None
    for name, value in vars(args).items():
        if isinstance(value, str):
            setattr(args, name, _unquote(value))
    if args.out is not None and not _is_variable_name(args.out):
        raise UsageError(f"-o {args.out}: not a valid variable name; use e.g. -o answers")
    return args


def _is_variable_name(name: str) -> bool:
    return name.isidentifier() and not keyword.iskeyword(name)


def _unquote(value: str) -> str:
    # IPython splits magic lines without removing quotes: -s "Be brief." arrives with its quotes.
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"--params is not valid JSON ({exc.args[0]}): e.g. --params '{{\"seed\": 1}}'") from None
    if not isinstance(value, dict):
        raise UsageError("--params must be a JSON object: e.g. --params '{\"seed\": 1, \"top_p\": 0.9}'")
    return value


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
    return [f"await __import__('nbtools.magics', fromlist=['run_cell']).run_cell({head.strip()!r}, {body!r})\n"]


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
    job = magics.parse(line, cell)
    if job.background:
        magics._start_background(job)
        return
    await magics.run(job)


def load(shell: Any) -> None:
    global _instance
    _instance = LLMBatch(shell)
    shell.register_magics(_instance)
    if getattr(shell, "kernel", None) is not None:
        import ipywidgets  # noqa: F401  # imported now, not in the middle of the first batch
        import tqdm.notebook  # noqa: F401

        if transform_cell not in shell.input_transformers_cleanup:
            shell.input_transformers_cleanup.append(transform_cell)
