"""``inception plot``: a training run's curves or the model zoo as a PNG file."""

from __future__ import annotations

import argparse

from inception.errors import UsageError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="inception plot",
        description="Draw a training run's curves (from RUN_DIR/metrics.jsonl) or the model zoo "
        "as a PNG file.",
    )
    p.add_argument("run_dir", nargs="?", help="a training run's --model-dir")
    p.add_argument("--zoo", action="store_true", help="draw accuracy against GMACs of the models")
    p.add_argument("--out", help="PNG to write (default RUN_DIR/training.png, or zoo.png)")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if args.zoo == bool(args.run_dir):
        raise UsageError("give a training run folder (inception plot RUN_DIR) or --zoo.")
    if args.out and not args.out.lower().endswith(".png"):
        raise UsageError(f"--out must be a .png file; got {args.out!r}.")
    from inception.plot import plot_run, plot_zoo

    if args.zoo:
        path = plot_zoo(args.out or "zoo.png")
    else:
        path = plot_run(args.run_dir, args.out)
    print(f"wrote {path}")
    return 0
