"""``inception export``: a model (or an ensemble) as a SavedModel for TensorFlow Serving. It
checks every argument before building anything (building takes a while)."""

from __future__ import annotations

import argparse
import os

from ..preprocessing import CROP_FRACTION
from . import flags


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="inception export",
        description="Export a model (or an ensemble) as a SavedModel for TensorFlow Serving. "
        "Class names, input size and preprocessing come with the weights.",
    )
    flags.add_model(p, required=True)
    flags.add_weights(p)
    p.add_argument("--name", required=True, help="model name (the folder under --out)")
    p.add_argument("--version", required=True, type=int, help="version number (positive)")
    p.add_argument("--out", required=True, help="model base directory")
    flags.add_image_size(p, per_model=True)
    flags.add_classes(p)
    flags.add_variant(p)
    flags.add_renamed(p, "--labels", flags.add_class_names(p))
    flags.add_ensemble_weights(p)
    flags.add_top_k(p)
    flags.add_precision(p, "auto", flags.EXPORT_PRECISION_WHY)
    p.add_argument(
        "--crop-fraction",
        type=float,
        default=None,
        help="central crop before resizing (default: each model's own, "
        f"{CROP_FRACTION} for TF-slim's)",
    )
    flags.add_max_image_pixels(p)
    p.add_argument("--overwrite", action="store_true", help="replace an existing version")
    p.add_argument("--no-warmup", action="store_true", help="do not write a warmup request")
    flags.add_quiet(p)
    return p


def parse_export_args(argv):
    return parser().parse_args(argv)


def main(argv=None) -> int:
    args = parse_export_args(argv)
    from .checks import check_arguments

    check_arguments(models=args.model, weights=args.weights, image_size=args.image_size)
    from inception.app.resolve import (
        DEFAULT_WEIGHTS,
        check_entry,
        per_member,
        resolve_all,
        split_list,
    )
    from inception.serving.export import class_names_for, export_saved_model, say, version_dir

    models = split_list(args.model)
    if not models:
        raise ValueError("--model is empty: pass a model name such as inception_v4.")
    target = version_dir(args.out, args.name, args.version)
    if target.exists() and not args.overwrite:
        raise ValueError(
            f"{target} already exists; choose another --version or pass --overwrite to replace it."
        )
    for m in models:
        check_entry(m)
    sizes = per_member(args.image_size, len(models), "--image-size")
    weights = per_member(args.weights, len(models), "--weights", DEFAULT_WEIGHTS)
    mean = None
    if args.ensemble_weights:
        try:
            mean = [float(w) for w in per_member(args.ensemble_weights, len(models), "x")]
        except ValueError:
            raise ValueError(
                f"--ensemble-weights must be one number per model; got {args.ensemble_weights!r}."
            ) from None
    if args.class_names and not os.path.isfile(args.class_names):
        raise FileNotFoundError(f"no such labels file: {args.class_names}")
    if any(str(w).lower() == "none" for w in weights):
        say("--weights none: exporting RANDOM weights (for smoke tests only)", args.quiet)
    members = []
    for m, w, s in zip(models, weights, sizes):
        say(f"loading {m} ({w if not str(m).endswith('.keras') else 'saved model'})", args.quiet)
        members += resolve_all([m], w, image_size=int(s) if s else None,
                               num_classes=args.classes, variant=args.variant)  # fmt: skip
    _, names = class_names_for(members, args.class_names)
    path = export_saved_model(
        members, args.out, args.name, args.version, names, weights=mean, top_k=args.top_k,
        crop_fraction=args.crop_fraction, max_image_pixels=args.max_image_pixels,
        overwrite=args.overwrite, warmup=not args.no_warmup, quiet=args.quiet,
        precision=args.precision,
    )  # fmt: skip
    print(
        f"exported {','.join(map(str, models))} to {path} (signatures: serving_default, "
        "predict_pixels, classify)"
    )
    return 0
