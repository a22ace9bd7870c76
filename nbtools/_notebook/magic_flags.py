"""The magic's flags and ``%config LLMBatch`` traits, generated from the option declarations, and the magic line read.

Every option declared in nbtools._base.options with flags becomes a flag of ``%%llm_batch`` (its help, its
``--no-`` form) and a trait of ``%config LLMBatch`` (its default); the cell's own flags (``-o``, ``--background``
...) are declared once here, in CELL_FLAGS. Values stay text until the option's own kind reads them.
"""

from __future__ import annotations

import difflib
import keyword
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from IPython.core import magic_arguments as untyped_arguments
from IPython.core.error import UsageError
from IPython.core.magic import Magics
from IPython.core.magic_arguments import parse_argstring
from traitlets import Any as TraitAny
from traitlets import Bool, Dict, Enum, Float, Int, List, TraitType, Tuple, Unicode, Union

from nbtools._base.errors import ConfigError
from nbtools._base.options import (
    ONLINE_ONLY,
    OPTIONS,
    CheckMap,
    Choice,
    Column,
    Concurrency,
    Expected,
    Flag,
    JudgeModel,
    ModelList,
    Number,
    OptionSpec,
    Rates,
    RequestFields,
    Rubric,
    ScaleKind,
    SchemaKind,
    Text,
    WholeNumber,
)

# IPython's argument decorators carry no annotations: typed here, so the magics they decorate stay typed.
_Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]
argument = cast(Callable[..., _Decorator], untyped_arguments.argument)
magic_arguments = cast(Callable[[], _Decorator], untyped_arguments.magic_arguments)

_SCALARS: dict[type, type[TraitType[Any, Any]]] = {Text: Unicode, WholeNumber: Int, Number: Float, Flag: Bool}
_TRAITS: dict[type, Callable[[Any, OptionSpec], TraitType[Any, Any]]] = {
    Concurrency: lambda default, spec: Union([Int(), Enum(["auto"])], default_value=default, help=spec.help),
    RequestFields: lambda default, spec: Dict(help=spec.help),
    Choice: lambda default, spec: _choice(default, cast(Choice, spec.kind), spec.help),
    SchemaKind: lambda default, spec: TraitAny(None, allow_none=True, help=spec.help),
    Column: lambda default, spec: TraitAny(None, allow_none=True, help=spec.help),
    Expected: lambda default, spec: TraitAny(None, allow_none=True, help=spec.help),
    CheckMap: lambda default, spec: TraitAny(None, allow_none=True, help=spec.help),
    JudgeModel: lambda default, spec: Union([Unicode(), Dict()], default_value=None, allow_none=True, help=spec.help),
    Rubric: lambda default, spec: Unicode(None, allow_none=True, help=spec.help),
    ScaleKind: lambda default, spec: TraitAny(default, help=spec.help),
    ModelList: lambda default, spec: Union([Unicode(), List()], default_value=None, allow_none=True, help=spec.help),
    Rates: lambda default, spec: Union([Unicode(), Tuple(Float(), Float())], default_value=None, allow_none=True,
                                       help=spec.help),
}


def _choice(default: str | None, kind: Choice, help: str) -> TraitType[Any, Any]:
    if default is None:  # unset: the provider's default (tier)
        return Enum(list(kind.choices), default_value=None, allow_none=True, help=help)
    return Enum(list(kind.choices), default_value=default, help=help)


def _trait(default: Any, spec: OptionSpec) -> TraitType[Any, Any]:
    """The ``%config LLMBatch.<name>`` trait of an option (the engine checks the value when used)."""
    make = _TRAITS.get(type(spec.kind))
    trait = make(default, spec) if make is not None else _SCALARS[type(spec.kind)](
        default, allow_none=default is None, help=spec.help)
    return trait.tag(config=True)


# Traits generated from the option declarations; `%config LLMBatch` lists them (the magics class inherits them).
OptionTraits: Any = cast(Any, type(Magics))("OptionTraits", (Magics,), {name: _trait(d, s) for name, (d, s) in OPTIONS.items()})


@dataclass(frozen=True)
class CellFlag:
    """A flag of the cell magic that is not a batch option: what to do with the run, not how to send it."""

    flags: tuple[str, ...]
    help: str
    metavar: str | None = None  # takes a value; None: a bare switch
    panel_takes: bool = True  # False: the panel's buttons do that, and %llm_panel refuses the flag

    @property
    def name(self) -> str:
        return self.flags[-1].lstrip("-").replace("-", "_")


CELL_FLAGS = (
    CellFlag(("-o", "--out"), "store the BatchResult in this variable (set at once, filled live)", "VAR"),
    CellFlag(("--background",), "return at once; stop with Cancel or %%llm_cancel", panel_takes=False),
    CellFlag(("--compare",), "run serially, then concurrently, and compare", panel_takes=False),
    CellFlag(("--over",), "run the body once per item of this list/Series ({item})", "NAME", panel_takes=False),
    CellFlag(("--no-display",), "no live display (the result is still stored)", panel_takes=False),
    CellFlag(("--wait",), "--via batch: block the cell until the job ends"),
)


def with_flags(magic: Callable[..., Any]) -> Callable[..., Any]:
    """``magic`` with every flag: the cell's own (CELL_FLAGS), then each declared option's, in declaration order."""
    for name, (_, spec) in reversed(OPTIONS.items()):
        if not spec.flags:
            continue
        if isinstance(spec.kind, Flag):
            if spec.kind.negative:
                magic = argument(spec.kind.negative, dest=name, action="store_false", help=f"not {spec.flags[-1]}")(magic)
            magic = argument(*spec.flags, dest=name, action="store_true", default=None, help=spec.help)(magic)
        else:
            metavar = "JSON" if isinstance(spec.kind, RequestFields) else name.upper()
            if spec.each:  # e.g. --check NAME=CHECK, repeatable: one item of the option's dict each
                magic = argument(spec.each, dest=f"{name}_each", action="append", metavar="NAME=" + name.upper()[:-1],
                                 help=f"one item of --{name}, repeatable")(magic)
            magic = argument(*spec.flags, dest=name, metavar=metavar, help=spec.help.replace("%", "%%"))(magic)
    for flag in reversed(CELL_FLAGS):
        if flag.metavar is None:
            magic = argument(*flag.flags, action="store_true", help=flag.help)(magic)
        else:
            magic = argument(*flag.flags, metavar=flag.metavar, help=flag.help)(magic)
    return magic_arguments()(magic)


def parse_line(magic: Callable[..., Any], line: str) -> Any:
    """The magic line's flags and values (unquoted), with ``-o`` checked; a mistake is a one-line UsageError."""
    try:
        args = parse_argstring(magic, line)
    except UsageError as exc:
        raise UsageError(_mistake(magic, str(exc))) from None
    for name, value in vars(args).items():
        if isinstance(value, str):
            setattr(args, name, _unquote(value))
    if args.out is not None and not (args.out.isidentifier() and not keyword.iskeyword(args.out)):
        raise UsageError(f"-o {args.out}: not a valid variable name; use e.g. -o answers")
    return args


def _given(args: Any, name: str, spec: OptionSpec, named: Callable[[str, str], Any]) -> Any:
    """What the line gives for an option: its flag's value, with a repeatable item flag's items added (--check)."""
    value = getattr(args, name, None)
    items = getattr(args, f"{name}_each", None) if spec.each else None
    if not items:
        return value
    kind = cast(CheckMap, spec.kind)
    try:
        each = kind.parse_each(name, [_unquote(item) for item in items])
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    whole = named(name, value) if isinstance(value, str) else value
    return {**(whole or {}), **each}


def _mistake(magic: Callable[..., Any], message: str) -> str:
    """argparse's complaint as one line that names the fix."""
    if not message.startswith("unrecognized arguments:"):
        return f"{message} (%%llm_batch? lists the options)"
    words = message.split(":", 1)[1].split()
    if words and words[0].startswith("-"):
        known = [flag for action in magic.parser._actions for flag in action.option_strings]  # type: ignore[attr-defined]
        word = words[0].split("=", 1)[0]
        close = difflib.get_close_matches(word, known, n=1)
        return f"unknown option {word}{f' (did you mean {close[0]}?)' if close else ''}: %%llm_batch? lists the options"
    return f"{message}: quote values that have spaces, e.g. -s \"Be brief.\" --params '{{\"seed\": 1}}'"


def _unquote(value: str) -> str:
    # IPython splits magic lines without removing quotes: -s "Be brief." arrives with its quotes.
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def line_options(args: Any, defaults: Mapping[str, Any], named: Callable[[str, str], Any]) -> dict[str, Any]:
    """The engine options: ``defaults`` (the %config traits), overridden by what the line gives; a variable's name
    (``--schema NAME``, and every option whose kind is ``named``) looked up by ``named(option, text)``. A value an
    option cannot read is a UsageError that names its flag."""
    options = dict(defaults)
    for name, (_, spec) in OPTIONS.items():
        value = _given(args, name, spec, named)
        if value is None:
            continue
        if (name == "schema" or spec.kind.named) and isinstance(value, str):
            value = named(name, value)
        if isinstance(value, str) and spec.several and "," in value:  # -m a,b,c: several models
            options[name] = None
            name, spec = spec.several, OPTIONS[spec.several][1]
        if isinstance(value, str):
            try:
                value = spec.kind.parse(name, value, spec.example)
            except ConfigError as exc:  # the flag as typed, then what is wrong with its value
                flag = spec.flags[-1]
                raise UsageError(str(exc) if str(exc).startswith(flag) else f"{flag}: {exc}") from None
        options[name] = {**defaults["params"], **value} if name == "params" else value
    if options["via"] == "batch":  # %config defaults of online-only options are for online runs
        for name in ONLINE_ONLY:
            if getattr(args, name, None) is None:
                options.pop(name)
    return options
