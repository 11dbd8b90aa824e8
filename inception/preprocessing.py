"""How images are prepared for a model, and the ImageNet class names (shipped with the package: no
network access).

``Preprocessing`` is the one record of input size, crop, interpolation and scaling. Each model
config has a default (TF-slim's evaluation), each pretrained weights entry has its own (timm's
checkpoints use a bicubic, square crop), and a trained or converted model carries the one it was
made with (``inception.model_info``); evaluation, prediction, export and ``Ensemble`` read it.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from importlib import resources

import numpy as np

CROPS = ("fraction", "square")
INTERPOLATIONS = ("bilinear", "bicubic")
SCALES = {
    "inception": (1.0 / 127.5, -1.0),  # RGB [0, 255] -> [-1, 1] (TF-slim, keras "tf" mode)
    "none": None,  # the model takes [0, 255] pixels itself
}


@dataclass(frozen=True)
class Preprocessing:
    """The evaluation preprocessing of one model: what turns an image into its input.

    Attributes:
        input_size: height = width of the model input (299 for the released models).
        crop_fraction: share of the image kept by the central crop.
        crop: ``"fraction"`` keeps the central ``crop_fraction`` of each side and resizes it to
            the input (the aspect ratio is not kept; TF-slim's ``central_crop``);
            ``"square"`` keeps the central square of side ``crop_fraction`` x the shorter side
            (timm's resize-then-center-crop).
        interpolation: ``"bilinear"`` or ``"bicubic"`` (resizing the crop to ``input_size``).
        scale: ``"inception"`` (RGB scaled to [-1, 1]) or ``"none"`` (pixels in [0, 255]).
    """

    input_size: int = 299
    crop_fraction: float = 0.875
    crop: str = "fraction"
    interpolation: str = "bilinear"
    scale: str = "inception"

    def __post_init__(self):
        if int(self.input_size) < 1:
            raise ValueError(f"input size must be positive; got {self.input_size}.")
        if not 0.0 < float(self.crop_fraction) <= 1.0:
            raise ValueError(f"crop fraction must be in (0, 1]; got {self.crop_fraction}.")
        for field, allowed in (
            ("crop", CROPS),
            ("interpolation", INTERPOLATIONS),
            ("scale", tuple(SCALES)),
        ):
            if getattr(self, field) not in allowed:
                raise ValueError(
                    f"preprocessing {field} must be one of {', '.join(allowed)}; "
                    f"got {getattr(self, field)!r}."
                )

    def replace(self, **changes) -> Preprocessing:
        """A copy with ``changes`` applied; ``None`` values are ignored."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict | None) -> Preprocessing:
        values = dict(values or {})
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown preprocessing fields {sorted(unknown)}.")
        return cls(**values)


def preprocess_input(x):
    """Scales RGB pixels in [0, 255] to [-1, 1], as TF-slim and keras.applications' "tf" mode.

    Accepts a NumPy array (returns a new float32 array) or a backend tensor (returns a tensor).
    """
    if isinstance(x, (np.ndarray, list, tuple, int, float)):
        return np.asarray(x, dtype=np.float32) / 127.5 - 1.0
    from keras import ops

    x = ops.cast(x, "float32") if not str(x.dtype).startswith(("float", "bfloat")) else x
    return x / 127.5 - 1.0


@functools.cache
def imagenet_classes() -> tuple[tuple[str, str], ...]:
    """The 1000 ILSVRC-2012 classes in the standard (sorted synset) order: (synset, lemmas)."""
    text = resources.files("inception.resources").joinpath("imagenet_classes.tsv").read_text()
    rows = [line.split("\t") for line in text.splitlines() if line and not line.startswith("#")]
    return tuple((synset, lemmas) for synset, lemmas in rows)


def imagenet_synsets(num_classes: int = 1000) -> list[str]:
    """Class ids by output index: the 1000 synsets, or 1001 with ``background`` at 0."""
    synsets = [s for s, _ in imagenet_classes()]
    if num_classes == 1001:
        return ["background", *synsets]
    if num_classes != 1000:
        raise ValueError(f"ImageNet class names exist for 1000 or 1001 classes, not {num_classes}.")
    return synsets


def display_name(class_id: str) -> str:
    """A readable name: the first lemma of an ImageNet synset, any other id unchanged."""
    return _lemmas().get(class_id, class_id)


@functools.cache
def _lemmas() -> dict[str, str]:
    return {synset: lemmas.split(",")[0] for synset, lemmas in imagenet_classes()}


def class_names(num_classes: int = 1000) -> list[str]:
    """Human-readable names by output index: 1000 classes, or 1001 with ``background`` at 0."""
    return [display_name(s) for s in imagenet_synsets(num_classes)]


def decode_predictions(preds, top: int = 5):
    """Decodes a batch of ImageNet predictions into ``[(synset, name, score), ...]`` per image.

    Works for 1000-class outputs and for slim's 1001-class outputs (index 0 is ``background``,
    returned as synset ``"background"``), as ``keras.applications``' decode_predictions but
    offline.
    """
    preds = np.asarray(preds)
    if preds.ndim != 2 or preds.shape[1] not in (1000, 1001):
        raise ValueError(
            "decode_predictions expects a batch of ImageNet scores of shape (samples, 1000) or "
            f"(samples, 1001); got shape {preds.shape}. For a model with other classes, read "
            "its class names with inception.model_info(model).class_names."
        )
    synsets = imagenet_synsets(preds.shape[1])
    results = []
    for row in preds:
        best = np.argsort(row)[::-1][:top]
        results.append([(synsets[i], display_name(synsets[i]), float(row[i])) for i in best])
    return results
