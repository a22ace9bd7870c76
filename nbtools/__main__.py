"""``python -m nbtools``: the classic lesson in a terminal, on the built-in simulator.

Ten identical prompts, sent one after another and then all at once, with the timings.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from nbtools._base.errors import ConfigError, NbtoolsError
from nbtools._base.options import OPTIONS
from nbtools._compare import Comparison
from nbtools._engine.blocking import run_blocking
from nbtools._live import run_live
from nbtools._result import BatchResult

DEMO = {"repeat": 10, "concurrency": 10, "provider": "sim", "model": None}  # the demo's options, its defaults


def _add_option(parser: argparse.ArgumentParser, name: str, default: Any) -> None:
    """The option's flags and help as declared (nbtools._base.options), read by the option's own kind."""
    _, spec = OPTIONS[name]

    def read(text: str) -> Any:
        try:
            return spec.kind.parse(name, text, spec.example)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    shown = "" if default is None else f" (this demo: {default})"
    parser.add_argument(*spec.flags, dest=name, type=read, default=default, help=spec.help.replace("%", "%%") + shown)


class _Timing:
    """A terminal view: one line when a half starts, its wall time when it ends."""

    def __init__(self, result: BatchResult, title: str | None) -> None:
        self.result = result
        what = "serially (concurrency 1)" if title == "serial" else f"concurrently (concurrency {result.concurrency})"
        print(f"{what} ...", flush=True)

    def refresh(self) -> None:
        pass

    def finish(self) -> None:
        print(f"  {self.result.elapsed():.2f} s", flush=True)


def parser() -> argparse.ArgumentParser:
    """The command line: the demo's options, with their flags and help as declared, and the prompt."""
    command = argparse.ArgumentParser(prog="python -m nbtools", description=__doc__)
    for name, default in DEMO.items():
        _add_option(command, name, default)
    command.add_argument("--prompt", default="Hello, how are you?", help="the prompt sent (default: %(default)r)")
    return command


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    options = dict(repeat=args.repeat, provider=args.provider, model=args.model, concurrency=args.concurrency)
    print(f"{args.repeat} x {args.prompt!r} on provider {args.provider!r}\n")
    try:
        outcome = run_blocking(run_live(args.prompt, options, view_for=_Timing, compare=True))
    except NbtoolsError as exc:
        print(f"nbtools: {exc}", file=sys.stderr)
        return 1
    if not isinstance(outcome, Comparison):
        return 1  # cancelled
    concurrent = outcome.concurrent
    print(f"\n{outcome}")
    print("\nfirst reply:", concurrent[0].text if concurrent[0].ok else concurrent[0].error)
    if concurrent.endpoint.simulated:
        print(f"\n({concurrent.endpoint.note})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
