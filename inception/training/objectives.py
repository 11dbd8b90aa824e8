"""The paper's loss, metrics and learning-rate schedule as Keras objects (any backend).

* :class:`SparseSmoothedCrossEntropy`: cross-entropy of integer labels (or soft targets, e.g.
  MixUp's) with label smoothing (Keras' ``SparseCategoricalCrossentropy`` has no
  ``label_smoothing``).
* :class:`TopKAccuracy`: top-k accuracy in percent, the unit of every accuracy of this project.
* :func:`paper_schedule`: ``ExponentialDecay(staircase=True)`` with an optional
  :class:`LinearWarmup`.
"""

from __future__ import annotations

import keras
from keras import ops

from .paper import PAPER


def is_soft_target(y_true, y_pred) -> bool:
    """Whether ``y_true`` holds one distribution per example (shape ``[batch, K]``, the
    predictions' ``K > 1``) rather than integer labels; static shapes, so fixed at trace
    time."""
    classes = y_pred.shape[-1]
    return (
        len(y_true.shape) == 2
        and len(y_pred.shape) == 2
        and classes is not None
        and classes > 1
        and y_true.shape[-1] == classes
    )


@keras.saving.register_keras_serializable(package="inception")
class SparseSmoothedCrossEntropy(keras.losses.Loss):
    """Cross-entropy between integer labels smoothed over ``K`` classes and the predictions.

    The target of label ``y`` is ``(1 - label_smoothing) * one_hot(y) + label_smoothing / K``
    (Szegedy et al., "Rethinking the Inception Architecture", Section 7), so the loss is
    ``(1 - e) * -log p[y] + e * mean_k(-log p[k])``. Computed in float32 whatever the model's
    compute dtype.

    Soft targets are accepted too: ``y_true`` of shape ``[batch, K]`` (the predictions' shape,
    ``K > 1``; one distribution per example, e.g. MixUp's or CutMix's mixed labels), smoothed
    the same way, ``(1 - e) * y_true + e / K``, and the loss is ``-sum_k target[k] log p[k]``.
    Which of the two is decided by the static rank and shape at trace time; integer labels of
    shape ``[batch]`` or ``[batch, 1]`` take the sparse path as before.

    Args:
        label_smoothing: ``e`` above, in ``[0, 1)``.
        from_logits: whether the predictions are logits (the default) or probabilities.
    """

    def __init__(self, label_smoothing=PAPER["label_smoothing"], from_logits=True,
                 name="smoothed_cross_entropy", **kwargs):  # fmt: skip
        super().__init__(name=name, **kwargs)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1); got {label_smoothing}.")
        self.label_smoothing = float(label_smoothing)
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        y_pred = ops.cast(y_pred, "float32")
        if self.from_logits:
            log_probs = ops.log_softmax(y_pred, axis=-1)
        else:
            log_probs = ops.log(ops.clip(y_pred, 1e-12, 1.0))
        if is_soft_target(y_true, y_pred):
            target = ops.cast(y_true, "float32")
            if self.label_smoothing:
                classes = y_pred.shape[-1]
                target = (1.0 - self.label_smoothing) * target + self.label_smoothing / classes
            return -ops.sum(target * log_probs, axis=-1)
        labels = ops.cast(ops.reshape(y_true, (-1, 1)), "int32")
        nll = -ops.squeeze(ops.take_along_axis(log_probs, labels, axis=-1), axis=-1)
        if not self.label_smoothing:
            return nll
        uniform = -ops.mean(log_probs, axis=-1)
        return (1.0 - self.label_smoothing) * nll + self.label_smoothing * uniform

    def get_config(self):
        return {
            **super().get_config(),
            "label_smoothing": self.label_smoothing,
            "from_logits": self.from_logits,
        }


@keras.saving.register_keras_serializable(package="inception")
class TopKAccuracy(keras.metrics.SparseTopKCategoricalAccuracy):
    """Keras' sparse top-k accuracy, reported in percent; named ``top{k}`` by default.

    Integer labels, or soft targets of the predictions' shape ``[batch, K]`` (see
    :class:`SparseSmoothedCrossEntropy`), whose argmax is taken as the label: for a MixUp or
    CutMix batch this is the accuracy on each example's dominant label (the larger share)."""

    def __init__(self, k=1, name=None, **kwargs):
        super().__init__(k=k, name=name or f"top{k}", **kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = ops.convert_to_tensor(y_true), ops.convert_to_tensor(y_pred)
        if is_soft_target(y_true, y_pred):
            y_true = ops.argmax(y_true, axis=-1)
        return super().update_state(y_true, y_pred, sample_weight=sample_weight)

    def result(self):
        return ops.multiply(super().result(), 100.0)


@keras.saving.register_keras_serializable(package="inception")
class LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """``schedule(step) * min(1, (step + 1) / warmup_steps)``: a linear ramp from 0 over the
    first ``warmup_steps`` steps, then ``schedule`` unchanged."""

    def __init__(self, schedule, warmup_steps):
        self.schedule = schedule
        self.warmup_steps = int(warmup_steps)

    def __call__(self, step):
        rate = self.schedule(step)
        ramp = ops.minimum(1.0, (ops.cast(step, "float32") + 1.0) / max(self.warmup_steps, 1))
        return ops.multiply(rate, ops.cast(ramp, rate.dtype))

    def get_config(self):
        return {
            "schedule": keras.optimizers.schedules.serialize(self.schedule),
            "warmup_steps": self.warmup_steps,
        }

    @classmethod
    def from_config(cls, config):
        schedule = keras.optimizers.schedules.deserialize(config["schedule"])
        return cls(schedule, config["warmup_steps"])


def paper_schedule(peak, decay_steps, decay_rate=PAPER["lr_decay_rate"], warmup_steps=0):
    """``peak * decay_rate ** floor(step / decay_steps)`` (the paper's ``lr_decay_rate`` every
    ``lr_decay_epochs``, ``recipes/paper.json``), after a linear warm-up of ``warmup_steps`` if
    any."""
    schedule = keras.optimizers.schedules.ExponentialDecay(
        float(peak), max(1, int(decay_steps)), float(decay_rate), staircase=True
    )
    return LinearWarmup(schedule, warmup_steps) if warmup_steps else schedule
