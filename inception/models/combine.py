"""Combining classifiers: member outputs onto the common classes, and the weighted mean.

One implementation for the ``Ensemble`` model (Keras layers, TensorFlow and JAX), evaluation and
prediction (NumPy in, ``keras.ops.convert_to_numpy`` out) and the exported serving graph (TF
tensors): everything is ``keras.ops``, which accepts NumPy arrays and backend tensors alike.
"""

from __future__ import annotations

import numpy as np


def mean_weights(weights, n: int) -> list[float]:
    """The ensemble mean's weights: one non-negative number per member (a single number, or
    ``None`` for equal weights, applies to all), normalised to sum 1."""
    if weights is None or isinstance(weights, (str, int, float)):
        weights = [1.0 if weights is None else weights] * n
    weights = [float(w) for w in weights]
    if len(weights) != n:
        raise ValueError(
            f"weights has {len(weights)} entries for {n} ensemble members; give one each."
        )
    values = np.asarray(weights, dtype=np.float64)
    if not np.all(np.isfinite(values)) or np.any(values < 0) or values.sum() <= 0:
        raise ValueError(f"ensemble weights must be non-negative, not all 0; got {weights}.")
    return (values / values.sum()).tolist()


def member_probabilities(output, columns, from_logits: bool):
    """One member's ``(batch, classes)`` output -> float32 probabilities over the common
    classes: the output ``columns`` that score them, in order (``None``: all), then softmax
    (``from_logits``) or the kept probabilities renormalised to sum 1."""
    from keras import ops  # here: importing Keras registers ``Ensemble``, which imports this

    x = ops.cast(output, "float32")
    if columns is not None:
        x = ops.take(x, list(columns), axis=-1)
    if from_logits:
        return ops.softmax(x, axis=-1)
    return x / ops.maximum(ops.sum(x, axis=-1, keepdims=True), 1e-12)


def weighted_mean(probabilities, weights):
    """``sum_i w_i p_i`` over equally shaped ``probabilities`` (``weights`` sum to 1)."""
    total = probabilities[0] * weights[0]
    for p, w in zip(probabilities[1:], weights[1:], strict=True):
        total = total + p * w
    return total


def align_probabilities(outputs, columns, from_logits, weights=None):
    """The ensemble's probabilities: each member's output mapped onto the common classes
    (``member_probabilities`` with its ``columns`` and ``from_logits``), then their weighted
    mean (``weights`` as ``mean_weights`` takes them; ``None``: equal)."""
    aligned = [
        member_probabilities(y, c, lg)
        for y, c, lg in zip(outputs, columns, from_logits, strict=True)
    ]
    return weighted_mean(aligned, mean_weights(weights, len(aligned)))
