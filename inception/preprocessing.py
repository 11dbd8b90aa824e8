"""Input scaling and ImageNet class names (shipped with the package: no network access)."""

from __future__ import annotations

import functools
from importlib import resources

import numpy as np


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


def class_names(num_classes: int = 1000) -> list[str]:
    """Human-readable names by output index: 1000 classes, or 1001 with ``background`` at 0."""
    names = [lemmas.split(",")[0] for _, lemmas in imagenet_classes()]
    if num_classes == 1001:
        return ["background", *names]
    if num_classes != 1000:
        raise ValueError(f"ImageNet class names exist for 1000 or 1001 classes, not {num_classes}.")
    return names


def decode_predictions(preds, top: int = 5):
    """Decodes a batch of ImageNet predictions into ``[(synset, name, score), ...]`` per image.

    Works for 1000-class outputs and for slim's 1001-class outputs (index 0 is ``background``,
    returned as synset ``"background"``), as ``keras.applications``' decode_predictions but
    offline.
    """
    preds = np.asarray(preds)
    if preds.ndim != 2 or preds.shape[1] not in (1000, 1001):
        raise ValueError(
            "decode_predictions expects a batch of shape (samples, 1000) or (samples, 1001); "
            f"got shape {preds.shape}."
        )
    offset = preds.shape[1] - 1000
    synsets = ["background"] * offset + [s for s, _ in imagenet_classes()]
    names = class_names(preds.shape[1])
    results = []
    for row in preds:
        best = np.argsort(row)[::-1][:top]
        results.append([(synsets[i], names[i], float(row[i])) for i in best])
    return results
