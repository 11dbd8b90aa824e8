"""Fine-tuning against training from scratch on a generated transfer task, and the cost of the
frozen (head-only) phase: validation top-1 against steps, and images/s of a train step with the
backbone frozen, of a train step of the whole network and of a forward pass alone.

    python benchmarks/finetune.py [--steps 160] [--pretrain-steps STEPS] [--image-size 75] \
        [--batch-size 16] [--validate-every 20] [--seconds 60] [--rounds 5] [--out DIR]

The transfer task (Inception-ResNet-v1, generated JPEG folders): four texture primitives
(horizontal stripes, vertical stripes, diagonal stripes at 45 or 135 degrees, a grid of dots;
random period, phase, small rotation, colours and noise). Task A classifies the primitive alone
(four classes); task B classifies *pairs* of primitives drawn over each other (grid = horizontal
+ vertical, horizontal + diagonal, vertical + dots, diagonal + dots: four other class names,
fewer training images). The features that tell the primitives apart on A are what B needs. Every
class is symmetric under the left-right flip of the training augmentation.

1. ``inception.train`` on A for ``--steps`` (recipe ``demo``), then on B with the same budget:
   ``inception.finetune`` from A's ``model.keras`` (recipe ``finetune``, head alone for the first
   quarter) and ``inception.train`` from scratch (recipe ``demo``: the paper's recipe shortened for
   a few hundred CPU steps; the full paper recipe decays its learning rate over epochs of
   ImageNet). Validation top-1 every ``--validate-every`` steps, from each run's metrics.jsonl
   (records with ``val_top1``), and the final evaluation of each ``model.keras``.
2. Throughput at the same model and batch: ``train_on_batch`` of a network compiled with the
   fine-tuning recipe after ``set_phase(net, whole=False)`` (frozen) and ``whole=True`` (full),
   and ``predict_on_batch`` (forward, inference mode), one in-memory batch, ``--rounds``
   interleaved rounds sharing ``--seconds``, after warm-up (compilation excluded); medians.

Writes ``finetune.md`` and ``finetune.png`` (matplotlib, Agg) to ``--out`` and prints the tables.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

MODEL = "inception_resnet_v1"
PRIMITIVES = ("horizontal", "vertical", "diagonal", "dots")
TASK_A = {p: (p,) for p in PRIMITIVES}
TASK_B = {
    "grid": ("horizontal", "vertical"),
    "stripes_and_diagonals": ("horizontal", "diagonal"),
    "dotted_columns": ("vertical", "dots"),
    "dotted_diagonals": ("diagonal", "dots"),
}
SIZES = {"A": (80, 25), "B": (20, 25)}  # (train, validation) images per class
RAW = 96  # generated image side, before the Inception crop to --image-size


# --- the generated tasks -----------------------------------------------------------------------


def _primitive(name: str, rng, u, v) -> np.ndarray:
    """A mask in [0, 1] of one primitive on the (rotated) coordinates ``u``, ``v``."""
    period = rng.uniform(7, 12)
    phase = rng.uniform(0, period)
    if name == "dots":
        du = (u + phase) % period - period / 2
        dv = (v + rng.uniform(0, period)) % period - period / 2
        return (du**2 + dv**2 < (0.28 * period) ** 2).astype(np.float32)
    coordinate = {
        "horizontal": v,
        "vertical": u,
        "diagonal": (u + rng.choice((-1, 1)) * v) / np.sqrt(2),
    }[name]
    return ((coordinate + phase) % period < 0.35 * period).astype(np.float32)


def render(primitives, rng) -> bytes:
    """A JPEG of the ``primitives`` drawn over each other in one colour on a noisy background."""
    angle = np.deg2rad(rng.uniform(-10, 10))
    y, x = np.mgrid[0:RAW, 0:RAW].astype(np.float32)
    u = np.cos(angle) * x + np.sin(angle) * y
    v = -np.sin(angle) * x + np.cos(angle) * y
    mask = np.zeros((RAW, RAW), np.float32)
    for name in primitives:
        mask = np.maximum(mask, _primitive(name, rng, u, v))
    background = rng.uniform(0, 255, 3)
    foreground = rng.uniform(0, 255, 3)
    while np.linalg.norm(foreground - background) < 150:
        foreground = rng.uniform(0, 255, 3)
    image = background + mask[..., None] * (foreground - background)
    image += rng.normal(0, 20, image.shape)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def make_task(root: Path, classes: dict, sizes: tuple[int, int], seed: int) -> Path:
    """``root/{train,validation}/<class>/<n>.jpg``; returns ``root``."""
    rng = np.random.default_rng(seed)
    for split, count in zip(("train", "validation"), sizes):
        for name, primitives in classes.items():
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for n in range(count):
                (folder / f"{n:03d}.jpg").write_bytes(render(primitives, rng))
    return root


# --- 1. top-1 against steps --------------------------------------------------------------------


def validation_curve(model_dir: Path) -> list[tuple[int, float]]:
    """``(step, val_top1)`` of the run's periodic validations (metrics.jsonl)."""
    records = [json.loads(x) for x in (model_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["val_top1"]) for r in records if "val_top1" in r]


def step_rates(model_dir: Path) -> list[tuple[int, float]]:
    """``(step, images_per_sec)`` of the run's training records."""
    records = [json.loads(x) for x in (model_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["images_per_sec"]) for r in records if "images_per_sec" in r]


def runs(args, work: Path) -> dict:
    import inception

    a = make_task(work / "A", TASK_A, SIZES["A"], seed=1)
    b = make_task(work / "B", TASK_B, SIZES["B"], seed=2)
    common = dict(image_size=args.image_size, batch_size=args.batch_size, steps=args.steps,
                  seed=0, validate_every=args.validate_every,
                  checkpoint_every=args.validate_every, log_every=1, verbose=0)  # fmt: skip
    out = {}
    for name, call in (
        ("pretrain A (train, demo)", lambda d: inception.train(
            MODEL, str(a), d, recipe="demo", **{**common, "steps": args.pretrain_steps})),
        ("B: finetune from A", lambda d: inception.finetune(
            str(work / "pretrain A (train, demo)" / "model.keras"), str(b), d, **common)),
        ("B: from scratch (train, demo)", lambda d: inception.train(MODEL, str(b), d,
                                                                    recipe="demo", **common)),
    ):  # fmt: skip
        started = time.perf_counter()
        result = call(work / name)
        out[name] = {
            "wall_s": time.perf_counter() - started,
            "curve": validation_curve(work / name),
            "rates": step_rates(work / name),
            "final_top1": result["metrics"]["top1"],
            "head_steps": result.get("head_steps"),
            "best_step": result.get("best_step"),
        }
        print(f"{name}: {out[name]['wall_s']:.0f} s, final top-1 {out[name]['final_top1']:.1f}%",
              file=sys.stderr, flush=True)  # fmt: skip
    return out


# --- 2. throughput -----------------------------------------------------------------------------


def throughput(args, classes: int) -> dict:
    """Median images/s per mode over interleaved rounds (one in-memory batch)."""
    import inception
    from inception.training import load_finetune_recipe, set_phase

    size, batch = args.image_size, args.batch_size
    recipe = load_finetune_recipe("finetune")
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (batch, size, size, 3)).astype("float32")
    y = rng.integers(0, classes, batch).astype("int32")
    nets = {}
    for whole in (False, True):
        net = inception.build(MODEL, input_shape=(size, size, 3), classes=classes,
                              classifier_activation=None, dropout_rate=recipe.dropout_rate,
                              conv_bn=recipe.conv_bn())  # fmt: skip
        net.compile(**recipe.compile_arguments(net, batch, 10, total_steps=10**6))
        set_phase(net, whole=whole)
        nets[whole] = net
    calls = {
        "forward (predict_on_batch)": lambda: nets[True].predict_on_batch(x),
        "frozen: head-only train step": lambda: nets[False].train_on_batch(x, y),
        "full: whole-network train step": lambda: nets[True].train_on_batch(x, y),
    }
    for call in calls.values():  # warm-up: tracing and compilation
        for _ in range(3):
            call()
    share = args.seconds / (args.rounds * len(calls))
    rates = {mode: [] for mode in calls}
    order = list(calls)
    for r in range(args.rounds):
        for mode in order[r % len(order) :] + order[: r % len(order)]:  # rotate the order
            n, started = 0, time.perf_counter()
            while n < 2 or time.perf_counter() - started < share:
                calls[mode]()
                n += 1
            rates[mode].append(batch * n / (time.perf_counter() - started))
    return rates


# --- report ------------------------------------------------------------------------------------


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def median_rate(rates, lo: int, hi: int) -> float | None:
    """Median images/s of the steps in ``(lo, hi]``, the first of the range left out (its record
    includes compiling or the switch of phase)."""
    values = [r for s, r in rates if lo + 1 < s <= hi]
    return statistics.median(values) if values else None


def report(args, command, out, rates, before, after, minutes) -> str:
    b_runs = [k for k in out if k.startswith("B:")]
    pairs = ", ".join(f"{k} = {' + '.join(v)}" for k, v in TASK_B.items())
    curves = {k: dict(out[k]["curve"]) for k in out}
    steps = sorted(set().union(*(curves[k] for k in b_runs)))
    ft = out[b_runs[0]]
    head = ft["head_steps"]
    lines = [
        "# Fine-tuning versus training from scratch (generated transfer task)",
        "",
        f"Command: `{command}`",
        "",
        f"{MODEL}, {args.image_size}x{args.image_size}, batch {args.batch_size}, float32, "
        f"TensorFlow, {os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}),"
        f" {minutes:.1f} minutes. Shared machine: `uptime` before: `{before}`; after: "
        f"`{after}`.",
        "",
        "## 1. Validation top-1 (%) on task B against steps",
        "",
        f"Task A: {len(TASK_A)} classes ({', '.join(TASK_A)}), {SIZES['A'][0]} training and "
        f"{SIZES['A'][1]} validation images per class. Task B: {len(TASK_B)} classes, pairs of "
        f"A's primitives ({pairs}), "
        f"{SIZES['B'][0]} training and {SIZES['B'][1]} validation images per class; chance "
        f"{100 / len(TASK_B):.0f}%. Pretraining on A: {args.pretrain_steps} steps; each run on "
        f"B: {args.steps} steps, validation every "
        f"{args.validate_every} steps, seed 0. Fine-tuning: head alone for steps 1-{head}, "
        "then the whole network.",
        "",
        "| step | " + " | ".join(b_runs) + " |",
        "|---:|" + "---:|" * len(b_runs),
    ]
    for s in steps:
        cells = [f"{curves[k][s]:.1f}" if s in curves[k] else "" for k in b_runs]
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| run | wall time (s) | best periodic val top-1 | final eval of model.keras |",
        "|---|---:|---:|---:|",
    ]
    for k, v in out.items():
        best = max((t for _, t in v["curve"]), default=float("nan"))
        note = f" (best step {v['best_step']})" if v["best_step"] is not None else " (EMA)"
        lines.append(f"| {k} | {v['wall_s']:.0f} | {best:.1f} | {v['final_top1']:.1f}{note} |")
    lines += [
        "",
        "## 2. Throughput: frozen phase, full phase, forward pass",
        "",
        f"One in-memory batch of {args.batch_size}, the network compiled with the `finetune` "
        f"recipe; {args.rounds} interleaved rounds (order rotated), {args.seconds:g} s in all, "
        "after 3 warm-up calls of each; median (min-max) of the rounds' images/s.",
        "",
        "| mode | images/s | time per image vs forward |",
        "|---|---:|---:|",
    ]
    forward = statistics.median(next(iter(rates.values())))
    for mode, values in rates.items():
        m = statistics.median(values)
        lines.append(f"| {mode} | {m:.1f} ({min(values):.1f}-{max(values):.1f}) | "
                     f"{forward / m:.2f}x |")  # fmt: skip
    head_rate = median_rate(ft["rates"], 0, head)
    whole_rate = median_rate(ft["rates"], head, args.steps)
    if head_rate and whole_rate:
        lines += [
            "",
            f"In the fine-tuning run itself (metrics.jsonl `images_per_sec`, JPEG pipeline, "
            f"validation and checkpoints included; median over steps, the first of each phase "
            f"left out): head phase {head_rate:.1f} images/s, whole-network phase "
            f"{whole_rate:.1f} images/s ({head_rate / whole_rate:.2f}x).",
        ]
    return "\n".join(lines) + "\n"


def plot(args, out, rates, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), width_ratios=(1.6, 1))
    for name, v in out.items():
        if not name.startswith("B:"):
            continue
        steps, top1 = zip(*v["curve"]) if v["curve"] else ((), ())
        left.plot(steps, top1, marker="o", label=name)
    head = next(v["head_steps"] for k, v in out.items() if k.startswith("B: finetune"))
    left.axvline(head, color="grey", linestyle="--", linewidth=1)
    left.text(head, 2, " head phase ends", color="grey", fontsize=8)
    left.axhline(100 / len(TASK_B), color="grey", linestyle=":", linewidth=1, label="chance")
    left.set(xlabel="step", ylabel="validation top-1 (%)", ylim=(0, 102),
             title=f"Task B, {MODEL} {args.image_size}px, batch {args.batch_size}")  # fmt: skip
    left.legend(loc="lower right", fontsize=8)
    names = [m.split(" (")[0].split(":")[0] for m in rates]
    medians = [statistics.median(v) for v in rates.values()]
    right.bar(names, medians, color=("tab:grey", "tab:blue", "tab:orange"))
    for i, m in enumerate(medians):
        right.text(i, m, f"{m:.0f}", ha="center", va="bottom", fontsize=8)
    right.set(ylabel="images/s (median)", title=f"Throughput, batch {args.batch_size}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=160, help="steps of every run")
    parser.add_argument("--pretrain-steps", type=int, help="steps on task A (default: --steps)")
    parser.add_argument("--image-size", type=int, default=75)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--validate-every", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0, help="throughput, in all")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--work", type=Path, help="run directories (default: a temporary one)")
    args = parser.parse_args()
    args.pretrain_steps = args.pretrain_steps or args.steps
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    command = "python benchmarks/finetune.py " + " ".join(sys.argv[1:])
    started, before = time.perf_counter(), load()
    work = args.work or Path(tempfile.mkdtemp(prefix="finetune-bench-"))
    out = runs(args, work)
    rates = throughput(args, len(TASK_B))
    after, minutes = load(), (time.perf_counter() - started) / 60
    text = report(args, command.strip(), out, rates, before, after, minutes)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "finetune.md").write_text(text)
    plot(args, out, rates, args.out / "finetune.png")
    print(text)
    print(f"wrote {args.out / 'finetune.md'} and {args.out / 'finetune.png'}; runs in {work}")


if __name__ == "__main__":
    main()
