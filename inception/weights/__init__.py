"""Pretrained weights: resolving a ``weights=`` argument and loading it into a built model."""

from __future__ import annotations

import os


def load_weights(model, model_name, weights, **build_kwargs):
    """Loads ``weights`` (a converted ``.weights.h5`` path) into ``model``."""
    path = os.fspath(weights)
    if path.endswith(".weights.h5") and os.path.isfile(path):
        model.load_weights(path)
        return model
    raise ValueError(
        f"cannot load weights={weights!r} for {model_name}: pass None, or the path of an existing "
        "converted .weights.h5 file."
    )
