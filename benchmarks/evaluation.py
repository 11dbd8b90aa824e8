"""Multi-crop evaluation: per-crop throughput and peak memory, 1 crop against 144 crops.

Each measurement is one ``inception eval`` process (random weights: speed and memory do not
depend on them) on a generated image folder; its peak resident memory is the process' own
``ru_maxrss`` (reported in its ``--json`` result) and its rate is counted after its first
forward pass (which compiles), in crops. The 1-crop and 144-crop runs alternate, ``--repeats``
times; each figure is the median, the ratio the median of the per-round ratios. Crops per
second at 144 crops should stay at (or above) the 1-crop figure, since both run the same bounded
micro-batches, and peak memory should not grow with ``--batch-size``.

    python benchmarks/evaluation.py                                   # Inception-v4, 299 px
    python benchmarks/evaluation.py --batch-size 64                   # memory does not grow
    python benchmarks/evaluation.py --ensemble --images 1 --repeats 1 # the paper's 4 models
    python benchmarks/evaluation.py --model inception_resnet_v1 --size 75 --images 8  # quick
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

PAPER_ENSEMBLE = "inception_v4,inception_resnet_v2,inception_resnet_v2,inception_resnet_v2"


def write_images(root, count, size):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(count):
        folder = os.path.join(root, f"class{i % 2}")
        os.makedirs(folder, exist_ok=True)
        h, w = int(size * 1.2), int(size * 1.5)  # landscape, larger than the crops
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(
            os.path.join(folder, f"{i}.jpg"), quality=90
        )


def run_eval(model, data, crops, limit, size, batch_size, micro_batch, precision):
    """One ``inception eval`` process: (images/s in steady state, seconds, peak RSS in MB)."""
    out = os.path.join(tempfile.mkdtemp(), "eval.json")
    argv = [sys.executable, "-m", "inception", "eval", "--model", model, "--weights", "none",
            "--data", data, "--crops", str(crops), "--limit", str(limit),
            "--image-size", str(size), "--json", out, "--quiet",
            "--precision", precision]  # fmt: skip
    if batch_size:
        argv += ["--batch-size", str(batch_size)]
    if micro_batch:
        argv += ["--micro-batch", str(micro_batch)]
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode:
        sys.exit(f"inception eval failed:\n{proc.stderr[-3000:]}")
    with open(out) as f:  # max_rss_mb: the eval process' own peak resident memory
        result = json.load(f)
    return result["images_per_second"], wall, result["max_rss_mb"], result["micro_batch"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="inception_v4")
    p.add_argument("--ensemble", action="store_true", help=f"evaluate {PAPER_ENSEMBLE}")
    p.add_argument("--size", type=int, default=299)
    # each run's rate is counted after its first forward pass (which compiles): at least
    # 4 micro-batches of 16 crops measured in either case
    p.add_argument("--images", type=int, default=2, help="images in the 144-crop runs")
    p.add_argument("--one-crop-images", type=int, default=96, help="images in the 1-crop runs")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--micro-batch", type=int, default=None)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--precision", default="float32", help="float32, bfloat16, float16 or auto")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)
    model = PAPER_ENSEMBLE if args.ensemble else args.model
    data = tempfile.mkdtemp(prefix="eval-bench-")
    write_images(data, max(args.images, args.one_crop_images), args.size)

    rows = {1: [], 144: []}
    for _ in range(args.repeats):
        for crops, limit in ((1, args.one_crop_images), (144, args.images)):
            rate, wall, rss, micro = run_eval(
                model,
                data,
                crops,
                limit,
                args.size,
                args.batch_size,
                args.micro_batch,
                args.precision,
            )
            rows[crops].append((rate * crops, rate, wall, rss, micro))
            print(f"  {crops:>3} crops: {rate * crops:7.1f} crops/s, peak {rss:,.0f} MB",
                  file=sys.stderr)  # fmt: skip
    summary = {}
    for crops, values in rows.items():
        summary[crops] = {
            "crops_per_second": statistics.median(v[0] for v in values),
            "images_per_second": statistics.median(v[1] for v in values),
            "seconds": statistics.median(v[2] for v in values),
            "peak_rss_mb": max(v[3] for v in values),
            "micro_batch": values[0][4],
        }
    # each round's 144-crop rate over the 1-crop rate measured next to it, then the median
    ratio = statistics.median(b[0] / a[0] for a, b in zip(rows[1], rows[144]))
    batch = args.batch_size or "default"
    print(f"\n{model} at {args.size} px, {args.precision}, batch size {batch}, "
          f"median of {args.repeats}\n")  # fmt: skip
    print("| crops | crops/s | images/s | peak RSS | micro-batch |")
    print("|---:|---:|---:|---:|---:|")
    for crops, s in summary.items():
        print(f"| {crops} | {s['crops_per_second']:.1f} | {s['images_per_second']:.3f} | "
              f"{s['peak_rss_mb'] / 1024:.2f} GB | {s['micro_batch']} |")  # fmt: skip
    print(f"\nper-crop throughput, 144 crops vs 1 crop (median of per-round ratios): {ratio:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": model, "size": args.size, "batch_size": args.batch_size,
                       "precision": args.precision,
                       "summary": summary, "ratio_144_vs_1": ratio}, f, indent=2)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
