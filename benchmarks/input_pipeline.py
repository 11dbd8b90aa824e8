"""Input pipeline throughput: decode + Inception train augmentation to 299x299, images/s per CPU
core, against a naive ``keras.utils.image_dataset_from_directory`` pipeline, on generated JPEGs.

    python benchmarks/input_pipeline.py [--images 256] [--runs 5]

Prints a markdown table (median of --runs passes; the ratio is of the per-CPU-second rates)
and compares the per-core rate with what one H100 training Inception-v4 in mixed precision
consumes (``H100_INCEPTION_V4``, an estimate: Inception-v4 costs ~12.3 GFLOPs per image forward,
~3x ResNet-50's 4.1; an H100 trains ResNet-50 in mixed precision at roughly 6,000 images/s with a
tuned pipeline, so about 2,000 images/s for Inception-v4), i.e. ``H100_INCEPTION_V4 / 16``
images/s per core from 16 cores.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
H100_INCEPTION_V4 = 2000.0  # images/s, estimate (see the docstring)
H100_CORES = 16


def make_jpegs(root: Path, count: int, classes: int = 4) -> Path:
    """ImageNet-like JPEGs: 500x375, quality 90, textured noise."""
    rng = np.random.default_rng(0)
    for i in range(count):
        folder = root / f"class{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        base = rng.uniform(0, 255, (47, 63, 3)).astype(np.uint8)
        image = Image.fromarray(base).resize((500, 375), Image.BILINEAR)
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=90)
        (folder / f"{i}.jpg").write_bytes(buffer.getvalue())
    return root


def timed(ds, count) -> tuple[float, float]:
    """(images per wall second, images per CPU second of this process). The second is the
    per-core rate independent of other load on the machine (tf.data runs on all cores)."""
    start, cpu, seen = time.perf_counter(), time.process_time(), 0
    for images, _ in ds:
        seen += int(images.shape[0])
    assert seen >= count * 0.9, seen
    return seen / (time.perf_counter() - start), seen / (time.process_time() - cpu)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    import keras
    import tensorflow as tf

    from inception.data import load_source, pipeline

    cores = os.cpu_count()
    root = make_jpegs(Path(tempfile.mkdtemp()), args.images)
    source = load_source(root, "train", verify=False)
    batches = args.images // 32

    def ours():
        ds = pipeline.train_dataset(source, 299, 32, seed=0, shuffle_buffer=args.images)
        return ds.take(batches)

    def naive():
        ds = keras.utils.image_dataset_from_directory(
            root, image_size=(299, 299), batch_size=32, shuffle=True, verbose=False
        )
        flip = keras.layers.RandomFlip("horizontal")
        return ds.map(lambda x, y: (flip(x) / 127.5 - 1.0, y)).take(batches)

    print(f"Input pipeline, {args.images} generated 500x375 JPEGs -> 299x299, batch 32, "
          f"{cores} CPU cores, median of {args.runs} passes\n")  # fmt: skip
    print("| pipeline | images/s (wall) | images per CPU-second (= per busy core) | vs baseline |")
    print("|---|---:|---:|---:|")
    results = {}
    names = {
        "naive": "keras.utils.image_dataset_from_directory + flip (baseline)",
        "inception": "inception.data.pipeline.train_dataset (decode-and-crop, slim augmentation)",
    }
    for name, make in (("naive", naive), ("inception", ours)):
        timed(make(), args.images)  # warm-up
        runs = [timed(make(), args.images) for _ in range(args.runs)]
        rate = statistics.median(r[0] for r in runs)
        per_core = results[name] = statistics.median(r[1] for r in runs)
        ratio = per_core / results["naive"]
        print(f"| {names[name]} | {rate:.1f} | {per_core:.1f} | {ratio:.2f}x |", flush=True)
    need = H100_INCEPTION_V4 / H100_CORES
    have = results["inception"]
    print(f"\nOne H100 training Inception-v4 in mixed precision: ~{H100_INCEPTION_V4:.0f} "
          f"images/s (estimate), i.e. {need:.0f} images/s per core from {H100_CORES} cores; "
          f"measured {have:.1f} per core = {have / need:.2f}x of that "
          f"({have * H100_CORES:.0f} images/s from {H100_CORES} such cores).")  # fmt: skip
    del tf


if __name__ == "__main__":
    main()
