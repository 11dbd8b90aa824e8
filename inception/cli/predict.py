"""``inception predict``: class names with probabilities for images, folders or URLs."""

from __future__ import annotations

import argparse
import json
import sys

from . import flags


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="inception predict",
        description="Classify images, folders (walked) or http(s) URLs; unreadable files are "
        "reported and skipped. --model also takes files written by `inception export --format`: "
        ".onnx, .tflite and OpenVINO .xml, run in their own runtime.",
    )
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_URL_OR_DIR")
    flags.add_renamed(p, "--ensemble", flags.add_model(p))
    flags.add_weights(p)
    flags.add_renamed(p, "--top", flags.add_top_k(p))
    flags.add_crops(p)
    flags.add_renamed(p, "--labels-file", flags.add_class_names(p))
    flags.add_classes(p)
    flags.add_micro_batch(p)
    flags.add_precision(p, "float32", flags.INFERENCE_PRECISION_WHY)
    flags.add_image_size(p)
    flags.add_devices(p)
    flags.add_json(p)
    return p


def main(argv=None) -> int:
    p = parser()
    args = p.parse_args(argv)
    flags.require(p, args, "--model")
    from inception.deploy.artifact import split_exported

    from .checks import check_arguments, random_weights

    others, exported = split_exported(args.model)  # .onnx/.tflite/.xml: checked here
    check_arguments(models=others, weights=args.weights,
                    image_size=None if exported else args.image_size,
                    devices=args.devices, exported=exported)  # fmt: skip
    from inception.evaluation.predict import predict
    from inception.models.labels import read_labels_file

    class_names = read_labels_file(args.class_names) if args.class_names else None
    if random_weights(args.weights, others):
        print(
            "inception predict: --weights none: predicting with RANDOM weights (for smoke tests "
            "only: the classes shown mean nothing)",
            file=sys.stderr,
            flush=True,
        )
    num_classes = args.classes or (len(class_names) if class_names else None)
    results = predict(
        args.inputs,
        args.model,
        weights=args.weights,
        top=args.top_k,
        crops=args.crops,
        class_names=class_names,
        num_classes=num_classes,
        image_size=args.image_size,
        micro_batch=args.micro_batch,
        precision=args.precision,
        devices=args.devices,
    )
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            if "error" in r:
                continue
            print(r["input"])
            for k, pred in enumerate(r["predictions"], 1):
                print(f"  {k}. {100 * pred['probability']:6.2f}%  {pred['class']}")
    for r in results:
        if "error" in r:
            print(f"inception predict: skipped {r['input']}: {r['error']}", file=sys.stderr)
    return 0
