"""Batch prediction on Apache Beam against ``inception predict``: images per second on one folder.

Three commands score the same generated folder, each in its own process, in interleaved rounds
(``--repeats``): ``inception predict`` (one process, one loop), and ``inception batch-predict``
on Beam's local runner with one worker (in the command's process) and with two worker processes
(``multi_processing``). Every figure is end to end, the wall time of the whole process as a user
waits for it (start-up, TensorFlow's import and the model's build included); for batch-predict
the pipeline's own time (its summary line: listing, the workers' start-up and model load,
scoring, writing) is shown too. With two folder sizes the rate after start-up is the extra
images over the extra seconds. Each figure is the median over the rounds. Random weights (speed
does not depend on them) and the same micro-batch for all.

    python benchmarks/batch_predict.py                         # Inception-ResNet-v1, 75 px
    python benchmarks/batch_predict.py --images 1024,4096 --repeats 3 --size 149
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

SUMMARY = re.compile(r"this run: \d+ shards, (\d+) images in ([\d.]+) s")


def write_images(root: str, count: int, size: int) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(count):
        folder = os.path.join(root, f"part{i % 4}")
        os.makedirs(folder, exist_ok=True)
        h, w = int(size * 1.2), int(size * 1.5)
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(
            os.path.join(folder, f"{i}.jpg"), quality=90
        )


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def model_flags(args) -> list[str]:
    return ["--model", args.model, "--weights", "none", "--image-size", str(args.size),
            "--micro-batch", str(args.micro_batch)]  # fmt: skip


def timed(argv: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode:
        sys.exit(f"{' '.join(argv[2:5])} failed:\n{proc.stderr[-3000:]}")
    return wall, proc.stdout


def run_predict(args, folder: str) -> dict:
    argv = [sys.executable, "-m", "inception", "predict", folder, *model_flags(args), "--json"]
    wall, _ = timed(argv)
    return {"wall": wall, "pipeline": None}


def run_batch(args, folder: str, images: int, workers: int) -> dict:
    out = tempfile.mkdtemp(prefix="batch-predict-out-")
    shutil.rmtree(out)
    mode = "multi_processing" if workers > 1 else "in_memory"
    argv = [sys.executable, "-m", "inception", "batch-predict", folder, *model_flags(args),
            "--out", out, "--num-shards", str(args.shards), "--batch-size",
            str(args.micro_batch), "--direct-num-workers", str(workers),
            "--direct-running-mode", mode]  # fmt: skip
    wall, stdout = timed(argv)
    found = SUMMARY.search(stdout)
    if not found or int(found.group(1)) != images:
        sys.exit(f"batch-predict did not score {images} images:\n{stdout}")
    shutil.rmtree(out)
    return {"wall": wall, "pipeline": float(found.group(2))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="inception_resnet_v1")
    p.add_argument("--size", type=int, default=75)
    p.add_argument("--images", default="256,1024", help="one or two folder sizes (N,N)")
    p.add_argument("--shards", type=int, default=8)
    p.add_argument("--micro-batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args(argv)
    sizes = [int(n) for n in args.images.split(",")]

    folders = {}
    for n in sizes:
        folders[n] = tempfile.mkdtemp(prefix=f"batch-predict-{n}-")
        write_images(folders[n], n, args.size)
    commands = {
        "inception predict": lambda n: run_predict(args, folders[n]),
        "batch-predict, DirectRunner, 1 worker": lambda n: run_batch(args, folders[n], n, 1),
        "batch-predict, DirectRunner, 2 worker processes": (
            lambda n: run_batch(args, folders[n], n, 2)
        ),
    }
    walls = {(name, n): [] for name in commands for n in sizes}
    inside = {(name, n): [] for name in commands for n in sizes}
    for r in range(args.repeats):
        for n in sizes:
            for name, run in commands.items():
                result = run(n)
                walls[name, n].append(result["wall"])
                if result["pipeline"] is not None:
                    inside[name, n].append(result["pipeline"])
                print(f"round {r + 1}, {n} images: {name}: {n / result['wall']:.1f} images/s "
                      f"({result['wall']:.1f} s)", file=sys.stderr, flush=True)  # fmt: skip
    for folder in folders.values():
        shutil.rmtree(folder)

    print(f"{args.model} at {args.size} px ({int(args.size * 1.2)}x{int(args.size * 1.5)} "
          f"JPEGs), micro-batch {args.micro_batch}, {args.shards} shards, random weights; "
          f"medians of {args.repeats} interleaved rounds; {os.cpu_count()} CPUs, "
          f"{cpu_name()}\n")  # fmt: skip
    heads = [f"{n} images: images/s (s)" for n in sizes]
    marginal = len(sizes) == 2
    if marginal:
        heads.append(f"after start-up: images/s ({sizes[1]} - {sizes[0]} images)")
    print("| command | " + " | ".join(heads) + " | batch-predict's pipeline s |")
    print("|---|" + "---:|" * len(heads) + "---:|")
    for name in commands:
        median = {n: statistics.median(walls[name, n]) for n in sizes}
        cells = [f"{n / median[n]:.1f} ({median[n]:.1f})" for n in sizes]
        if marginal:
            a, b = sizes
            extra = median[b] - median[a]
            cells.append(f"{(b - a) / extra:.1f}" if extra > 0 else "- (noise)")
        pipeline = "/".join(
            f"{statistics.median(inside[name, n]):.1f}" for n in sizes if inside[name, n]
        )
        print(f"| {name} | " + " | ".join(cells) + f" | {pipeline or '-'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
