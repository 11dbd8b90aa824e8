"""Training throughput on this machine: images/s of one ``inception.train`` step at batch 8,
299x299, float32, per model, against ``keras.applications.InceptionResNetV2`` + ``model.fit``
(RMSprop, same batch and size) measured in the same run.

    python benchmarks/training.py [--models inception_resnet_v2] [--steps 6] [--runs 5]

Each measurement is the median over --runs timed steps after warm-up (compilation excluded).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
BATCH, SIZE = 8, 299


def baseline(runs: int) -> float:
    """``model.fit`` of ``keras.applications.InceptionResNetV2`` on an in-memory batch (no
    decoding: the baseline gets its input for free); median time of the steps after the first."""
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
    ds = tf.data.Dataset.from_tensors((x, y)).repeat()
    timer = StepTimer()
    model.fit(ds, steps_per_epoch=runs + 1, epochs=1, callbacks=[timer], verbose=0)
    return BATCH / statistics.median(timer.times[1:])  # the first step compiles


def ours(model: str, runs: int, data: str) -> float:
    import inception

    out = tempfile.mkdtemp()
    inception.train(model, data, out, image_size=SIZE, batch_size=BATCH, steps=runs + 2,
                    mixed_precision="float32", eval_split=None, verbose=0,
                    checkpoint_every=10_000)  # fmt: skip
    with open(os.path.join(out, "metrics.jsonl")) as f:
        rates = [json.loads(line)["images_per_sec"] for line in f][2:]  # after warm-up
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="+", default=["inception_resnet_v2"])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    from pathlib import Path

    from inception.training.demo import make_dataset

    data = make_dataset(Path(tempfile.mkdtemp())) / "train"
    base = baseline(args.runs)
    print(f"Training, batch {BATCH}, {SIZE}x{SIZE}, float32, {os.cpu_count()} CPU cores, "
          f"median of {args.runs} steps after warm-up\n")  # fmt: skip
    print("| model | images/s | vs baseline |\n|---|---:|---:|")
    print(f"| keras.applications.InceptionResNetV2 + model.fit (baseline) | {base:.2f} | 1.00x |")
    for model in args.models:
        rate = ours(model, args.runs, str(data))
        print(f"| inception train --model {model} | {rate:.2f} | {rate / base:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
