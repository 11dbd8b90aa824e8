"""``inception predict``: class names with probabilities for images, folders or URLs.

A folder is walked (recursively, sorted); a file that is not a readable image (or a URL that
cannot be fetched) is reported and skipped, and the rest are still predicted. Each image is
cropped as in evaluation (1 crop by default) and the probabilities averaged over its crops and
over the models of an ensemble (``Ensemble``: label spaces aligned).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.request
from dataclasses import dataclass

import numpy as np

from .crops import SCHEMES

URL_PREFIXES = ("http://", "https://")
URL_TIMEOUT_S = 30


@dataclass
class Item:
    """One input: where it came from and its encoded bytes (``None`` with ``error`` set)."""

    name: str
    data: bytes | None = None
    error: str | None = None


def _read_url(url: str) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": "inception-predict"})
    with urllib.request.urlopen(request, timeout=URL_TIMEOUT_S) as response:
        return response.read()


def collect_inputs(inputs) -> list[Item]:
    """Files, folders (walked) and URLs -> ``Item``s with their bytes, in the order given."""
    items = []
    for entry in inputs:
        entry = os.fspath(entry)
        if entry.startswith(URL_PREFIXES):
            try:
                items.append(Item(entry, _read_url(entry)))
            except Exception as exc:  # noqa: BLE001  (any network failure is reported per URL)
                items.append(Item(entry, error=f"cannot fetch URL: {exc}"))
        elif os.path.isdir(entry):
            found = []
            for dirpath, dirnames, filenames in os.walk(entry):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                found += [
                    os.path.join(dirpath, f) for f in sorted(filenames) if not f.startswith(".")
                ]
            if not found:
                items.append(Item(entry, error="folder holds no files"))
            items += [Item(p, _read_bytes(p)) for p in found]
        elif os.path.isfile(entry):
            items.append(Item(entry, _read_bytes(entry)))
        else:
            items.append(Item(entry, error="no such file, folder or URL"))
    return items


def _read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def _decode(data: bytes):
    import tensorflow as tf

    try:
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
    except (tf.errors.InvalidArgumentError, ValueError):
        return None
    return image if image.shape[0] and image.shape[1] else None


def read_labels(path) -> list[str]:
    """One class name per line (first token only, blank lines and ``#`` comments skipped)."""
    names = []
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                names.append(line)
    if not names:
        raise ValueError(f"labels file {path!r} lists no classes.")
    return names


def label_names(size: int, space=None, class_names=None) -> list[str]:
    """Names to show for the ``size`` common classes: a labels file's, else the models' own
    (ImageNet synsets shown by their first lemma), else ``class_0``, ``class_1``, ..."""
    from inception.preprocessing import display_name

    if class_names is not None:
        if len(class_names) != size:
            raise ValueError(
                f"the labels file lists {len(class_names)} names but the model has {size} "
                "classes; give one name per class, in output order."
            )
        return list(class_names)
    if space is not None:
        return [display_name(c) for c in space]
    return [f"class_{i}" for i in range(size)]


def predict(
    inputs,
    models,
    *,
    weights="imagenet",
    top: int = 5,
    crops: int = 1,
    class_names=None,
    num_classes=None,
    image_size=None,
    micro_batch=None,
    precision: str | None = "float32",
) -> list[dict]:
    """Top-``top`` classes per input: ``[{"input", "predictions": [{"label", "class",
    "probability"}]} | {"input", "error"}]`` in input order. ``models``: names, ``.keras``
    paths or Keras models (several: probabilities averaged)."""
    import tensorflow as tf

    from ..models.ensemble import member_num_classes
    from ..app.resolve import check_entry, optimize, resolve_all, split_list
    from . import crops as crop_lib
    from .runner import Runner, common_classes

    crop_lib.check_scheme(crops)
    if top < 1:
        raise ValueError(f"--top must be at least 1; got {top}.")
    for entry in split_list(models):
        check_entry(entry)
    items = collect_inputs(inputs)
    if not items:
        raise ValueError("no input given; name image files, folders or URLs.")
    results, good = [], []
    for item in items:
        image = _decode(item.data) if item.data is not None else None
        if image is None:
            results.append({"input": item.name, "error": item.error or "not a readable image"})
        else:
            results.append({"input": item.name})
            good.append((len(results) - 1, item.data))
    if not good:
        reasons = "; ".join(f"{r['input']}: {r['error']}" for r in results[:3])
        raise ValueError(f"none of the inputs is a readable image; nothing predicted ({reasons}).")
    members = resolve_all(models, weights, image_size=image_size, num_classes=num_classes)
    optimize(members, precision)
    space = common_classes(members)
    widths = [member_num_classes(m.model) - m.info.label_offset for m in members]
    size = len(space) if space else min(widths)  # unnamed: the smallest head (slim's drop 0)
    names = label_names(size, space, class_names)
    runner = Runner(members, crops, space, size, rows=micro_batch)
    data = tf.data.Dataset.from_tensor_slices(
        ([d for _, d in good], tf.constant([i for i, _ in good], tf.int64))
    ).map(lambda b, i: (tf.io.decode_image(b, channels=3, expand_animations=False), i))
    eager = runner.eager_for(len(good))
    for probs, index in runner.stream(data, eager=eager):
        p = probs.mean(axis=0)
        best = np.argsort(-p, kind="stable")[:top]
        results[int(index)]["predictions"] = [
            {"label": int(i), "class": names[i], "probability": float(p[i])} for i in best
        ]
    return results


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="inception predict",
        description="Classify images, folders (walked) or http(s) URLs; unreadable files are "
        "reported and skipped.",
    )
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_URL_OR_DIR")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--model", help="model name (NAME,NAME,... averages an ensemble)")
    group.add_argument("--ensemble", help="comma-separated model names, probabilities averaged")
    p.add_argument(
        "--weights",
        default="imagenet",
        help="one for all models or one per model: 'imagenet' (default), a manifest entry, "
        "'none', a .weights.h5 or .keras path",
    )
    p.add_argument("--top", type=int, default=5, help="classes shown per image (default 5)")
    p.add_argument("--crops", type=int, default=1, choices=SCHEMES, help="crops per image")
    p.add_argument("--labels-file", default=None, help="class names, one per line, in label order")
    p.add_argument(
        "--classes", type=int, default=None, help="classes of a randomly initialised model"
    )
    p.add_argument(
        "--micro-batch", type=int, default=None, help="crops per forward pass (bounds memory)"
    )
    p.add_argument(
        "--precision",
        choices=("float32", "bfloat16", "float16", "auto"),
        default="float32",
        help="arithmetic of the folded-BatchNorm models (float32: the published numbers)",
    )
    p.add_argument("--image-size", type=int, default=None, help="input size (default the model's)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    from ..commands.checks import check_arguments, random_weights

    models = args.model or args.ensemble
    check_arguments(models=models, weights=args.weights, image_size=args.image_size)
    class_names = read_labels(args.labels_file) if args.labels_file else None
    if random_weights(args.weights, models):
        print(
            "inception predict: --weights none: predicting with RANDOM weights (for smoke tests "
            "only: the classes shown mean nothing)",
            file=sys.stderr,
            flush=True,
        )
    num_classes = args.classes or (len(class_names) if class_names else None)
    results = predict(
        args.inputs,
        models,
        weights=args.weights,
        top=args.top,
        crops=args.crops,
        class_names=class_names,
        num_classes=num_classes,
        image_size=args.image_size,
        micro_batch=args.micro_batch,
        precision=args.precision,
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
