"""Evaluation on 1 against 2 local devices: ``inception eval --devices 1`` and ``--devices 2``.

Each measurement is one ``inception eval`` process (random weights: speed does not depend on
them) on a generated image folder; its rate is counted after its first forward pass (which
compiles), in images per second. Without 2 GPUs the 2 devices are logical CPU devices, made
before the framework starts: TensorFlow's ``set_logical_device_configuration`` (in the process'
first lines) under ``MirroredStrategy``, JAX's ``--xla_force_host_platform_device_count=2``
under ``DataParallel``. Logical CPU devices share the same cores, so there they measure the cost
of the distribution, not a speed-up. Both run the same micro-batches (``--micro-batch``, split
across the devices; ``--images`` a multiple of it). The 1- and 2-device runs alternate,
``--rounds`` times; each figure is the median, the ratio the median of the per-round ratios.

    python benchmarks/devices.py                                       # TensorFlow, v4 at 150 px
    python benchmarks/devices.py --backend jax --model inception_resnet_v1 --size 75
    python benchmarks/devices.py --gpus                                # 2 real GPUs, if present
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

from evaluation import write_images  # benchmarks/evaluation.py: the same generated folder

# The first lines of the process: 2 logical CPU devices before TensorFlow starts, then the CLI.
LOGICAL_TF = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from inception.cli import main
sys.exit(main(sys.argv[1:]))
"""
PLAIN = "import sys\nfrom inception.cli import main\nsys.exit(main(sys.argv[1:]))\n"


def command(backend: str, gpus: bool) -> tuple[list[str], dict]:
    """The interpreter command and environment of one eval process with 2 devices present."""
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    if gpus:
        return [sys.executable, "-c", PLAIN], env
    env["CUDA_VISIBLE_DEVICES"] = ""
    if backend == "jax":
        env.update(JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=2")
        return [sys.executable, "-c", PLAIN], env
    return [sys.executable, "-c", LOGICAL_TF], env


def run_eval(args, data, devices: int) -> dict:
    """One ``inception eval`` process on ``devices`` devices: its JSON result."""
    out = os.path.join(tempfile.mkdtemp(), "eval.json")
    run, env = command(args.backend, args.gpus)
    argv = ["eval", "--model", args.model, "--weights", "none", "--data", data,
            "--crops", str(args.crops), "--image-size", str(args.size),
            "--devices", str(devices), "--json-file", out, "--quiet"]  # fmt: skip
    argv += ["--micro-batch", str(args.micro_batch)]
    proc = subprocess.run([*run, *argv], capture_output=True, text=True, env=env)
    if proc.returncode:
        sys.exit(f"inception eval failed:\n{proc.stderr[-3000:]}")
    with open(out) as f:
        return json.load(f)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", default="tensorflow", choices=("tensorflow", "jax"))
    p.add_argument("--model", default="inception_v4")
    p.add_argument("--size", type=int, default=150)
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--crops", type=int, default=1)
    # the same micro-batch for both (split across 2 devices), and a whole number of them: the
    # rate is counted after the first pass (which compiles), and a short last pass compiles too
    p.add_argument("--micro-batch", type=int, default=16, help="crops per forward pass")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--gpus", action="store_true", help="the machine's own devices (2 GPUs)")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)
    data = tempfile.mkdtemp(prefix="devices-bench-")
    write_images(data, args.images, args.size)

    rows = {1: [], 2: []}
    for _ in range(args.rounds):
        for devices in rows:
            result = run_eval(args, data, devices)
            rows[devices].append(result)
            print(f"  {devices} device(s), {result['strategy']}: "
                  f"{result['images_per_second']:.2f} images/s", file=sys.stderr)  # fmt: skip
    rates = {d: [r["images_per_second"] for r in rs] for d, rs in rows.items()}
    ratio = statistics.median(b / a for a, b in zip(rates[1], rates[2]))
    print(f"\n{args.model} at {args.size} px, {args.crops} crop(s), {args.images} images, "
          f"{args.backend}, median of {args.rounds}\n")  # fmt: skip
    print("| devices | strategy | images/s | per round | micro-batch |")
    print("|---:|---|---:|---|---:|")
    for devices, results in rows.items():
        each = ", ".join(f"{r:.2f}" for r in rates[devices])
        print(f"| {devices} | {results[0]['strategy']} | {statistics.median(rates[devices]):.2f} "
              f"| {each} | {results[0]['micro_batch']} |")  # fmt: skip
    print(f"\n2 devices vs 1 (median of per-round ratios): {ratio:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({**vars(args), "rates": rates, "ratio_2_vs_1": ratio}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
