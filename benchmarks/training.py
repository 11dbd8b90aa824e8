"""Training throughput on this machine: images/s of ``inception train`` (the paper's recipe on
``model.fit``: aux head, L2, clipping, moving averages, JPEG decoding) on TensorFlow and on JAX,
batch 8, 299x299, float32, against ``keras.applications.InceptionResNetV2`` + ``model.fit``
(Keras' RMSprop, same batch and size, an in-memory batch) on TensorFlow, measured in the same run.

    python benchmarks/training.py [--models inception_resnet_v2] [--backends tensorflow jax] \
        [--runs 5]

Every measurement runs in its own process (the Keras backend is chosen per process) and is the
median of ``--runs`` per-step rates after two warm-up steps (compilation excluded): ours from the
run's ``metrics.jsonl`` (one record per step), the baseline from a callback timing each step.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BATCH, SIZE, WARMUP = 8, 299, 2
BASELINE = "keras.applications.InceptionResNetV2 + model.fit"


def baseline(runs: int) -> float:
    import keras
    import numpy as np
    import tensorflow as tf

    class StepTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times = []

        def on_train_batch_begin(self, batch, logs=None):
            self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.times.append(time.perf_counter() - self.start)

    model = keras.applications.InceptionResNetV2(weights=None)
    model.compile(keras.optimizers.RMSprop(0.01), "sparse_categorical_crossentropy")
    x = np.random.default_rng(0).uniform(-1, 1, (BATCH, SIZE, SIZE, 3)).astype("float32")
    y = np.zeros((BATCH,), "int32")
    timer = StepTimer()
    model.fit(tf.data.Dataset.from_tensors((x, y)).repeat(), steps_per_epoch=runs + WARMUP,
              epochs=1, callbacks=[timer], verbose=0)  # fmt: skip
    return BATCH / statistics.median(timer.times[WARMUP:])


def ours(model: str, runs: int, data: str) -> float:
    import inception

    out = tempfile.mkdtemp()
    inception.train(model, data, out, image_size=SIZE, batch_size=BATCH, steps=runs + WARMUP,
                    mixed_precision="float32", eval_split=None, validate_every=0, verbose=0,
                    checkpoint_every=10_000, log_every=1)  # fmt: skip
    with open(os.path.join(out, "metrics.jsonl")) as f:
        rates = [json.loads(line)["images_per_sec"] for line in f][WARMUP:]
    return statistics.median(rates)


def measure(what: str, backend: str, model: str, runs: int, data: str) -> float:
    """One measurement in a child process with ``KERAS_BACKEND=backend``."""
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    cmd = [sys.executable, __file__, "--child", what, "--models", model, "--runs", str(runs),
           "--data", data]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{what} on {backend} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])["rate"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["inception_resnet_v2"])
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax"])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--child", choices=("baseline", "ours"), help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        rate = (
            baseline(args.runs)
            if args.child == "baseline"
            else ours(args.models[0], args.runs, args.data)
        )
        print(json.dumps({"rate": rate}))
        return

    from inception.demo.train import make_dataset

    data = str(make_dataset(Path(tempfile.mkdtemp())) / "train")
    base = measure("baseline", "tensorflow", "-", args.runs, data)
    print(f"Training, batch {BATCH}, {SIZE}x{SIZE}, float32, {os.cpu_count()} CPU cores, "
          f"median of {args.runs} steps after {WARMUP} warm-up steps\n")  # fmt: skip
    print("| model | backend | images/s | vs baseline |\n|---|---|---:|---:|")
    print(f"| {BASELINE} (baseline) | tensorflow | {base:.2f} | 1.00x |", flush=True)
    for model in args.models:
        for backend in args.backends:
            rate = measure("ours", backend, model, args.runs, data)
            print(f"| inception train --model {model} | {backend} | {rate:.2f} | "
                  f"{rate / base:.2f}x |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
