"""What every exported artifact (``.onnx``, ``.tflite``, OpenVINO ``.xml``) is and carries.

The contract, the same in every format: input float32 ``[N, H, W, 3]``, RGB pixel values in
[0, 255], already cropped and resized to the model's input size (the scaling is inside the
artifact); output float32 probabilities ``[N, classes]``. The model's record (an
``inception.ModelInfo`` whose preprocessing says ``scale="none"``, so nothing scales twice)
travels inside the file where the format has metadata, and the class ids always travel as
``labels.txt`` beside it, one per line in output order.

``Artifact`` is the loaded form: ``info``, ``input_size``, ``num_classes``, ``class_names`` and
``__call__(batch) -> probabilities``, so evaluation and prediction run it like a Keras model.
Nothing here imports a runtime; each format's module imports its own when used.
"""

from __future__ import annotations

import importlib
import json
import os

import numpy as np

from ..errors import UsageError
from ..models.info import ModelInfo

FORMATS = ("saved_model", "onnx", "litert", "openvino")
SUFFIXES = {"onnx": ".onnx", "litert": ".tflite", "openvino": ".xml"}
EXTRAS = {"onnx": "onnx", "litert": "litert", "openvino": "openvino"}
METADATA_KEY = "inception"  # the record's key in each format's metadata
LABELS_FILE = "labels.txt"
CONTRACT = "input float32 [N, H, W, 3] RGB 0..255 (scaling inside); output probabilities [N, C]"


def format_of(path) -> str | None:
    """The artifact format a file name says (``None``: not an artifact)."""
    path = os.fspath(path).lower()
    return next((f for f, s in SUFFIXES.items() if path.endswith(s)), None)


def require(module: str, fmt: str):
    """``import module``, or one sentence naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UsageError(
            f"the {fmt} format needs the package {module.split('.')[0]!r}: "
            f"pip install 'inception[{EXTRAS[fmt]}]'."
        ) from None


def record(info: ModelInfo) -> str:
    """The JSON text stored in an artifact's metadata."""
    return json.dumps({**info.to_dict(), "contract": CONTRACT})


def read_labels_beside(path) -> list[str] | None:
    from ..models.labels import read_labels_file

    labels = os.path.join(os.path.dirname(os.path.abspath(path)), LABELS_FILE)
    return read_labels_file(labels) if os.path.isfile(labels) else None


class Artifact:
    """An exported model loaded in its own runtime (subclasses: one per format).

    Subclasses set ``path``, ``input_size`` and ``num_classes`` and implement ``_run(batch)``
    on a float32 ``[n, size, size, 3]`` batch; the record comes from the file's metadata, else
    from ``labels.txt`` beside it."""

    format = ""

    def __init__(self, path, stored: str | None):
        self.path = os.fspath(path)
        self.name = os.path.basename(self.path)
        info = ModelInfo.from_dict(json.loads(stored)) if stored else None
        if info is None:
            names = read_labels_beside(self.path)
            info = ModelInfo(class_names=names)
        prep = info.preprocessing.replace(input_size=self.input_size, scale="none")
        self.info = info.replace(preprocessing=prep)
        self._inception_info = self.info  # what ``inception.model_info`` reads
        if self.info.num_classes not in (None, self.num_classes):
            raise UsageError(
                f"{self.path} lists {self.info.num_classes} class names for "
                f"{self.num_classes} outputs; its labels do not belong to it."
            )

    @property
    def class_names(self) -> list[str] | None:
        return None if self.info.class_names is None else list(self.info.class_names)

    def __call__(self, batch, training=False) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if batch.ndim != 4 or batch.shape[1:] != (self.input_size, self.input_size, 3):
            raise UsageError(
                f"{self.name} takes [N, {self.input_size}, {self.input_size}, 3] pixels; "
                f"got {list(batch.shape)}."
            )
        return np.asarray(self._run(batch), dtype=np.float32)

    predict_on_batch = __call__

    def _run(self, batch):  # pragma: no cover - the formats implement it
        raise NotImplementedError


def rejected(path, fmt: str, exc: Exception) -> UsageError:
    """The one sentence for a file its runtime refuses."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    return UsageError(f"{path} is not a valid {fmt} model: {first}")


def split_exported(models) -> tuple[str, list[str]]:
    """``--model`` text -> ``(the other entries, "a,b", the exported files)``; a named exported
    file that does not exist is refused here (before TensorFlow loads)."""
    entries = [e.strip() for e in os.fspath(models or "").split(",") if e.strip()]
    exported = [e for e in entries if format_of(e)]
    for path in exported:
        if not os.path.isfile(path):
            raise UsageError(f"model file {path!r} does not exist.")
    return ",".join(e for e in entries if not format_of(e)), exported
