"""``evaluate``: top-1 / top-5 accuracy of one model or an ensemble, with 1, 10, 12 or 144 crops.

Images are decoded and cropped in a ``tf.data`` pipeline (all crops of an image in one batch,
see ``crops``); each model's softmax probabilities are averaged over the crops of an image, its
label space aligned with the data set's (``Ensemble``), and the ensemble is the weighted mean of
the members' crop-averaged probabilities (equal weights by default).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from ..models.ensemble import Ensemble, member_image_size, member_num_classes
from . import crops as crop_lib
from .metrics import TopK

DEFAULT_WEIGHTS = "imagenet"
GRAPH_MIN_STEPS = 4
NO_WEIGHTS = ("none", "None", "random", "")


def split_list(value) -> list:
    """``"a,b"`` -> ``["a", "b"]``; lists pass through; ``None`` -> ``[]``."""
    if value is None:
        return []
    if isinstance(value, (str, os.PathLike)):
        return [v.strip() for v in os.fspath(value).split(",") if v.strip()]
    if isinstance(value, keras.Model):
        return [value]
    return list(value)


def per_member(values, n: int, what: str, default=None) -> list:
    """One value for every member, or exactly one per member."""
    values = split_list(values)
    if not values:
        return [default] * n
    if len(values) == 1:
        return values * n
    if len(values) != n:
        raise ValueError(
            f"got {len(values)} {what} values for {n} models; give one value for all models or "
            f"exactly one per model, in the order of --model."
        )
    return values


def h5_num_classes(path) -> int | None:
    """Width of the classifier stored in a Keras 3 ``.weights.h5`` file (None if no Dense)."""
    import h5py

    with h5py.File(path, "r") as f:
        layers = f.get("layers", {})
        for name in sorted(layers):
            if name == "dense" or name.startswith("dense_"):
                return int(layers[name]["vars"]["1"].shape[0])
    return None


def load_model(name, weights=DEFAULT_WEIGHTS, *, num_classes=None, image_size=None, **build_kw):
    """Builds the registered model ``name`` with ``weights``.

    ``weights``: ``"imagenet"`` / a manifest entry (resolved by ``inception.build``), ``None`` or
    ``"none"`` (random initialisation with ``num_classes`` classes), the path of a converted
    ``.weights.h5`` (its class count is read from the file) or of a whole ``.keras`` model.
    """
    import inception

    if isinstance(name, keras.Model):
        return name
    config = inception.get_model_config(name)  # unknown names: ValueError listing the models
    size = int(image_size or config.input_size)
    kw = {"input_shape": (size, size, 3), **build_kw}
    if weights is None or str(weights) in NO_WEIGHTS:
        return inception.build(name, weights=None, classes=int(num_classes or 1000), **kw)
    path = os.fspath(weights)
    if path.endswith(".keras"):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"model file {path!r} does not exist.")
        return keras.saving.load_model(path)
    if path.endswith(".h5"):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"weights file {path!r} does not exist.")
        if path.endswith(".weights.h5"):
            classes = h5_num_classes(path)
            if classes:
                kw["classes"] = classes
    return inception.build(name, weights=path, **kw)


def _aligned(models, names, num_classes, size):
    """One single-member ``Ensemble`` per model: [0, 255] crops in, aligned probabilities out."""
    branches = []
    for model, name in zip(models, names):
        width = member_num_classes(model)
        if width not in (num_classes, num_classes + 1):
            raise ValueError(
                f"model {name} has {width} classes but the data set has {num_classes}; they must "
                f"match (or the model have one more: slim's background). For an image folder of "
                "ImageNet classes, name its sub-folders by synset and pass a labels file listing "
                "the 1000 synsets (--labels-file)."
            )
        branches.append(
            Ensemble(
                [model], input_shape=(size, size, 3), num_classes=num_classes, name=f"m_{name}"
            )
        )
    return branches


def _synset_folder(source) -> bool:
    """A folder whose class sub-folders are all ImageNet synsets (but fewer than 1000)."""
    from inception.preprocessing import imagenet_classes

    if source.name.startswith("tfds:") or source.name == "imagenet2012":
        return False
    synsets = {s for s, _ in imagenet_classes()}
    return source.num_classes < len(synsets) and all(n in synsets for n in source.class_names)


def _with_imagenet_labels(data, split):
    """The folder again, labelled by index in the 1000 ImageNet synsets (a labels file)."""
    import tempfile

    from inception.data import load_source
    from inception.preprocessing import imagenet_classes

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "imagenet_synsets.txt")
        with open(path, "w") as f:
            f.write("".join(f"{s}\n" for s, _ in imagenet_classes()))
        return load_source(data, split, labels_file=path)


def _image_size(models, image_size):
    if image_size:
        return int(image_size)
    sizes = [member_image_size(m) for m in models]
    known = [max(s) for s in sizes if None not in s]
    return max(known) if known else 299


def _progress(done, total, start, stream):
    rate = done / max(time.perf_counter() - start, 1e-9)  # includes the first step's tracing
    width = 30
    filled = int(width * done / total) if total else width
    eta = (total - done) / rate if rate and total else 0.0
    stream.write(
        f"\r  [{'=' * filled}{'.' * (width - filled)}] {done}/{total} images  "
        f"{rate:.1f} images/s  ETA {eta:.0f}s "
    )
    stream.flush()


def evaluate(
    models,
    data,
    *,
    weights=DEFAULT_WEIGHTS,
    split: str = "validation",
    crops: int = 1,
    batch_size: int | None = None,
    limit: int | None = None,
    ensemble_weights: Sequence[float] | None = None,
    data_dir=None,
    labels_file=None,
    image_size: int | None = None,
    crop_fraction: float | None = None,
    json_path=None,
    progress: bool | None = None,
    source=None,
    graph: bool | None = None,
) -> dict:
    """Top-1 / top-5 accuracy of each model and of their ensemble on ``data``.

    Args:
        models: a model name, ``"name,name"``, a list of names and/or built Keras models.
        data: ``"imagenet2012"``, ``"tfds:NAME"`` or an image folder (``inception.data``); a
            folder whose sub-folders are all ImageNet synsets gets ImageNet's 1000 labels.
        weights: one source for all models or one per model: ``"imagenet"`` (default: each
            model's pretrained entry), a manifest entry, ``"none"`` (random initialisation), a
            ``.weights.h5`` or ``.keras`` path. Ignored for models given as Keras models.
        split: data split (``"validation"`` by default).
        crops: 1, 10, 12 or 144 (see ``inception.evaluation.crops``).
        batch_size: images per step (each contributes ``crops`` crops); default
            ``max(1, 32 // crops)``.
        limit: evaluate only the first ``limit`` images.
        ensemble_weights: one weight per model for the ensemble mean (default equal).
        data_dir, labels_file: passed to ``inception.data.load_source``.
        image_size: crop size; default the largest model input (299).
        crop_fraction: central crop fraction; default the first model's config (0.875).
        json_path: also write the result as JSON there.
        progress: show a progress bar with images/s on stderr (default: when stderr is a tty).
        source: an already loaded ``inception.data.Source`` (then ``data`` is only its name).
        graph: run the models as one traced ``tf.function`` (default: when there are at least
            4 steps; tracing costs seconds per model, so tiny runs stay eager).

    Returns:
        ``{"data", "split", "crops", "num_images", "skipped", "seconds", "images_per_second",
        "models": [{"name", "weights", "num_images", "top1", "top5", "top1_error",
        "top5_error"}], "ensemble": {...} or None}``, accuracies in percent.
    """
    import inception
    from inception.data import load_source

    crops = crop_lib.check_scheme(crops)
    entries = split_list(models)
    if not entries:
        raise ValueError("no model given; name one or more, e.g. --model inception_v4.")
    for entry in entries:
        if not isinstance(entry, keras.Model):
            inception.get_model_config(entry)  # fail early on unknown names
    n = len(entries)
    member_weights = per_member(weights, n, "--weights", DEFAULT_WEIGHTS)
    mean_weights = per_member(ensemble_weights, n, "--ensemble-weights", 1.0)
    mean_weights = np.asarray([float(w) for w in mean_weights])
    if np.any(mean_weights < 0) or mean_weights.sum() <= 0:
        raise ValueError(f"ensemble weights must be non-negative, not all 0; got {mean_weights}.")
    mean_weights = mean_weights / mean_weights.sum()
    if batch_size is not None and int(batch_size) < 1:
        raise ValueError(f"batch size must be at least 1; got {batch_size}.")
    if limit is not None and int(limit) < 1:
        raise ValueError(f"limit must be at least 1; got {limit}.")

    if source is None:
        source = load_source(data, split, data_dir=data_dir, labels_file=labels_file)
        if labels_file is None and _synset_folder(source):
            source = _with_imagenet_labels(data, split)
    num_classes = source.num_classes
    built = [
        load_model(e, w, num_classes=num_classes, image_size=image_size)
        for e, w in zip(entries, member_weights)
    ]
    names = [e.name if isinstance(e, keras.Model) else e for e in entries]
    size = _image_size(built, image_size)
    if crop_fraction is None:
        first = next((e for e in entries if not isinstance(e, keras.Model)), None)
        config = inception.get_model_config(first) if first else None
        crop_fraction = config.preprocessing.crop_fraction if config else 0.875
    branches = _aligned(built, names, num_classes, size)

    total = source.num_examples if limit is None else min(int(limit), source.num_examples)
    batch_size = int(batch_size or max(1, 32 // crops))
    dataset = source.dataset.take(total)

    def prepare(encoded, label):
        image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        return crop_lib.extract_crops(image, crops, size, crop_fraction), label

    dataset = (
        dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .ignore_errors()
        .batch(batch_size)
        .prefetch(2)
    )

    def run_members(batch):
        shape = tf.shape(batch)
        flat = tf.reshape(batch, [shape[0] * shape[1], size, size, 3])
        outs = []
        for branch in branches:
            probs = branch(flat, training=False)
            outs.append(tf.reduce_mean(tf.reshape(probs, [shape[0], shape[1], -1]), axis=1))
        return tf.stack(outs)

    steps = -(-total // batch_size)
    if graph if graph is not None else steps >= GRAPH_MIN_STEPS:
        n_crops = len(crop_lib.crop_boxes(crops, size, size)[1])
        spec = tf.TensorSpec([None, n_crops, size, size, 3])  # traced once, any batch size
        step = tf.function(run_members, input_signature=[spec], autograph=False)
    else:  # a few steps: eager calls cost less than tracing the graph (seconds per model)
        step = run_members

    counters = [TopK() for _ in built]
    combined = TopK()
    stream = sys.stderr
    show = stream.isatty() if progress is None else bool(progress)
    start = time.perf_counter()
    done, warm = 0, None
    for batch, labels in dataset:
        probs = step(batch).numpy()  # (members, batch, classes)
        labels = labels.numpy()
        for counter, p in zip(counters, probs):
            counter.update(p, labels)
        combined.update(np.tensordot(mean_weights, probs, axes=1), labels)
        done += len(labels)
        if warm is None:  # images/s leaves out the first step (one-off graph tracing)
            warm = (done, time.perf_counter())
        if show:
            _progress(done, total, start, stream)
    seconds = time.perf_counter() - start
    steady = (done - warm[0], time.perf_counter() - warm[1]) if warm else (0, 0.0)
    rate = steady[0] / steady[1] if steady[0] else (done / seconds if seconds else 0.0)
    if show:
        stream.write("\n")
    if done == 0:
        raise ValueError(
            f"no image of {source.name} ({split}) could be decoded; nothing evaluated."
        )

    result = {
        "data": source.name,
        "split": split,
        "crops": crops,
        "image_size": size,
        "num_images": done,
        "skipped": int(total - done) + int(getattr(source, "skipped", 0)),
        "seconds": seconds,
        "images_per_second": rate,
        "models": [
            {"name": name, "weights": _weights_label(e, w), **c.result()}
            for name, e, w, c in zip(names, entries, member_weights, counters)
        ],
        "ensemble": None,
    }
    if n > 1:
        result["ensemble"] = {
            "members": names,
            "weights": mean_weights.tolist(),
            **combined.result(),
        }
    if json_path:
        with open(json_path, "w") as f:
            json.dump(result, f, indent=2)
    return result


def _weights_label(entry, weights):
    if isinstance(entry, keras.Model):
        return "given model"
    return "none" if weights is None or str(weights) in NO_WEIGHTS else str(weights)


def format_table(result: dict) -> str:
    """The result as a small text table: one row per model, one for the ensemble."""
    rows = [(m["name"], m) for m in result["models"]]
    if result.get("ensemble"):
        rows.append(
            ("ensemble (" + " + ".join(result["ensemble"]["members"]) + ")", result["ensemble"])
        )
    width = max(len("model"), *(len(r[0]) for r in rows))
    head = (
        f"{result['data']} ({result['split']}), {result['num_images']} images, "
        f"{result['crops']} crop{'s' if result['crops'] > 1 else ''} at {result['image_size']}px, "
        f"{result['images_per_second']:.1f} images/s"
        + (f", {result['skipped']} skipped" if result.get("skipped") else "")
    )
    lines = [
        head,
        f"{'model':<{width}}  {'top-1':>7}  {'top-5':>7}  {'top-1 err':>9}  {'top-5 err':>9}",
    ]
    for label, r in rows:
        lines.append(
            f"{label:<{width}}  {r['top1']:>6.2f}%  {r['top5']:>6.2f}%  "
            f"{r['top1_error']:>8.2f}%  {r['top5_error']:>8.2f}%"
        )
    return "\n".join(lines)
