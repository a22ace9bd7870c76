"""``python -m nbtools``: the classic lesson in a terminal, on the built-in simulator.

Ten identical prompts, sent one after another and then all at once, with the timings.
"""

from __future__ import annotations

import argparse
import sys

from . import batch
from .compare import Comparison


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nbtools", description=__doc__)
    parser.add_argument("-n", "--repeat", type=int, default=10, help="how many identical prompts (default 10)")
    parser.add_argument("-c", "--concurrency", type=int, default=10, help="requests at once (default 10)")
    parser.add_argument("--prompt", default="Hello, how are you?")
    parser.add_argument("--provider", default="sim", help="sim (default), openai, xai, anthropic, ollama, vllm")
    parser.add_argument("-m", "--model", default=None)
    args = parser.parse_args(argv)
    options = dict(repeat=args.repeat, provider=args.provider, model=args.model, cache=False)  # timing is the point
    print(f"{args.repeat} x {args.prompt!r} on provider {args.provider!r}\n")
    print("serially (concurrency 1) ...", flush=True)
    serial = batch(args.prompt, concurrency=1, **options)
    print(f"  {serial.elapsed():.2f} s\nconcurrently (concurrency {args.concurrency}) ...", flush=True)
    concurrent = batch(args.prompt, concurrency=args.concurrency, **options)
    print(f"  {concurrent.elapsed():.2f} s\n")
    print(Comparison(serial, concurrent))
    print("\nfirst reply:", concurrent[0].text if concurrent[0].ok else concurrent[0].error)
    if serial.endpoint.simulated:
        print(f"\n({serial.endpoint.note})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
