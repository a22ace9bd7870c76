#!/usr/bin/env python
"""What an image costs the client: reading it once (media type, size in pixels, sha256) and writing it into a
request (base64 in a data: URI, the body as JSON), for a 1 MB JPEG, against a bare floor that only reads the file,
base64-encodes it and dumps the same JSON.

    python benchmarks/images.py            # 200 images, medians of 5 rounds
    python benchmarks/images.py --n 50 --rounds 3

Each round measures, per image and in CPU time of this process (time.process_time): ``load`` (what the batch does
once per image when it is built), ``encode`` (what each request does when it is sent: wire.py's Dialect.encode on
the chat body, then json.dumps as the client sends it), and the floor. The JPEG is a real JPEG head (SOI, APP0, a
frame header of 1600x1200) followed by 1 MB of random bytes: nothing here decodes pixels, so their content does not
matter, and random bytes do not compress.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nbtools._base.attachments import load  # noqa: E402
from nbtools._base.options import BatchOptions  # noqa: E402
from nbtools._engine.attach import with_parts  # noqa: E402
from nbtools._engine.endpoints import resolve_endpoint  # noqa: E402
from nbtools._engine.wire import Dialect, chat_body  # noqa: E402

MB = 2**20


def jpeg(size: int) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, 1200, 1600, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + sof + os.urandom(size) + b"\xff\xd9"


def per_image(work, items: list) -> float:
    """CPU milliseconds per item of ``work``."""
    start = time.process_time()
    for item in items:
        work(item)
    return (time.process_time() - start) * 1000 / len(items)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=200, help="images per round (each its own file)")
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="nbtools-bench-images-"))
    paths = []
    for i in range(args.n):
        path = folder / f"photo{i}.jpg"
        path.write_bytes(jpeg(MB))
        paths.append(str(path))
    endpoint = resolve_endpoint("openai", None, "sk-bench-not-a-real-key", None)
    options = BatchOptions(model="gpt-4o")
    dialect = Dialect(endpoint)

    def floor(path: str) -> None:
        uri = "data:image/jpeg;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")
        json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "Describe it."}, {"type": "image_url", "image_url": {"url": uri}}]}]}).encode()

    rounds: dict[str, list[float]] = {"load": [], "encode": [], "floor": []}
    for _ in range(args.rounds):
        start = time.process_time()
        loaded = [load(path, "image") for path in paths]
        rounds["load"].append((time.process_time() - start) * 1000 / len(paths))
        bodies = [chat_body(options, with_parts("Describe it.", [a], None), "gpt-4o") for a in loaded]
        rounds["encode"].append(per_image(lambda body: json.dumps(dialect.encode(body)).encode(), bodies))
        rounds["floor"].append(per_image(floor, paths))
    for path in paths:
        os.unlink(path)
    os.rmdir(folder)
    med = {k: statistics.median(v) for k, v in rounds.items()}
    print(f"{args.n} JPEGs of {MB / MB:.0f} MB + header, {args.rounds} rounds; CPU ms per image, median (range)")
    for key, label in (("load", "load: read, media type, size in pixels, sha256 (once per image)"),
                       ("encode", "encode: data: URI + JSON body (each request)"),
                       ("floor", "floor: read + base64 + JSON, nothing else")):
        values = rounds[key]
        print(f"  {label:<66} {med[key]:6.2f} ms ({min(values):.2f}–{max(values):.2f})")
    print(f"  load + encode ÷ floor: {(med['load'] + med['encode']) / med['floor']:.2f}")


if __name__ == "__main__":
    main()
