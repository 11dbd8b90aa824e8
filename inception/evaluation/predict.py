"""Prediction: class names with probabilities for images, folders or URLs (``inception
predict`` is its command line, in ``inception.cli.predict``).

A folder is walked (recursively, sorted); a file that is not a readable image (or a URL that
cannot be fetched) is reported and skipped, and the rest are still predicted. Each image is
cropped as in evaluation (1 crop by default) and the probabilities averaged over its crops and
over the models of an ensemble (``Ensemble``: label spaces aligned).
"""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..weights.manifest import DEFAULT_WEIGHTS

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
    weights=DEFAULT_WEIGHTS,
    top: int = 5,
    crops: int = 1,
    class_names=None,
    num_classes=None,
    image_size=None,
    micro_batch=None,
    precision: str | None = "float32",
    devices="all",
) -> list[dict]:
    """Top-``top`` classes per input: ``[{"input", "predictions": [{"label", "class",
    "probability"}]} | {"input", "error"}]`` in input order. ``models``: names, ``.keras``
    paths or Keras models (several: probabilities averaged). ``devices``: how many local
    devices to run on (``"all"``, the default: every one; ``inception.evaluation.devices``)."""
    from ..app.resolve import check_entry, split_list
    from ..preprocessing import crops as crop_lib
    from .devices import placement

    crop_lib.check_scheme(crops)
    if top < 1:
        raise ValueError(f"--top-k must be at least 1; got {top}.")
    for entry in split_list(models):
        check_entry(entry)
    place = placement(devices, models)  # before the inputs: a --devices error comes first
    results, good = _read(inputs)
    with place.scope():
        _predict(results, good, models, place, top=top, crops=crops, weights=weights,
                 class_names=class_names, num_classes=num_classes, image_size=image_size,
                 micro_batch=micro_batch, precision=precision)  # fmt: skip
    return results


def _read(inputs) -> tuple[list[dict], list[tuple[int, bytes]]]:
    """``(one row per input, in order: errors filled in; (row, bytes) of each readable
    image)``."""
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
    return results, good


class Predictor:
    """A model spec resolved once for prediction (``predict`` and ``inception batch-predict``):
    its members optimised for ``precision``, the names of the common classes and the ``Runner``
    that crops and runs them."""

    def __init__(self, models, *, crops=1, weights=DEFAULT_WEIGHTS, class_names=None,
                 num_classes=None, image_size=None, micro_batch=None, precision="float32",
                 place=None):  # fmt: skip
        from ..app.resolve import optimize, resolve_all
        from .runner import Runner, common_classes

        members = resolve_all(models, weights, image_size=image_size, num_classes=num_classes)
        optimize(members, precision)
        space = common_classes(members)
        widths = [m.num_classes - m.info.label_offset for m in members]
        size = len(space) if space else min(widths)  # unnamed: the smallest head (slim's drop 0)
        self.names = label_names(size, space, class_names)
        self.runner = Runner(members, crops, space, size, rows=micro_batch, placement=place)

    def probabilities(self, good) -> Iterator[tuple[int, np.ndarray]]:
        """``(row, probabilities averaged over crops and models)`` of each ``(row, bytes)`` of
        ``good`` (readable images)."""
        import tensorflow as tf

        data = tf.data.Dataset.from_tensor_slices(
            ([d for _, d in good], tf.constant([i for i, _ in good], tf.int64))
        ).map(lambda b, i: (tf.io.decode_image(b, channels=3, expand_animations=False), i))
        eager = self.runner.eager_for(len(good))
        for probs, index in self.runner.stream(data, eager=eager):
            yield int(index), probs.mean(axis=0)

    def top(self, p: np.ndarray, k: int) -> list[tuple[int, str, float]]:
        """The ``k`` most probable classes of ``p``: ``(label, name, probability)``."""
        best = np.argsort(-p, kind="stable")[:k]
        return [(int(i), self.names[i], float(p[i])) for i in best]


def _predict(results, good, models, place, *, top, **options) -> None:
    """Fills in the ``predictions`` of the rows ``good`` names."""
    predictor = Predictor(models, place=place, **options)
    for index, p in predictor.probabilities(good):
        results[index]["predictions"] = [
            {"label": label, "class": name, "probability": prob}
            for label, name, prob in predictor.top(p, top)
        ]
