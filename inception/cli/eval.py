"""``inception eval``: top-1 / top-5 accuracy, multi-crop, per model and for the ensemble."""

from __future__ import annotations

import argparse
import json

from . import flags

EXAMPLES = """examples:
  inception eval --model inception_v4 --data imagenet2012 --crops 144
  inception eval --model inception_v4,inception_resnet_v2 --data ~/ilsvrc/val
  inception eval --model runs/irv1/model.keras --data ~/flowers
  inception eval --model exported/irv1.onnx --data ~/flowers   (also .tflite, OpenVINO .xml)
  inception eval --model inception_v4 --data imagenet2012 --devices 2   (2 of the GPUs)
"""


class JsonOrFile(argparse.Action):
    """``--json``: print JSON instead of the table, as in the other commands. ``--json FILE``,
    its old meaning, still writes the file (it is ``--json-file FILE`` now), with a warning."""

    def __call__(self, parser, namespace, values, option_string=None):
        if values is None:
            namespace.json = True
            return
        flags.warn(
            parser, "--json FILE is renamed --json-file FILE; the old form still works for now"
        )
        namespace.json_path = values


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="inception eval",
        description="Top-1/top-5 accuracy of one model or an ensemble (probabilities averaged "
        "over crops, then over models).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    flags.add_model(p, required=True)
    flags.add_weights(p)
    flags.add_data(p)
    p.add_argument("--split", default="validation", help="data split (default validation)")
    flags.add_crops(p)
    flags.add_batch_size(p, "unbounded; at most BATCH_SIZE x crops crops per forward pass")
    flags.add_micro_batch(p)
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N images")
    p.add_argument("--json-file", dest="json_path", metavar="FILE",
                   help="also write the results to this JSON file")  # fmt: skip
    p.add_argument("--json", action=JsonOrFile, nargs="?", default=False, metavar="FILE",
                   help=flags.JSON_HELP)  # fmt: skip
    flags.add_data_dir(p)
    flags.add_renamed(p, "--labels-file", flags.add_data_classes(p))
    flags.add_ensemble_weights(p)
    flags.add_precision(p, "float32", flags.INFERENCE_PRECISION_WHY)
    flags.add_image_size(p)
    flags.add_devices(p)
    flags.add_renamed(p, "--no-progress", flags.add_quiet(p))
    return p


def ensemble_weights(text) -> list[float] | None:
    if not text:
        return None
    try:
        return [float(w) for w in text.split(",")]
    except ValueError:
        got = f"--ensemble-weights must be comma-separated numbers; got {text!r}."
        raise ValueError(got) from None


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    from inception.deploy.artifact import split_exported

    from .checks import check_arguments

    others, exported = split_exported(args.model)  # .onnx/.tflite/.xml: checked here
    check_arguments(models=others, weights=args.weights, data=args.data,
                    image_size=None if exported else args.image_size,
                    devices=args.devices, exported=exported)  # fmt: skip
    weights = ensemble_weights(args.ensemble_weights)
    from inception.evaluation.evaluator import evaluate, format_table

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
        labels_file=args.data_classes,
        image_size=args.image_size,
        precision=args.precision,
        json_path=args.json_path,
        progress=False if args.quiet else None,
        devices=args.devices,
    )
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0
