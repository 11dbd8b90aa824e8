"""``evaluate``: top-1 / top-5 accuracy of one model or an ensemble, with 1, 10, 12 or 144 crops.

Models are resolved by ``inception.app.resolve`` and carry their class names and
preprocessing; images are decoded and cut into crops in a ``tf.data`` pipeline and run in
bounded micro-batches (``runner``). Each model's probabilities are averaged over the crops of an
image; the ensemble is the weighted mean of the members' crop-averaged probabilities. Data and
models are matched by class name (an ImageNet model on a folder of synset-named classes, a model
trained on a folder on its validation split); accuracies are in percent.
"""

from __future__ import annotations

import json
import resource
import time
from collections.abc import Sequence

import numpy as np

from ..app.resolve import DEFAULT_WEIGHTS, optimize, per_member, resolve_all, split_list
from ..models import combine
from ..preprocessing import crops as crop_lib
from ..progress import Progress
from .devices import placement
from .metrics import TopK
from .runner import Runner, common_classes


def _label_map(space, source, members) -> np.ndarray | None:
    """Data label -> index in the common classes (``None``: the same indices)."""
    if space is None:
        return None
    index = {c: i for i, c in enumerate(space)}
    missing = [c for c in source.class_names if c not in index]
    if missing:
        shown = ", ".join(missing[:4]) + (
            f" (+{len(missing) - 4} more)" if len(missing) > 4 else ""
        )
        raise ValueError(
            f"{source.name} has classes the model {members[0].name} does not know: {shown}. "
            f"The model knows {len(space)} classes ({', '.join(space[:3])}, ...): evaluate it "
            "on data of those classes, or evaluate a model trained on this data (--weights "
            "RUN/model.keras)."
        )
    return np.asarray([index[c] for c in source.class_names], dtype=np.int64)


def _images(source, total):
    """``(uint8 image, label)`` pairs of the first ``total`` examples; undecodable files are
    dropped (and counted by the caller)."""
    import tensorflow as tf

    def decode(encoded, label):
        return tf.io.decode_image(encoded, channels=3, expand_animations=False), label

    return (
        source.dataset.take(total)
        .map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .ignore_errors()
    )


def evaluate(
    models,
    data=None,
    *,
    weights=DEFAULT_WEIGHTS,
    split: str = "validation",
    crops: int = 1,
    batch_size: int | None = None,
    micro_batch: int | None = None,
    limit: int | None = None,
    ensemble_weights: Sequence[float] | None = None,
    data_dir=None,
    labels_file=None,
    image_size: int | None = None,
    precision: str | None = "float32",
    json_path=None,
    progress: bool | str | None = None,
    source=None,
    devices="all",
) -> dict:
    """Top-1 / top-5 accuracy of each model and of their ensemble on ``data``.

    Args:
        models: a model name, ``"name,name"``, ``.keras`` paths, built Keras models, or a list.
        data: ``"imagenet2012"``, ``"tfds:NAME"`` or an image folder (``inception.data``).
        weights: one for all models or one per model: ``"imagenet"`` (default), a manifest
            entry, ``"none"`` (random initialisation), a ``.weights.h5`` or ``.keras`` path.
            Ignored for models given as Keras models or ``.keras`` files.
        split: data split (``"validation"`` by default).
        crops: 1, 10, 12 or 144 (see ``inception.preprocessing.crops``).
        batch_size: images per step: a micro-batch holds at most ``batch_size x crops`` crops.
        micro_batch: crops per forward pass (default: 16 at 299 px, more for smaller inputs);
            bounds memory.
        limit: evaluate only the first ``limit`` images.
        ensemble_weights: one weight per model for the ensemble mean (default equal).
        data_dir, labels_file: passed to ``inception.data.load_source``.
        image_size: run the named models at this size (default: each model's own).
        precision: ``"float32"`` (default: folded BatchNorm, the original arithmetic; reproduces
            published accuracy), ``"bfloat16"``, ``"float16"`` or ``"auto"``
            (``inception.optimize_for_inference``); ``None`` runs the models as they are.
        json_path: also write the result as JSON there.
        progress: ``True``/``"bar"``/``"lines"``/``False``; default a bar on a terminal and a
            line every 30 s otherwise.
        source: an already loaded ``inception.data.Source`` (then ``data`` may be ``None``).
        devices: how many local devices to run on (``"all"``, the default: every one; see
            ``inception.evaluation.devices``); the results are those of one device.

    Returns:
        ``{"data", "split", "crops", "image_size", "num_images", "skipped", "seconds",
        "images_per_second", "micro_batch", "max_rss_mb", "backend", "strategy", "devices",
        "models": [{"name", "weights", "num_images", "top1", "top5", "top1_error",
        "top5_error"}], "ensemble": {...} or None}``, accuracies in percent; ``strategy`` is
        ``"MirroredStrategy"`` (TensorFlow), ``"DataParallel"`` (JAX) or ``"none"`` (one
        device), ``devices`` the device count. ``top5`` and ``top5_error`` are ``None`` when
        the scores range over 5 classes or fewer (top-5 would be 100% whatever the model does).
    """
    from inception.data import load_source

    crops = crop_lib.check_scheme(crops)
    for what, value in (("--batch-size", batch_size), ("--limit", limit),
                        ("--micro-batch", micro_batch)):  # fmt: skip
        if value is not None and int(value) < 1:
            raise ValueError(f"{what} must be at least 1; got {value}.")
    n = len(split_list(models))
    weights_per_member = per_member(ensemble_weights, max(n, 1), "--ensemble-weights", 1.0)
    mean_weights = combine.mean_weights(weights_per_member, max(n, 1))
    place = placement(devices, models)  # before the data: a --devices error comes first
    if source is None:
        if data is None:
            raise ValueError("no data given; pass --data (imagenet2012, tfds:NAME or a folder).")
        source = load_source(data, split, data_dir=data_dir, labels_file=labels_file)
    with place.scope():
        members = resolve_all(
            models, weights, image_size=image_size, num_classes=source.num_classes
        )
        used = optimize(members, precision)
        space = common_classes(members)
        label_map = _label_map(space, source, members)
        size = len(space) if space is not None else source.num_classes
        runner = Runner(members, crops, space, size, micro_batch, "the data has", place)
        if micro_batch is None and batch_size is not None:
            runner.rows = min(runner.rows, int(batch_size) * crops)
        total = source.num_examples if limit is None else min(int(limit), source.num_examples)
        counters, combined, done, seconds, rate = _score(
            runner, _images(source, total), total, label_map, mean_weights, progress
        )
    if done == 0:
        raise ValueError(
            f"no image of {source.name} ({split}) could be decoded; nothing evaluated."
        )

    result = {
        "data": source.name,
        "split": split,
        "crops": crops,
        "image_size": max(p.input_size for p in runner.preps),
        "num_images": done,
        "skipped": int(total - done) + int(getattr(source, "skipped", 0)),
        "seconds": seconds,
        "images_per_second": rate,
        "micro_batch": runner.rows,
        "precision": used or "as built",
        **place.record(),
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "models": [
            {"name": m.name, "weights": m.weights, **c.result()} for m, c in zip(members, counters)
        ],
        "ensemble": None,
    }
    if len(members) > 1:
        result["ensemble"] = {
            "members": [m.name for m in members],
            "weights": mean_weights,
            **combined.result(),
        }
    if json_path:
        with open(json_path, "w") as f:
            json.dump(result, f, indent=2)
    return result


def _score(runner, images, total, label_map, mean_weights, progress):
    """Runs ``runner`` over ``images``: ``(one TopK per member, the ensemble's TopK, images
    scored, seconds, images/s)``."""
    size = runner.size
    eager = runner.eager_for(total)
    counters = [TopK(classes=size) for _ in runner.members]  # top-5 of <= 5 classes: None
    combined = TopK(classes=size)
    mode = {True: None, False: "none", None: None}.get(progress, progress)
    bar = Progress(total, "images", label="eval", mode=mode)
    start = time.perf_counter()
    done = 0
    for probs, label in runner.stream(images, eager=eager):
        target = np.asarray([label if label_map is None else label_map[label]])
        for counter, p in zip(counters, probs):
            counter.update(p[None], target)
        combined.update(combine.weighted_mean(probs, mean_weights)[None], target)
        done += 1
        bar.update(done, rate=runner.steady_rate())  # the measure of the final table
    seconds = time.perf_counter() - start
    rate = runner.steady_rate() or done / max(seconds, 1e-9)
    bar.close(rate=rate)
    return counters, combined, done, seconds, rate


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
        f"{result.get('precision', 'float32').split(' (')[0]}, "
        f"{result['images_per_second']:.1f} images/s"
        + (f" on {result['devices']} devices" if result.get("devices", 1) > 1 else "")
        + (f", {result['skipped']} skipped" if result.get("skipped") else "")
    )
    lines = [
        head,
        f"{'model':<{width}}  {'top-1':>7}  {'top-5':>7}  {'top-1 err':>9}  {'top-5 err':>9}",
    ]
    for label, r in rows:
        lines.append(
            f"{label:<{width}}  {_percent(r['top1'], 7)}  {_percent(r['top5'], 7)}  "
            f"{_percent(r['top1_error'], 9)}  {_percent(r['top5_error'], 9)}"
        )
    if any(r.get("top5") is None for _, r in rows):
        lines.append("(top-5: not measured with 5 classes or fewer, where it is always 100%)")
    return "\n".join(lines)


def _percent(value, width: int) -> str:
    """``value`` as ``12.34%`` right-aligned in ``width`` characters; ``-`` for ``None``."""
    return f"{'-':>{width}}" if value is None else f"{value:>{width - 1}.2f}%"
