"""How images are prepared for a model: the one record of it, its defaults and the scalings.

``Preprocessing`` is the one record of input size, crop, interpolation and scaling. Each model
config has a default (TF-slim's evaluation), each pretrained weights entry has its own (timm's
checkpoints use a bicubic, square crop), and a trained or converted model carries the one it was
made with (``inception.model_info``); evaluation, prediction, export and ``Ensemble`` read it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

INPUT_SIZE = 299  # height = width of the released models' input
CROP_FRACTION = 0.875  # TF-slim's central crop for evaluation
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
        input_size: height = width of the model input (``INPUT_SIZE``, 299, for the released
            models).
        crop_fraction: share of the image kept by the central crop.
        crop: ``"fraction"`` keeps the central ``crop_fraction`` of each side and resizes it to
            the input (the aspect ratio is not kept; TF-slim's ``central_crop``);
            ``"square"`` keeps the central square of side ``crop_fraction`` x the shorter side
            (timm's resize-then-center-crop).
        interpolation: ``"bilinear"`` or ``"bicubic"`` (resizing the crop to ``input_size``).
        scale: ``"inception"`` (RGB scaled to [-1, 1]) or ``"none"`` (pixels in [0, 255]).
    """

    input_size: int = INPUT_SIZE
    crop_fraction: float = CROP_FRACTION
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
        return rescale(np.asarray(x, dtype=np.float32))
    from keras import ops

    x = ops.cast(x, "float32") if not str(x.dtype).startswith(("float", "bfloat")) else x
    return rescale(x)


def rescale(x, scale: str = "inception"):
    """Applies the scaling ``SCALES[scale]`` to float pixels in [0, 255] (NumPy array or
    tensor of any backend): ``x * factor + offset``, or ``x`` unchanged for ``"none"``."""
    if SCALES[scale] is None:
        return x
    factor, offset = SCALES[scale]
    return x * factor + offset
