"""``inception export``: a model (or an ensemble) as a SavedModel for TensorFlow Serving
(``--format saved_model``, the default) or as one file for another runtime: ONNX, LiteRT or
OpenVINO (``inception.deploy``), float32 or int8. It checks every argument before building
anything (building takes a while)."""

from __future__ import annotations

import argparse
import os

from ..deploy.artifact import FORMATS, format_of
from ..deploy.calibration import DEFAULT_LIMIT as CALIBRATION_LIMIT
from ..errors import UsageError
from ..preprocessing import CROP_FRACTION
from . import flags

PRECISION_WHY = (
    f"{flags.EXPORT_PRECISION_WHY}; onnx, litert and openvino files are float32 (auto is "
    "float32 there; --quantize int8 for int8)"
)
SAVED_MODEL_ONLY = ("version", "top_k", "crop_fraction", "no_warmup")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="inception export",
        description="Export a model (or an ensemble) as a SavedModel for TensorFlow Serving, or "
        "as an ONNX, LiteRT (.tflite) or OpenVINO (.xml) file with labels.txt beside it. Class "
        "names, input size and preprocessing come with the weights.",
    )
    flags.add_model(p, required=True)
    flags.add_weights(p)
    p.add_argument("--format", default="saved_model", choices=FORMATS,
                   help="saved_model (default: a TF Serving version folder), onnx, litert or "
                   "openvino (one file: float32 pixels 0..255 in, probabilities out)")  # fmt: skip
    p.add_argument("--name", help="model name: the folder under --out (saved_model, required) or "
                   "the file name (other formats; default the model's name)")  # fmt: skip
    p.add_argument("--version", type=int, help="version number (positive; saved_model only)")
    p.add_argument("--out", required=True, help="model base directory (saved_model) or folder")
    flags.add_image_size(p, per_model=True)
    flags.add_classes(p)
    flags.add_variant(p)
    flags.add_renamed(p, "--labels", flags.add_class_names(p))
    flags.add_ensemble_weights(p)
    flags.add_top_k(p)
    flags.add_precision(p, "auto", PRECISION_WHY)
    p.add_argument("--quantize", choices=("int8",),
                   help="post-training int8 quantization (onnx, litert, openvino; needs "
                   "--calibration-data)")  # fmt: skip
    p.add_argument("--calibration-data", metavar="FOLDER",
                   help="images to calibrate int8 on (a few hundred like the ones the model will "
                   f"see; at most {CALIBRATION_LIMIT} are used)")  # fmt: skip
    p.add_argument(
        "--crop-fraction",
        type=float,
        default=None,
        help="central crop before resizing (default: each model's own, "
        f"{CROP_FRACTION} for TF-slim's)",
    )
    flags.add_max_image_pixels(p)
    flags.add_max_jpeg_scans(p)
    p.add_argument("--overwrite", action="store_true", help="replace an existing version or file")
    p.add_argument("--no-warmup", action="store_true", help="do not write a warmup request")
    flags.add_quiet(p)
    return p


def parse_export_args(argv):
    return parser().parse_args(argv)


def check_format_flags(p, args) -> None:
    """What each format needs and refuses, before anything loads."""
    if args.format == "saved_model":
        flags.require(p, args, "--name", "--version")
        for flag, value in (("--quantize", args.quantize),
                            ("--calibration-data", args.calibration_data)):  # fmt: skip
            if value:
                raise UsageError(
                    f"{flag} is for onnx, litert and openvino exports, not SavedModels."
                )
        return
    given = [f"--{f.replace('_', '-')}" for f in SAVED_MODEL_ONLY
             if getattr(args, f) not in (None, False, 5)]  # fmt: skip
    if given:
        raise UsageError(f"{', '.join(given)}: for SavedModels only, not --format {args.format}.")


def main(argv=None) -> int:
    p = parser()
    args = p.parse_args(argv)
    check_format_flags(p, args)
    exported = [m for m in args.model.split(",") if format_of(m.strip())]
    if exported:
        raise UsageError(
            f"{exported[0].strip()} is already an exported file; export a model name or a .keras "
            "file instead."
        )
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
    target = (
        None if args.format != "saved_model" else version_dir(args.out, args.name, args.version)
    )
    if target is not None and target.exists() and not args.overwrite:
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
    if args.format != "saved_model":
        return export_other(args, models, members, mean)
    _, names = class_names_for(members, args.class_names)
    path = export_saved_model(
        members, args.out, args.name, args.version, names, weights=mean, top_k=args.top_k,
        crop_fraction=args.crop_fraction, max_image_pixels=args.max_image_pixels,
        max_jpeg_scans=args.max_jpeg_scans, overwrite=args.overwrite,
        warmup=not args.no_warmup, quiet=args.quiet, precision=args.precision,
    )  # fmt: skip
    print(
        f"exported {','.join(map(str, models))} to {path} (signatures: serving_default, "
        "predict_pixels, classify)"
    )
    return 0


def export_other(args, models, members, mean) -> int:
    """``--format onnx|litert|openvino``: one file and labels.txt in ``--out``."""
    from inception.deploy.export import export_artifact
    from inception.models.labels import read_labels_file
    from inception.serving.export import say

    result = export_artifact(
        members, args.out, args.name, args.format,
        read_labels_file(args.class_names) if args.class_names else None, weights=mean,
        precision=args.precision, quantize=args.quantize, calibration_data=args.calibration_data,
        overwrite=args.overwrite, say=lambda message: say(message, args.quiet),
    )  # fmt: skip
    print(f"exported {','.join(map(str, models))} to {result.path} (labels: {result.labels})")
    if result.agreement is not None:
        print(result.summary())
    return 0
