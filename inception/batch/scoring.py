"""Scoring images as ``inception predict`` does, one chunk at a time.

``ModelSpec`` is what the command line says about the model (plain values: it travels to every
worker); ``Scorer`` is what a worker builds from it once: the members resolved by
``inception.app.resolve`` (registered names with their weights, ``.keras`` files, ensembles,
exported ``.onnx``/``.tflite``/``.xml`` files), optimised for ``--precision``, and the evaluation
``Runner`` that crops and runs them. Decoding, crops, the averaging over crops and models and the
top-k order are predict's, so a row's classes are those ``inception predict`` prints for the same
file. Model and weights files on ``gs://`` (or any remote filesystem Beam reads) are copied to
the worker first.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
from dataclasses import asdict, dataclass, replace

from ..weights.manifest import DEFAULT_WEIGHTS
from .sources import is_local


@dataclass(frozen=True)
class ModelSpec:
    """The model and the prediction options (``inception predict``'s flags)."""

    models: str
    weights: str = DEFAULT_WEIGHTS
    top_k: int = 5
    crops: int = 1
    class_names: tuple[str, ...] | None = None
    num_classes: int | None = None
    image_size: int | None = None
    micro_batch: int | None = None
    precision: str | None = "float32"

    def record(self) -> dict:
        """What the output's manifest keeps: everything that changes a row (class names as a
        digest; the micro-batch changes only the speed)."""
        out = asdict(self)
        out.pop("micro_batch")
        names = out.pop("class_names")
        out["class_names"] = (
            None if names is None else hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]
        )
        return out


BESIDE = {".xml": (".bin",)}  # files an exported model needs next to it (OpenVINO's weights)
LABELS_BESIDE = "labels.txt"  # an exported model's class names (inception.deploy)


def _copy(source: str, target: str) -> None:
    from apache_beam.io.filesystems import CompressionTypes, FileSystems

    with FileSystems.open(source, compression_type=CompressionTypes.UNCOMPRESSED) as src:
        with open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)


def local_copy(path: str) -> str:
    """A model or weights file on a remote filesystem (``gs://...``), copied into a temporary
    folder of this worker with the files an exported model needs beside it; a local path or a
    name is returned as it is."""
    if is_local(path):
        return path
    from apache_beam.io.filesystems import FileSystems

    folder = tempfile.mkdtemp(prefix="inception-model-")
    parent, name = path.rstrip("/").rsplit("/", 1)
    stem, suffix = os.path.splitext(name)
    _copy(path, os.path.join(folder, name))
    for extra in [stem + s for s in BESIDE.get(suffix.lower(), ())] + [LABELS_BESIDE]:
        if FileSystems.exists(f"{parent}/{extra}"):
            _copy(f"{parent}/{extra}", os.path.join(folder, extra))
    return os.path.join(folder, name)


def staged(spec: ModelSpec) -> ModelSpec:
    """``spec`` with its remote model and weights files copied here (workers of a cluster read
    them from the same ``gs://``/``s3://`` path as the command line names)."""

    def local(text: str) -> str:
        return ",".join(local_copy(e.strip()) for e in text.split(",") if e.strip())

    if all(is_local(x) for x in (spec.models, spec.weights)):
        return spec
    return replace(spec, models=local(spec.models), weights=local(spec.weights))


def error_row(path: str, error: str) -> dict:
    return {"path": path, "classes": [], "labels": [], "probabilities": [], "error": error}


class Scorer:
    """The resolved model of a ``ModelSpec`` (predict's ``Predictor``); ``score(items)`` -> one
    row per item, in order.

    Rows: ``{"path", "classes", "labels", "probabilities", "error"}``, the top-k classes by
    falling probability (``error`` ``None``), or no classes and the reason (``error`` set)."""

    def __init__(self, spec: ModelSpec):
        from ..evaluation.predict import Predictor

        spec = staged(spec)
        names = None if spec.class_names is None else list(spec.class_names)
        self.predictor = Predictor(
            spec.models, crops=spec.crops, weights=spec.weights, class_names=names,
            num_classes=spec.num_classes, image_size=spec.image_size,
            micro_batch=spec.micro_batch, precision=spec.precision,
        )  # fmt: skip
        self.top_k = spec.top_k
        self.lock = threading.Lock()  # worker threads share one scorer: one forward at a time

    def score(self, items) -> list[dict]:
        from ..evaluation.predict import _decode  # predict's decoding: same images, same rows

        rows, good = [], []
        for item in items:
            image = _decode(item.data) if item.data is not None else None
            if image is None:
                rows.append(error_row(item.name, item.error or "not a readable image"))
            else:
                rows.append({"path": item.name, "error": None})
                good.append((len(rows) - 1, item.data))
        if good:
            with self.lock:
                for index, p in self.predictor.probabilities(good):
                    top = self.predictor.top(p, self.top_k)
                    rows[index].update(
                        classes=[name for _, name, _ in top],
                        labels=[label for label, _, _ in top],
                        probabilities=[prob for _, _, prob in top],
                    )
        return rows
