"""CPU inference throughput at 299x299: our three models against keras.applications.

    python benchmarks/inference.py [--runs 5] [--batch-sizes 1 16] [--json out.json]

Each model runs inside one ``tf.function`` (graph mode, no XLA), random weights, float32. After a
warm-up call, each configuration is timed ``--runs`` times; the table shows the median images/s and
the ratio to ``keras.applications.InceptionResNetV2`` measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import inception  # noqa: E402

BASELINE = "keras.applications.InceptionResNetV2"


def candidates():
    yield BASELINE, lambda: keras.applications.InceptionResNetV2(weights=None)
    for name in inception.list_models():
        yield f"inception.{name}", lambda name=name: inception.build(name)


def time_model(model, batch, runs, min_seconds=2.0):
    fn = tf.function(lambda x: model(x, training=False))
    x = tf.constant(np.random.default_rng(0).uniform(-1, 1, (batch, 299, 299, 3)), tf.float32)
    fn(x).numpy()  # trace + warm-up
    rates = []
    for _ in range(runs):
        calls, start = 0, time.perf_counter()
        while True:
            fn(x).numpy()
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds / 4 or calls >= 50:
                break
        rates.append(calls * batch / elapsed)
    return statistics.median(rates)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--json", help="also write the results as JSON here")
    args = parser.parse_args()

    results = {}
    for label, build in candidates():
        model = build()
        results[label] = {b: time_model(model, b, args.runs) for b in args.batch_sizes}
        print(f"{label}: " + ", ".join(f"b{b} {r:.2f} img/s" for b, r in results[label].items()))
        del model
        keras.backend.clear_session()

    cols = "".join(f" batch {b} img/s | vs keras |" for b in args.batch_sizes)
    print(f"\n| model |{cols}\n|---|" + "---:|---:|" * len(args.batch_sizes))
    for label, rates in results.items():
        cells = "".join(f" {r:.2f} | {r / results[BASELINE][b]:.2f}x |" for b, r in rates.items())
        print(f"| {label} |{cells}")
    print(f"\n(median of {args.runs} runs, {os.cpu_count()} CPU cores, TF {tf.__version__})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"runs": args.runs, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
