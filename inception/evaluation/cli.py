"""``inception eval``: top-1 / top-5 accuracy, multi-crop, per model and for the ensemble."""

from __future__ import annotations

import argparse

from .crops import SCHEMES

PRECISIONS = ("float32", "bfloat16", "float16", "auto")  # inception.optimize.PRECISIONS

EXAMPLES = """examples:
  inception eval --model inception_v4 --data imagenet2012 --crops 144
  inception eval --model inception_v4,inception_resnet_v2 --data ~/ilsvrc/val
  inception eval --model runs/irv1/model.keras --data ~/flowers
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="inception eval",
        description="Top-1/top-5 accuracy of one model or an ensemble (probabilities averaged "
        "over crops, then over models).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--model",
        required=True,
        help="model name or .keras file; NAME,NAME,... averages an ensemble",
    )
    p.add_argument(
        "--weights",
        default="imagenet",
        help="one for all models or one per model (comma-separated): 'imagenet' (default: each "
        "model's pretrained entry), a manifest entry, 'none' (random init), a .weights.h5 or "
        ".keras path; class names, input size and preprocessing come with the weights",
    )
    p.add_argument(
        "--data",
        required=True,
        help="imagenet2012, tfds:NAME, or an image folder (one sub-folder per class)",
    )
    p.add_argument("--split", default="validation", help="data split (default validation)")
    p.add_argument(
        "--crops", type=int, default=1, choices=SCHEMES, help="crops per image (default 1)"
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="images per step: at most BATCH_SIZE x crops crops per forward pass",
    )
    p.add_argument(
        "--micro-batch",
        type=int,
        default=None,
        help="crops per forward pass (default 16 at 299 px, more for smaller inputs); "
        "bounds memory whatever the number of crops",
    )
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N images")
    p.add_argument(
        "--json", dest="json_path", default=None, help="also write the results to this JSON file"
    )
    p.add_argument("--data-dir", default=None, help="tfds data directory")
    p.add_argument(
        "--labels-file",
        default=None,
        help="image folders: class names in label order, one per line",
    )
    p.add_argument("--ensemble-weights", default=None, help="comma-separated weight per model")
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="float32",
        help="arithmetic of the folded-BatchNorm models: float32 (default: reproduces published "
        "accuracy), bfloat16, float16, or auto (bfloat16 where the hardware has it)",
    )
    p.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="run named models at this size (default: each model's own input size)",
    )
    p.add_argument(
        "--quiet",
        "--no-progress",
        dest="quiet",
        action="store_true",
        help="no progress output (default: a bar on a terminal, a line every 30 s in a log)",
    )
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    from ..commands.checks import check_arguments

    check_arguments(
        models=args.model, weights=args.weights, image_size=args.image_size, data=args.data
    )
    weights = None
    if args.ensemble_weights:
        try:
            weights = [float(w) for w in args.ensemble_weights.split(",")]
        except ValueError:
            got = args.ensemble_weights
            raise ValueError(
                f"--ensemble-weights must be comma-separated numbers; got {got!r}."
            ) from None
    from .evaluator import evaluate, format_table

    result = evaluate(
        args.model,
        args.data,
        weights=args.weights,
        split=args.split,
        crops=args.crops,
        batch_size=args.batch_size,
        micro_batch=args.micro_batch,
        limit=args.limit,
        ensemble_weights=weights,
        data_dir=args.data_dir,
        labels_file=args.labels_file,
        image_size=args.image_size,
        precision=args.precision,
        json_path=args.json_path,
        progress=False if args.quiet else None,
    )
    print(format_table(result))
    return 0
