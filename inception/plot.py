"""Pictures of a training run and of the model zoo (PNG files, matplotlib); ``inception plot``
(``inception.cli.plot``) is their command line.

    inception plot RUN_DIR [--out FILE.png]   # loss, top-1/top-5 and learning rate over steps
    inception plot --zoo [--out FILE.png]     # top-1 accuracy against GMACs, one point per model

A run's picture is read from ``RUN_DIR/metrics.jsonl`` (written by ``inception train``): training
records (``step``, ``loss``, ``top1``, ``top5``, ``lr``) as lines, validation records
(``val_loss``, ``val_top1``, ``val_top5``) as points. The zoo's accuracies are the paper's
(Table 2) and the released checkpoints' (weights manifest); parameters and GMACs are computed
from the architecture table (``inception.models.summary``).
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import UsageError


def read_metrics(run_dir) -> tuple[list[dict], list[dict]]:
    """``(training records, validation records)`` of a run, in step order."""
    path = Path(run_dir) / "metrics.jsonl"
    if not Path(run_dir).is_dir():
        raise UsageError(f"{run_dir} is not a folder; give the --model-dir of a training run.")
    if not path.is_file():
        raise UsageError(f"{path} does not exist: is {run_dir} a training run's --model-dir?")
    train, val = [], []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a crash
        if not isinstance(record, dict) or "step" not in record:
            continue
        if any(k.startswith("val_") for k in record):
            val.append(record)
        if "loss" in record:
            train.append(record)
    if not train and not val:
        raise UsageError(f"{path} holds no training records yet.")
    return sorted(train, key=lambda r: r["step"]), sorted(val, key=lambda r: r["step"])


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_run(run_dir, out=None) -> Path:
    """Writes the run's picture (loss; top-1/top-5 in percent; learning rate) and returns its
    path (default ``RUN_DIR/training.png``)."""
    train, val = read_metrics(run_dir)
    plt = _pyplot()
    fig, (loss_ax, acc_ax, lr_ax) = plt.subplots(1, 3, figsize=(15, 4.2))
    steps = [r["step"] for r in train]

    def series(records, key):
        pts = [(r["step"], r[key]) for r in records if r.get(key) is not None]
        return [p[0] for p in pts], [p[1] for p in pts]

    loss_ax.plot(*series(train, "loss"), label="training", lw=1)
    acc_ax.plot(*series(train, "top1"), label="training top-1", lw=1)
    acc_ax.plot(*series(train, "top5"), label="training top-5", lw=1, alpha=0.7)
    if val:
        loss_ax.plot(*series(val, "val_loss"), "o-", label="validation")
        acc_ax.plot(*series(val, "val_top1"), "o-", label="validation top-1")
        acc_ax.plot(*series(val, "val_top5"), "s--", label="validation top-5")
    if any(r.get("lr") for r in train):
        lr_ax.plot(*series(train, "lr"))
        lr_ax.set_yscale("log")
    for ax, title in ((loss_ax, "loss"), (acc_ax, "accuracy (%)"), (lr_ax, "learning rate")):
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    loss_ax.legend()
    acc_ax.legend()
    name = Path(run_dir).resolve().name
    span = f"steps {steps[0]}-{steps[-1]}" if steps else "validation only"
    fig.suptitle(f"{name}: {span}")
    fig.tight_layout()
    out = Path(out) if out else Path(run_dir) / "training.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_zoo(out) -> Path:
    """Writes top-1 accuracy against GMACs at 299x299 for every model and variant: the paper's
    (circles, area by parameters) and the released checkpoints' (stars)."""
    from inception.app.zoo import model_row
    from inception.models.registry import get_model_config, list_models

    rows = [
        model_row(name, variant)
        for name in list_models()
        for variant in get_model_config(name).variants
    ]
    points = {}  # variants of the same size and accuracy share a point (Inception-v4's)
    for row in rows:
        key = (row["title"], round(row["gmacs"], 2), row["params"], row["paper_top1"])
        points.setdefault(key, []).append(row)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for (title, gmacs, params, top1), same in points.items():
        ax.scatter(gmacs, top1, marker="o", s=params / 4e5)
        variants = ", ".join(r["variant"] for r in same)
        ax.annotate(f"{title} ({variants}; {params / 1e6:.1f} M)", (gmacs, top1), fontsize=8,
                    xytext=(6, -12), textcoords="offset points")  # fmt: skip
        released = next((r["released_top1"] for r in same if r["released_top1"]), None)
        if released:
            ax.scatter(gmacs, released, marker="*", s=140, color="k")
    ax.set_xlim(right=ax.get_xlim()[1] + 3)  # room for the labels
    ax.set_xlabel("GMACs per 299x299 image")
    ax.set_ylabel("ImageNet top-1 (%)")
    ax.set_title("Inception-v4 family: paper (o, area ~ parameters) and released (*) top-1")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
