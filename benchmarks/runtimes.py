"""CPU throughput of the deployment runtimes beside ours: Inception-v4 and Inception-ResNet-v2 at
299x299, batch 1 and 16, random weights.

    python benchmarks/runtimes.py [--models inception_v4 inception_resnet_v2] [--batch-sizes 1 16]
        [--rounds 5] [--min-seconds 4] [--entries ...] [--work /tmp/runtimes-cache]
        [--markdown benchmarks/results/runtimes.md]

Entries: ours (TensorFlow float32 as built, and folded bfloat16: ``optimize_for_inference``),
ONNX Runtime float32/int8, OpenVINO float32/bfloat16/int8 (the same float32 file with the
``INFERENCE_PRECISION_HINT`` f32 or bf16; int8 by NNCF) and LiteRT with XNNPACK float32/int8.
The files are written by ``inception.export`` (int8: calibrated on 32 random images, which is
enough to measure speed, not accuracy). Each entry runs in a process of its own, started and
warmed up first; then each round asks every process in turn to run for ``--min-seconds``, so a
change in machine load hits all of them alike. Reported: median images/s over rounds and the
median of the per-round ratio to our float32, and the share of the float32 matmul ceiling:
images/s x 2 x GMACs per image over the best GFLOP/s of a 4096x4096 float32 NumPy matmul
measured in this process just before each model and batch (bfloat16 and int8 can exceed 100%:
their own ceilings are higher). ``--work FOLDER`` keeps the ``.keras`` file and the exports, and
a later run with the same folder reuses them (exports at 299 px take minutes each).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ENTRIES = ("tf-float32", "tf-bfloat16-folded", "onnxruntime-float32", "onnxruntime-int8",
           "openvino-float32", "openvino-bfloat16", "openvino-int8", "litert-float32",
           "litert-int8")  # fmt: skip
REFERENCE = "tf-float32"
GMACS = {"inception_v4": 12.25, "inception_resnet_v2": 13.16}  # per image at 299 px (README)


def matmul_ceiling(size: int = 4096, repeats: int = 5) -> float:
    """Best GFLOP/s of a ``size``-square float32 NumPy matmul (all cores, as BLAS sets them)."""
    import numpy as np

    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((size, size), dtype=np.float32) for _ in range(2))
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def prepare(model_name: str, work: Path, entries) -> dict:
    """The files each entry loads: a .keras model and its exports (written once)."""
    import numpy as np
    from PIL import Image

    import inception

    keras_path = work / f"{model_name}.keras"
    files = {"tf": keras_path}
    if not keras_path.exists():
        inception.save_model(inception.build(model_name, weights=None), keras_path)
    calibration = work / "calibration"
    if not calibration.exists():
        rng = np.random.default_rng(0)
        for i in range(32):
            (calibration / "x").mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(0, 256, (320, 320, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(calibration / "x" / f"{i}.png")
    names = work / "names.txt"
    names.write_text("".join(f"class_{i}\n" for i in range(1000)))
    for fmt in ("onnx", "openvino", "litert"):
        for precision in ("float32", "int8"):
            if not any(
                e.startswith({"litert": "litert", "onnx": "onnxruntime"}.get(fmt, fmt))
                and (precision == "int8") == e.endswith("int8")
                for e in entries
            ):
                continue
            name = f"{model_name}-{precision}"
            out = work / fmt
            suffix = {"onnx": ".onnx", "litert": ".tflite", "openvino": ".xml"}[fmt]
            if not (out / f"{name}{suffix}").exists():
                print(f"exporting {name} as {fmt}", file=sys.stderr, flush=True)
                extra = (
                    {"quantize": "int8", "calibration_data": calibration}
                    if precision == "int8"
                    else {}
                )
                inception.export(keras_path, out, format=fmt, name=name, class_names=names,
                                 **extra)  # fmt: skip
            files[f"{fmt}-{precision}"] = out / f"{name}{suffix}"
    return files


def load(entry: str, files: dict):
    """``run(batch) -> probabilities`` for one entry."""
    runtime, precision = entry.split("-", 1)
    if runtime == "tf":
        import tensorflow as tf

        import inception

        model = inception.load_model(files["tf"])
        if precision == "bfloat16-folded":
            model = inception.optimize_for_inference(model, "bfloat16")
        call = tf.function(lambda x: model(x / 127.5 - 1.0, training=False))
        return lambda x: call(tf.constant(x)).numpy()
    from inception.deploy import load_artifact, openvino_file

    fmt = {"onnxruntime": "onnx"}.get(runtime, runtime)
    if runtime == "openvino":
        stored = "int8" if precision == "int8" else "float32"
        hint = "bfloat16" if precision == "bfloat16" else "float32"
        return openvino_file.load(files[f"openvino-{stored}"], hint)
    return load_artifact(files[f"{fmt}-{precision}"])


def worker(entry: str, work: Path, model_name: str, batch: int, min_seconds: float) -> None:
    """Loads, warms up, says ``ready``; then one ``images/s`` line per line read from stdin."""
    import numpy as np

    files = {"tf": work / f"{model_name}.keras"}
    for fmt, suffix in (("onnx", ".onnx"), ("openvino", ".xml"), ("litert", ".tflite")):
        for precision in ("float32", "int8"):
            files[f"{fmt}-{precision}"] = work / fmt / f"{model_name}-{precision}{suffix}"
    run = load(entry, files)
    x = np.random.default_rng(0).uniform(0, 255, (batch, 299, 299, 3)).astype(np.float32)
    for _ in range(3):
        run(x)
    print("ready", flush=True)
    for _ in sys.stdin:
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < min_seconds:
            run(x)
            count += batch
        print(count / (time.perf_counter() - start), flush=True)


def measure(model_name, batch, entries, work, rounds, min_seconds) -> dict:
    """``{entry: [images/s per round]}``, rounds interleaved over one process per entry."""
    procs = {}
    for entry in entries:
        procs[entry] = subprocess.Popen(
            [sys.executable, __file__, "--worker", entry, "--work", str(work), "--models",
             model_name, "--batch-sizes", str(batch), "--min-seconds", str(min_seconds)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        line = "?"
        while line and line.strip() != "ready":  # one warm-up at a time; skip stray output
            line = procs[entry].stdout.readline()
        if not line:
            print(f"{entry} did not start; left out", file=sys.stderr, flush=True)
            procs.pop(entry).wait(timeout=60)
    rates = {e: [] for e in procs}
    try:
        for _ in range(rounds):
            for entry, proc in procs.items():
                proc.stdin.write("go\n")
                proc.stdin.flush()
                rates[entry].append(_number(proc.stdout))
    finally:
        for proc in procs.values():
            proc.stdin.close()
            proc.wait(timeout=60)
    return rates


def _number(stream) -> float:
    """The next line of ``stream`` that is a number (libraries may print to stdout)."""
    for line in stream:
        try:
            return float(line)
        except ValueError:
            continue
    raise RuntimeError("a worker ended before reporting")


def table(results, ceilings) -> str:
    lines = ["| model | batch | runtime | images/s (median) | ratio to TF float32 "
             "| share of f32 matmul ceiling |",
             "|---|---:|---|---:|---:|---:|"]  # fmt: skip
    for (model_name, batch), rates in results.items():
        reference = rates.get(REFERENCE)
        for entry, values in rates.items():
            ratio = "" if reference is None else (
                f"{statistics.median(v / r for v, r in zip(values, reference)):.2f}")  # fmt: skip
            median = statistics.median(values)
            gmacs = GMACS.get(model_name)
            ceiling = ceilings[model_name, batch]
            share = "" if gmacs is None else f"{100 * median * 2 * gmacs / ceiling:.0f}%"
            lines.append(f"| {model_name} | {batch} | {entry} | {median:.1f} | {ratio} "
                         f"| {share} |")  # fmt: skip
    lines.append("")
    lines.append("float32 matmul ceiling (4096x4096 NumPy, best of 5, GFLOP/s): " + ", ".join(
        f"{m} batch {b}: {c:.0f}" for (m, b), c in ceilings.items()))  # fmt: skip
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["inception_v4", "inception_resnet_v2"])
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 16])
    p.add_argument("--entries", nargs="+", default=list(ENTRIES), choices=ENTRIES)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--min-seconds", type=float, default=4.0)
    p.add_argument("--work", help="folder for the .keras file and the exports, reused when they "
                   "are already there (default: a new temporary one)")  # fmt: skip
    p.add_argument("--markdown", help="also write the table to this file")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args.worker, Path(args.work), args.models[0], args.batch_sizes[0], args.min_seconds)
        return 0
    work = Path(args.work or tempfile.mkdtemp(prefix="runtimes-"))
    results, ceilings = {}, {}
    for model_name in args.models:
        prepare(model_name, work, args.entries)
        for batch in args.batch_sizes:
            ceilings[model_name, batch] = matmul_ceiling()
            gflops = ceilings[model_name, batch]
            print(f"measuring {model_name} at batch {batch} (matmul ceiling {gflops:.0f} "
                  "GFLOP/s)", file=sys.stderr, flush=True)  # fmt: skip
            results[(model_name, batch)] = measure(model_name, batch, args.entries, work,
                                                   args.rounds, args.min_seconds)  # fmt: skip
    text = table(results, ceilings)
    print(text)
    if args.markdown:
        command = "python benchmarks/runtimes.py " + " ".join(sys.argv[1:])
        Path(args.markdown).write_text(f"`{command}`\n\n{text}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
