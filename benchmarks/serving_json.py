"""JSON request parsing: the server's own indexer (``serving/rest.py``) against maintained parsers.

    python benchmarks/serving_json.py              # best of 3 (60 MB body), of 200 (1-image body)

The large body is ``serving_soak.numbers_body`` (60 MiB of numbers in 16 rows, the heavy client
of the soak test), the small one a 160 px JPEG as ``{"instances": [{"b64": ...}]}``. Also
reported: the longest the indexer holds the GIL in one go (one ``json.loads`` of a
``JSON_CHUNK``), against which a maintained parser's single call over the whole body is to be
read: the server parses on threads beside its event loop, so a call that holds the GIL stops
every other request for as long as it runs. Parsers that are not installed (orjson, msgspec)
are left out of the table.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from serving_soak import b64, jpeg, numbers_body  # noqa: E402

from inception.serving import rest  # noqa: E402


def best_ms(fn, body: bytes, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn(body)
        best = min(best, time.perf_counter() - start)
    return 1e3 * best


def parsers() -> list[tuple[str, object]]:
    found = [
        (
            "hand-written indexer (`rest.parse_json`, arrays=True)",
            lambda b: rest.parse_json(b, True),
        ),
        ("stdlib `json.loads`", json.loads),
    ]
    for module, call in (("orjson", "loads"), ("msgspec.json", "decode")):
        try:
            found.append((f"{module} `{call}`", getattr(importlib.import_module(module), call)))
        except ImportError:
            print(f"({module} is not installed: left out)", file=sys.stderr)
    return found


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--large-mib", type=int, default=60)
    p.add_argument("--large-rounds", type=int, default=3)
    p.add_argument("--small-rounds", type=int, default=200)
    args = p.parse_args(argv)
    large = numbers_body(args.large_mib * 1024 * 1024, 16)
    small = json.dumps({"instances": [b64(jpeg(160, 0))]}).encode()
    print(f"bodies: {len(large) / 2**20:.1f} MiB and {len(small) / 1024:.1f} KiB\n")
    print("| parser | large body | 1-image body |\n|---|---|---|")
    for name, fn in parsers():
        big_ms = best_ms(fn, large, args.large_rounds)
        print(f"| {name} | {big_ms:.0f} ms | {best_ms(fn, small, args.small_rounds):.3f} ms |")
    pixel = b"[0.5,0.5,0.5]"
    chunk = b"[" + b",".join([pixel] * (rest.JSON_CHUNK // (len(pixel) + 1))) + b"]"
    held = best_ms(json.loads, chunk, 20)
    print(f"\nlongest GIL hold of the indexer: one json.loads of {len(chunk)} bytes, {held:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
