"""CPU inference throughput at 299x299: our three models against keras.applications.

    python benchmarks/inference.py [--runs 5] [--batch-sizes 1 16] [--json out.json]

Each model runs inside one ``tf.function`` (graph mode, no XLA), random weights, float32. All
models are built and warmed up first; then each of ``--runs`` rounds times every model in turn
(interleaved, so a change in machine load hits all of them alike). The table shows the median
images/s and the median over rounds of the ratio to ``keras.applications.InceptionResNetV2``.
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


def build_all():
    models = {BASELINE: keras.applications.InceptionResNetV2(weights=None)}
    for name in inception.list_models():
        models[f"inception.{name}"] = inception.build(name)
    return models


def timed(fn, x, batch, min_seconds):
    calls, start = 0, time.perf_counter()
    while True:
        fn(x).numpy()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return calls * batch / elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--min-seconds", type=float, default=1.0, help="per model and round")
    parser.add_argument("--json", help="also write the results as JSON here")
    args = parser.parse_args()

    models = build_all()
    fns = {label: tf.function(lambda x, m=m: m(x, training=False)) for label, m in models.items()}
    rng = np.random.default_rng(0)
    rates = {label: {b: [] for b in args.batch_sizes} for label in models}
    for batch in args.batch_sizes:
        x = tf.constant(rng.uniform(-1, 1, (batch, 299, 299, 3)), tf.float32)
        for fn in fns.values():
            fn(x).numpy()  # trace + warm-up
        for _ in range(args.runs):
            for label, fn in fns.items():
                rates[label][batch].append(timed(fn, x, batch, args.min_seconds))
        medians = {label: statistics.median(r[batch]) for label, r in rates.items()}
        print(f"batch {batch}: " + ", ".join(f"{k} {v:.2f}" for k, v in medians.items()))

    base = rates[BASELINE]
    cols = "".join(f" batch {b} img/s | vs keras |" for b in args.batch_sizes)
    print(f"\n| model |{cols}\n|---|" + "---:|---:|" * len(args.batch_sizes))
    summary = {}
    for label, per_batch in rates.items():
        summary[label] = {}
        cells = ""
        for b, values in per_batch.items():
            ratio = statistics.median(v / w for v, w in zip(values, base[b]))
            summary[label][b] = {"images_per_s": statistics.median(values), "vs_keras": ratio}
            cells += f" {statistics.median(values):.2f} | {ratio:.2f}x |"
        print(f"| {label} |{cells}")
    rounds = f"median of {args.runs} interleaved rounds"
    print(f"\n({rounds}, {os.cpu_count()} CPU cores, TF {tf.__version__})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"runs": args.runs, "results": summary}, f, indent=1)


if __name__ == "__main__":
    main()
