"""The ImageNet class names, shipped with the package (no network access), and decoding of
ImageNet predictions."""

from __future__ import annotations

import functools
from importlib import resources

import numpy as np


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
