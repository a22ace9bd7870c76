"""``python -m nbtools.sim``: run the simulator in the foreground until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import signal
import sys

from nbtools.sim.config import SimConfig
from nbtools.sim.server import start

# How each annotation of SimConfig is read from the command line.
_ARG_TYPES: dict[str, dict[str, object]] = {
    "int": {"type": int},
    "int | None": {"type": int},
    "float": {"type": float},
    "float | None": {"type": float},
    "str": {"type": str},
    "tuple[str, ...]": {"nargs": "+"},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m nbtools.sim",
        description="Run the nbtools OpenAI-compatible simulator. "
        "Per-request directives such as [[sim:503]] are described in `pydoc nbtools.sim`.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8000, help="port to bind, 0 = any free port (default: %(default)s)")
    for field in dataclasses.fields(SimConfig):
        parser.add_argument(
            f"--{field.name.replace('_', '-')}",
            dest=field.name,
            default=field.default,
            help=field.metadata["help"] + ("" if field.default is None else " (default: %(default)s)"),
            **_ARG_TYPES[str(field.type)],  # type: ignore[arg-type]
        )
    return parser.parse_args(argv)


async def _run(config: SimConfig, host: str, port: int) -> None:
    runner, _, bound = await start(config, host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    shown = f"[{host}]" if ":" in host else host
    print(f"nbtools simulator listening on http://{shown}:{bound}/v1", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    args = vars(parse_args(argv))
    host, port = args.pop("host"), args.pop("port")
    try:
        config = SimConfig(**args)
    except ValueError as exc:
        print(f"nbtools.sim: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_run(config, host, port))
    except OSError as exc:  # typically the port is taken
        reason = exc.strerror or exc
        print(f"nbtools.sim: cannot listen on {host}:{port}: {reason}; try another --port", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
