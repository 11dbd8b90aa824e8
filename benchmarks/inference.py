"""CPU inference throughput at 299x299: float32, folded, bfloat16 against keras.applications, timm
and the machine's matmul ceiling.

    python benchmarks/inference.py [--rounds 5] [--batch-sizes 16 1] [--no-timm]
        [--json benchmarks/results/inference.json] [--markdown benchmarks/results/inference.md]

For each of our three models (default variants, random weights): float32 as built, folded
float32, bfloat16 and folded bfloat16 (``inception.optimize_for_inference``); the baseline
``keras.applications.InceptionResNetV2`` (float32); ``tf.matmul`` of two 4096x4096 matrices in
float32 and bfloat16 as the machine's ceiling; and timm's ``inception_v4`` /
``inception_resnet_v2`` in float32 and bfloat16, run by ``benchmarks/_timm_inference.py`` in a
second process (TensorFlow and PyTorch in one process crash here) that measures only between the
TensorFlow rounds, with ``OMP_WAIT_POLICY=PASSIVE`` unless set (spinning OpenMP threads make
PyTorch several times slower on a machine shared with other jobs). Each TensorFlow model runs
inside one ``tf.function`` (graph mode, no XLA).

Everything is built and warmed up first; then each of ``--rounds`` rounds times every entry once
(at least ``--min-seconds`` each), so a change in machine load hits all of them alike. Reported:
median images/s; the median over rounds of the ratio to our float32 build of the same model and
to keras.applications' IR-v2 measured in the same round; GFLOP/s from the models' MAC counts
(``inception.models.summary.count_macs``, FLOPs = 2 x MACs, the same count for every precision
and for timm's identical architectures) and its percent of the matmul ceiling of the same
precision measured in the same round.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import inception  # noqa: E402
from inception.models.summary import count_macs  # noqa: E402

BASELINE = "keras.applications.InceptionResNetV2|float32"
CEILING = {"float32": "tf.matmul 4096^3|float32", "bfloat16": "tf.matmul 4096^3|bfloat16"}
FORMS = (  # label suffix, precision, fold
    ("float32", "float32", False),
    ("float32 folded", "float32", True),
    ("bfloat16", "bfloat16", False),
    ("bfloat16 folded", "bfloat16", True),
)
MATMUL = 4096
HELPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_timm_inference.py")


def build_entries(size):
    """``{label: (callable on a batch, FLOPs per image or None, precision, float32 label)}``."""
    entries, macs = {}, {}
    for precision, label in CEILING.items():
        a = tf.cast(tf.random.normal((MATMUL, MATMUL)), precision)
        b = tf.cast(tf.random.normal((MATMUL, MATMUL)), precision)
        fn = tf.function(lambda a=a, b=b: tf.matmul(a, b))
        entries[label] = (lambda x, fn=fn: fn(), None, precision, None)
    keras_model = keras.applications.InceptionResNetV2(weights=None, input_shape=(size, size, 3))
    entries[BASELINE] = (_graph(keras_model), 2 * count_macs(keras_model), "float32", None)
    for name in inception.list_models():
        model = inception.build(name, weights=None, input_shape=(size, size, 3))
        macs[name] = count_macs(model)
        for suffix, precision, fold in FORMS:
            fast = model
            if (precision, fold) != ("float32", False):
                fast = inception.optimize_for_inference(model, precision, fold_batchnorm=fold)
            entries[f"inception.{name}|{suffix}"] = (
                _graph(fast),
                2 * macs[name],
                precision,
                f"inception.{name}|float32",
            )
    return entries, macs


def _graph(model):
    return tf.function(lambda x: model(x, training=False))


def timed(fn, x, batch, min_seconds):
    """``(images/s, images per CPU-second of this process)`` (calls without a batch) over at least
    ``min_seconds``."""
    calls, start, cpu = 0, time.perf_counter(), time.process_time()
    while True:
        np.asarray(fn(x))
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return calls * batch / elapsed, calls * batch / (time.process_time() - cpu)


class Timm:
    """The timm process: started first, asked for one round at a time."""

    def __init__(self, batch_sizes, min_seconds, size):
        command = [sys.executable, HELPER, "--min-seconds", str(min_seconds), "--size", str(size),
                   "--batch-sizes", *map(str, batch_sizes)]  # fmt: skip
        # OpenMP threads that spin while waiting make PyTorch many times slower on a machine
        # shared with other jobs; passive waiting costs little on an idle one.
        env = {"OMP_WAIT_POLICY": "PASSIVE", **os.environ}
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, env=env)  # fmt: skip
        self.labels, self.versions = None, {}

    def wait_ready(self):
        ready = self._read()
        self.labels, self.versions = ready["ready"], ready["versions"]

    def round(self, batch):
        self.proc.stdin.write(f"time {batch}\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=60)

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(
                f"the timm process ended (exit code {self.proc.poll()}); run "
                f"{HELPER} alone to see why, or pass --no-timm."
            )
        return json.loads(line)


def measure(entries, timm, batch, rounds, min_seconds, size):
    """``{"wall": {label: [images/s per round]}, "cpu": {label: [images per CPU-second]}}``
    (calls for the matmuls)."""
    x = tf.constant(np.random.default_rng(0).uniform(-1, 1, (batch, size, size, 3)), tf.float32)
    for fn, *_ in entries.values():
        np.asarray(fn(x))  # trace + warm-up
        np.asarray(fn(x))
    rates = {"wall": {label: [] for label in entries}, "cpu": {label: [] for label in entries}}
    for r in range(rounds):
        for label, (fn, flops, *_) in entries.items():
            wall, cpu = timed(fn, x, batch if flops else 1, min_seconds)
            rates["wall"][label].append(wall)
            rates["cpu"][label].append(cpu)
        if timm is not None:
            for label, (wall, cpu) in timm.round(batch).items():
                rates["wall"].setdefault(label, []).append(wall)
                rates["cpu"].setdefault(label, []).append(cpu)
        done = ", ".join(f"{k.split('|')[0].split('.')[-1]} {k.split('|')[1]} {v[-1]:.2f}"
                         for k, v in rates["wall"].items())  # fmt: skip
        print(f"batch {batch} round {r + 1}/{rounds} (images/s): {done}", flush=True)
    return rates


def summarise(rates, entries, macs):
    """Per entry and clock (``wall``, ``cpu``): median images/s (per CPU-second for ``cpu``),
    median ratios to our float32 build and to keras' IR-v2, GFLOP/s and percent of the
    same-precision matmul ceiling (medians over rounds of values measured in the same round)."""
    return {clock: _summarise(rates[clock], entries, macs) for clock in ("wall", "cpu")}


def _summarise(rates, entries, macs):
    ceiling = {p: [2 * MATMUL**3 * c / 1e9 for c in rates[label]] for p, label in CEILING.items()}
    out = {}
    for label, values in rates.items():
        name, form = label.split("|")
        precision = "bfloat16" if form.startswith("bfloat16") else "float32"
        if label in CEILING.values():
            out[label] = {"gflops": statistics.median(ceiling[precision]), "rounds": values}
            continue
        if label in entries:
            flops, own = entries[label][1], entries[label][3]
        else:  # timm: the same architecture as our default variant
            flops, own = 2 * macs[name.split(".")[-1]], None
        gflops = [v * flops / 1e9 for v in values]
        row = {
            "images_per_s": statistics.median(values),
            "vs_keras": _median_ratio(values, rates[BASELINE]),
            "gflops": statistics.median(gflops),
            "percent_of_ceiling": 100 * _median_ratio(gflops, ceiling[precision]),
            "rounds": values,
        }
        if own is not None:
            row["vs_float32"] = _median_ratio(values, rates[own])
        out[label] = row
    return out


def _median_ratio(a, b):
    return statistics.median(x / y for x, y in zip(a, b))


def markdown(summary, batch):
    """One table: wall-clock columns, then the same ratios by CPU time (steadier on a shared
    machine: another job's load slows the wall clock of whatever is being timed, not the CPU time
    a model needs)."""
    wall, cpu = summary["wall"], summary["cpu"]
    lines = [
        f"Batch {batch}:",
        "",
        "| model | precision | img/s | vs our float32 | vs keras IR-v2 | GFLOP/s | % of matmul "
        "| CPU time: vs our float32 | vs keras IR-v2 | % of matmul |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, row in wall.items():
        name, form = label.split("|")
        if "images_per_s" not in row:
            lines.append(f"| {name} (ceiling) | {form} | | | | {row['gflops']:.0f} | 100% "
                         f"| | | 100% |")  # fmt: skip
            continue
        cells = [f"{row['images_per_s']:.2f}"]
        for r in (row, cpu[label]):
            cells.append(f"{r['vs_float32']:.2f}x" if "vs_float32" in r else "")
            cells.append(f"{r['vs_keras']:.2f}x")
            if r is row:
                cells.append(f"{r['gflops']:.0f}")
            cells.append(f"{r['percent_of_ceiling']:.0f}%")
        lines.append(f"| {name} | {form} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine(timm_versions):
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor())  # fmt: skip
    versions = {"tensorflow": tf.__version__, "keras": keras.__version__, **timm_versions}
    return {"cpu": cpu, "cores": os.cpu_count(), **versions, "load_average": os.getloadavg()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 1])
    parser.add_argument("--min-seconds", type=float, default=1.0, help="per entry and round")
    parser.add_argument("--size", type=int, default=299)
    parser.add_argument("--no-timm", action="store_true", help="skip the PyTorch baseline")
    parser.add_argument("--json", help="also write the results as JSON here")
    parser.add_argument("--markdown", help="also write the tables as markdown here")
    args = parser.parse_args()
    command = "python benchmarks/inference.py " + shlex.join(sys.argv[1:])

    have_timm = all(importlib.util.find_spec(m) for m in ("torch", "timm"))
    if not (args.no_timm or have_timm):
        print("timm baseline skipped: torch and timm are missing (pip install -e '.[reference]')")
    timm = (
        Timm(args.batch_sizes, args.min_seconds, args.size)
        if have_timm and not args.no_timm
        else None
    )
    started = time.time()
    try:
        entries, macs = build_entries(args.size)
        if timm is not None:
            timm.wait_ready()
        results, tables = {}, []
        for batch in args.batch_sizes:
            rates = measure(entries, timm, batch, args.rounds, args.min_seconds, args.size)
            results[batch] = summarise(rates, entries, macs)
            tables.append(markdown(results[batch], batch))
    finally:
        if timm is not None:
            timm.close()
    info = machine(timm.versions if timm else {})
    versions = f"TF {info['tensorflow']}, Keras {info['keras']}"
    if timm is not None:
        versions += f", torch {info['torch']}, timm {info['timm']}"
    note = (
        f"Median of {args.rounds} interleaved rounds on {info['cores']} CPU cores ({info['cpu']}); "
        f"{versions}; load average {info['load_average'][0]:.1f} at the end; "
        f"{(time.time() - started) / 60:.0f} minutes."
    )
    text = f"`{command}`\n\n" + "\n\n".join(tables) + f"\n\n{note}\n"
    print("\n" + text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"command": command, "rounds": args.rounds, "machine": info,
                       "results": results}, f, indent=1)  # fmt: skip


if __name__ == "__main__":
    main()
