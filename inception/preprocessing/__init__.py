"""How images are prepared for a model, and the ImageNet class names.

* ``config``: ``Preprocessing`` (input size, crop, interpolation, scaling), the defaults
  ``INPUT_SIZE`` and ``CROP_FRACTION``, the scalings ``SCALES`` and ``preprocess_input``;
* ``classes``: the ImageNet classes shipped with the package (no network access);
* ``crops``: the evaluation crops (1, 10, 12, 144 per image), resize and scaling;
* ``augment``: TF-slim's training-time preprocessing on encoded images (TensorFlow).
"""

from .classes import (
    class_names,
    decode_predictions,
    display_name,
    imagenet_classes,
    imagenet_synsets,
)
from .config import (
    CROP_FRACTION,
    CROPS,
    INPUT_SIZE,
    INTERPOLATIONS,
    SCALES,
    Preprocessing,
    preprocess_input,
    rescale,
)

__all__ = [
    "CROP_FRACTION", "CROPS", "INPUT_SIZE", "INTERPOLATIONS", "SCALES", "Preprocessing",
    "class_names", "decode_predictions", "display_name", "imagenet_classes", "imagenet_synsets",
    "preprocess_input", "rescale",
]  # fmt: skip
