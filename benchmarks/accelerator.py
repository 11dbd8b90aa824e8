"""Accelerator throughput on JAX + Keras (no TensorFlow): inference and training images/s of each
model in bfloat16, as a share of the device's measured bfloat16 matrix-product rate, against timm
in PyTorch (eager, optionally torch.compile) when it is installed.

    KERAS_BACKEND=jax python benchmarks/accelerator.py [--models inception_v4 ...] [--json FILE]
    KERAS_BACKEND=jax python benchmarks/accelerator.py --smoke     # any machine: 75 px, batch 2

* Inference: ``jax.jit`` of ``model.stateless_call`` (what ``predict`` runs), softmax top, batch
  256, on a device-resident batch.
* Training: the project's training path, ``model.compile(**recipe.compile_arguments(...))`` +
  ``model.fit`` (PaperRMSProp with clipping and the weights' moving average, label smoothing,
  auxiliary head, L2), batch 128, fed one device-resident batch (no input pipeline).
* Ceiling: a jitted chain of 8192x8192 bfloat16 matrix products; the share is
  ``images/s x XLA's forward FLOPs per image (x3 for training) / ceiling``.
* Baseline: timm's ``inception_v4`` / ``inception_resnet_v2`` (no Inception-ResNet-v1 in timm),
  bf16 autocast, channels-last, measured first in a child process (before JAX takes the memory).

Each figure is the median of ``--repeats`` timed loops of ``--steps`` steps after a warm-up
(compilation excluded). A JSON line is printed as soon as each figure is measured, so a run cut
short keeps what it measured; ``--deadline`` skips what would start after that many seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

TIMM_NAMES = {"inception_v4": "inception_v4", "inception_resnet_v2": "inception_resnet_v2"}
ALL_MODELS = ("inception_v4", "inception_resnet_v1", "inception_resnet_v2")
START = time.perf_counter()


def emit(record: dict) -> dict:
    print(json.dumps(record), flush=True)
    return record


def timed(run, steps: int, repeats: int, batch: int) -> float:
    """Median images/s over ``repeats`` calls of ``run(steps)`` (each blocks until done)."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(steps)
        rates.append(steps * batch / (time.perf_counter() - start))
    return statistics.median(rates)


# ------------------------------------------------------------------------------ JAX + Keras


def matmul_ceiling(n: int, chain: int = 16) -> float:
    """Measured bfloat16 matrix-product rate in FLOP/s: ``chain`` products of ``n x n`` in one
    jitted loop, best of 3."""
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.key(0), (n, n), jnp.bfloat16)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.bfloat16) / n

    @jax.jit
    def chain_of_products(a, b):
        return jax.lax.fori_loop(0, chain, lambda _, x: x @ b, a)

    chain_of_products(a, b).block_until_ready()
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        chain_of_products(a, b).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 2.0 * n**3 * chain / best


def compiled_with_flops(fn, *args):
    """``fn`` compiled for ``args``, and XLA's FLOP count of it (``None`` if not reported). The
    count is taken from the lowered program, before the backend's own passes: on a GPU the
    compiled program's convolutions are cuDNN calls that XLA's cost analysis does not count (it
    reported 1% of Inception-v4's FLOPs there)."""
    lowered = fn.lower(*args)
    compiled = lowered.compile()
    try:
        cost = lowered.cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        flops = float(cost.get("flops", 0.0)) or None
    except Exception:  # noqa: BLE001 (not every backend reports costs)
        flops = None
    return compiled, flops


def inference(name: str, size: int, batch: int, steps: int, repeats: int) -> dict:
    import jax
    import keras

    import inception

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model = inception.build(name, input_shape=(size, size, 3))
    x = jax.random.uniform(jax.random.key(0), (batch, size, size, 3), minval=-1.0, maxval=1.0)
    weights = [v.value for v in model.trainable_variables]
    others = [v.value for v in model.non_trainable_variables]
    forward = jax.jit(lambda w, o, x: model.stateless_call(w, o, x, training=False)[0])
    forward, flops = compiled_with_flops(forward, weights, others, x)
    forward(weights, others, x).block_until_ready()

    def run(n):
        for _ in range(n):
            out = forward(weights, others, x)
        out.block_until_ready()

    rate = timed(run, steps, repeats, batch)
    return {"images_per_sec": rate, "flops_per_image": flops / batch if flops else None}


def training(name: str, size: int, batch: int, steps: int, repeats: int) -> dict:
    import jax
    import keras

    import inception
    from inception.training import load_recipe

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    recipe = load_recipe("paper")
    model = inception.build(
        name, input_shape=(size, size, 3), classes=1000, classifier_activation=None,
        aux_logits=size >= 107, dropout_rate=recipe.dropout_rate, conv_bn=recipe.conv_bn(),
    )  # fmt: skip
    model.compile(**recipe.compile_arguments(model, batch, steps_per_epoch=10_000))
    x = jax.random.uniform(jax.random.key(0), (batch, size, size, 3), minval=-1.0, maxval=1.0)
    y = jax.random.randint(jax.random.key(1), (batch,), 0, 1000)
    targets = (y, y) if len(model.outputs) == 2 else y

    def batches():  # one device-resident batch, over and over: no input pipeline, no copies
        while True:
            yield x, targets

    def run(n):
        model.fit(batches(), steps_per_epoch=n, epochs=1, shuffle=False, verbose=0)

    run(min(2, steps))  # compiles
    return {"images_per_sec": timed(run, steps, repeats, batch)}


def ours(args, ceiling: float) -> list[dict]:
    records = []
    for name in args.models:
        flops = None
        for mode, fn, batch in (("inference", inference, args.infer_batch),
                                ("training", training, args.train_batch)):  # fmt: skip
            if time.perf_counter() - START > args.deadline:
                records.append(emit({"framework": "inception", "model": name, "mode": mode,
                                     "skipped": "deadline"}))  # fmt: skip
                continue
            try:
                result = fn(name, args.image_size, batch, args.steps, args.repeats)
            except Exception as exc:  # noqa: BLE001 (one failure must not lose the others)
                result = {"error": f"{type(exc).__name__}: {exc}"[:300]}
            record = {"framework": "inception", "model": name, "mode": mode, "batch": batch,
                      **result}  # fmt: skip
            if mode == "inference":
                flops = result.get("flops_per_image")
            if result.get("images_per_sec") and flops and ceiling:
                factor = 3.0 if mode == "training" else 1.0
                record["share_of_ceiling"] = result["images_per_sec"] * flops * factor / ceiling
            records.append(emit(record))
    return records


# ------------------------------------------------------------------------- timm in PyTorch


def timm_child(args) -> None:
    """Runs in a child process: timm's models in PyTorch, one JSON line per figure."""
    import timm
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    size = args.image_size
    for name in [m for m in args.models if m in TIMM_NAMES]:
        model = timm.create_model(TIMM_NAMES[name], pretrained=False, num_classes=1000)
        model = model.to(device).to(memory_format=torch.channels_last)
        modes = [("inference", model, args.infer_batch), ("training", model, args.train_batch)]
        if args.torch_compile:
            modes.append(("inference_compiled", torch.compile(model), args.infer_batch))
        for mode, net, batch in modes:
            try:
                rate = _timm_rate(torch, net, mode, batch, size, device, args)
                emit({"framework": "timm", "model": name, "mode": mode, "batch": batch,
                      "images_per_sec": rate})  # fmt: skip
            except Exception as exc:  # noqa: BLE001
                emit({"framework": "timm", "model": name, "mode": mode,
                      "error": f"{type(exc).__name__}: {exc}"[:300]})  # fmt: skip


def _timm_rate(torch, net, mode, batch, size, device, args) -> float:
    x = torch.randn(batch, 3, size, size, device=device).to(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (batch,), device=device)
    autocast = torch.autocast(device, dtype=torch.bfloat16)
    if mode == "training":
        net.train()
        optimizer = torch.optim.RMSprop(net.parameters(), lr=0.01, alpha=0.9, eps=1.0,
                                        momentum=0.9)  # fmt: skip
        loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)

        def step():
            with autocast:
                loss = loss_fn(net(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    else:
        net.eval()

        def step():
            with torch.inference_mode(), autocast:
                net(x)

    def run(n):
        for _ in range(n):
            step()
        if device == "cuda":
            torch.cuda.synchronize()

    run(2)
    return timed(run, args.steps, args.repeats, batch)


def baseline(args) -> list[dict]:
    """timm's figures from a child process (no JAX there), or none without torch and timm."""
    import importlib.util

    if args.baseline == "none" or not all(importlib.util.find_spec(m) for m in ("torch", "timm")):
        return []
    child = [sys.executable, os.path.abspath(__file__), "--child-timm", *sys.argv[1:]]
    try:
        proc = subprocess.run(child, capture_output=True, text=True, timeout=args.baseline_seconds)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        proc = subprocess.CompletedProcess(child, 1, out, f"timm: over {args.baseline_seconds} s")
    records = []
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
            print(line, flush=True)
    if proc.returncode:
        records.append(emit({"framework": "timm", "error": proc.stderr.strip()[-300:]}))
    return records


# ----------------------------------------------------------------------------------- report


def table(records: list[dict], ceiling: float) -> str:
    rows = {}
    for r in records:
        if r.get("images_per_sec"):
            rows.setdefault(r["model"], {})[(r["framework"], r["mode"])] = r
    head = ("| model | ours inference | share | ours training | share | timm inference | "
            "timm training | timm compiled inference |")  # fmt: skip
    lines = [f"bf16 matrix-product ceiling: {ceiling / 1e12:.1f} TFLOP/s", "", head,
             "|---|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip

    def cell(r, key="images_per_sec", fmt="{:,.0f}"):
        return fmt.format(r[key]) if r and r.get(key) is not None else "–"

    for model, got in rows.items():
        ours_i, ours_t = got.get(("inception", "inference")), got.get(("inception", "training"))
        lines.append(
            f"| {model} | {cell(ours_i)} | {cell(ours_i, 'share_of_ceiling', '{:.0%}')} | "
            f"{cell(ours_t)} | {cell(ours_t, 'share_of_ceiling', '{:.0%}')} | "
            f"{cell(got.get(('timm', 'inference')))} | {cell(got.get(('timm', 'training')))} | "
            f"{cell(got.get(('timm', 'inference_compiled')))} |"
        )
    return "\n".join(lines)


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=list(ALL_MODELS), choices=ALL_MODELS)
    p.add_argument("--image-size", type=int, default=299)
    p.add_argument("--infer-batch", type=int, default=256)
    p.add_argument("--train-batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=20, help="timed steps per repeat")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--matmul-size", type=int, default=8192)
    p.add_argument(
        "--baseline",
        choices=("auto", "none"),
        default="auto",
        help="auto: timm in PyTorch when both are installed",
    )
    p.add_argument(
        "--torch-compile",
        action="store_true",
        help="also timm + torch.compile for inference (compiles for minutes)",
    )
    p.add_argument(
        "--deadline",
        type=float,
        default=420.0,
        help="seconds after the start after which no new measurement starts",
    )
    p.add_argument(
        "--baseline-seconds",
        type=float,
        default=180.0,
        help="time limit of the timm measurements (they run first)",
    )
    p.add_argument(
        "--smoke",
        action="store_true",
        help="tiny run for any machine: 75 px, batch 2, 2 steps, one model",
    )
    p.add_argument("--json", help="also write all records and the ceiling here")
    p.add_argument("--child-timm", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.smoke:
        args.image_size, args.infer_batch, args.train_batch = 75, 2, 2
        args.steps, args.repeats, args.matmul_size, args.baseline = 2, 1, 256, "none"
        if args.models == list(ALL_MODELS):
            args.models = ["inception_resnet_v1"]
    return args  # fmt: skip


def main(argv=None) -> None:
    args = parse(argv)
    if args.child_timm:
        timm_child(args)
        return
    records = baseline(args)  # first: PyTorch must have the device before JAX claims it
    if os.environ.setdefault("KERAS_BACKEND", "jax") != "jax":
        sys.exit("benchmarks/accelerator.py measures the JAX backend: set KERAS_BACKEND=jax.")
    import jax

    ceiling = matmul_ceiling(args.matmul_size)
    device = jax.devices()[0]
    emit({"device": str(device.device_kind), "platform": device.platform,
          "matmul_bf16_flops_per_sec": ceiling})  # fmt: skip
    records += ours(args, ceiling)
    print("\n" + table(records, ceiling), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": str(device.device_kind), "ceiling_flops_per_sec": ceiling,
                       "args": vars(args), "records": records}, f, indent=2)  # fmt: skip


if __name__ == "__main__":
    main()
