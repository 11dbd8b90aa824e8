"""``Ensemble``: one Keras model that averages the class probabilities of several classifiers.

The paper's best result (Section 5, Table 5) is an ensemble of one Inception-v4 and three
Inception-ResNet-v2 models whose probabilities are averaged. Members may differ in input size,
input preprocessing and label layout (TF-slim's 1001-class heads put ``background`` at index 0;
other checkpoints have 1000 classes); the ensemble aligns all of them first.

Call contract
-------------
``Ensemble(members)`` is a ``keras.Model`` with

* **input**: one batch of RGB images, float32 pixels in **[0, 255]** (not preprocessed),
  shape ``(batch, H, W, 3)`` with ``(H, W) = ensemble.image_size``. By default ``image_size`` is
  the largest member input size (299 for the released models); pass ``input_shape=(None, None, 3)``
  to accept any size. Inside, each member's branch **resizes** the batch to that member's own
  input size (bilinear, skipped when sizes already match), applies the member's
  **preprocessing** (``"inception"``: ``x / 127.5 - 1``; ``"none"``: unchanged) and runs it.
* **output**: ``(batch, num_classes)`` float32 probabilities that sum to 1 per row, in the
  common label space: ``num_classes`` defaults to the smallest member head (1000 when mixing
  1001- and 1000-class ImageNet heads). A member with ``k`` more outputs than ``num_classes``
  has its first ``k`` columns (``background``) dropped and the rest renormalised; an explicit
  ``label_offsets`` overrides that per member.
* members whose last layer has no softmax are treated as returning logits (softmax is applied
  after the offset columns are dropped, which equals dropping and renormalising probabilities);
  members with an auxiliary head contribute their main output only.
* combination: the weighted arithmetic mean ``sum_i w_i p_i`` with weights normalised to sum 1
  (equal weights by default).

It is registered (``inception>Ensemble``) and saves with ``model.save("x.keras")`` /
``keras.saving.load_model("x.keras")`` (members are stored inside) and exports like any model::

    import inception
    v4 = inception.build("inception_v4", weights="imagenet")          # 1001 or 1000 classes
    r2 = inception.build("inception_resnet_v2", weights="imagenet")
    ens = inception.Ensemble([v4, r2, r2b, r2c])                        # (None, 299, 299, 3)
    probs = ens.predict(images_0_255)                                  # (batch, 1000)
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import layers, ops

PREPROCESSING = {
    "inception": (1.0 / 127.5, -1.0),  # RGB [0, 255] -> [-1, 1] (TF-slim, keras "tf" mode)
    "none": None,  # the member takes [0, 255] pixels itself
}


@keras.saving.register_keras_serializable(package="inception")
class AlignLabels(layers.Layer):
    """Maps one member's output onto the common label space as probabilities.

    Drops the first ``offset`` columns (slim's ``background``), then applies softmax (when the
    member returns logits) or renormalises the remaining probabilities to sum 1.
    """

    def __init__(self, offset: int = 0, from_logits: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.offset = int(offset)
        self.from_logits = bool(from_logits)

    def call(self, x):
        x = ops.cast(x, "float32")[:, self.offset :]
        if self.from_logits:
            return ops.softmax(x, axis=-1)
        return x / ops.maximum(ops.sum(x, axis=-1, keepdims=True), 1e-12)

    def compute_output_shape(self, input_shape):
        n = input_shape[-1]
        return (input_shape[0], None if n is None else n - self.offset)

    def get_config(self):
        return {**super().get_config(), "offset": self.offset, "from_logits": self.from_logits}


@keras.saving.register_keras_serializable(package="inception")
class WeightedMean(layers.Layer):
    """``sum_i w_i x_i`` over a list of equally shaped tensors; ``weights`` sum to 1."""

    def __init__(self, weights: Sequence[float] = (), **kwargs):
        super().__init__(**kwargs)
        self.member_weights = [float(w) for w in weights]

    def call(self, inputs):
        total = inputs[0] * self.member_weights[0]
        for x, w in zip(inputs[1:], self.member_weights[1:], strict=True):
            total = total + x * w
        return total

    def compute_output_shape(self, input_shapes):
        return input_shapes[0]

    def get_config(self):
        return {**super().get_config(), "weights": self.member_weights}


def _as_list(value, n, what):
    if value is None or isinstance(value, (str, int, float, bool)):
        return [value] * n
    value = list(value)
    if len(value) != n:
        raise ValueError(
            f"{what} has {len(value)} entries for {n} ensemble members; give one each."
        )
    return value


def _main_output(model):
    outputs = model.outputs
    if not outputs:
        raise ValueError(f"ensemble member {model.name!r} is not a built functional model.")
    return outputs[0]


def member_num_classes(model) -> int:
    """Width of a member's (main) classifier output."""
    shape = _main_output(model).shape
    if len(shape) != 2 or shape[-1] is None:
        raise ValueError(
            f"ensemble member {model.name!r} must output class scores (batch, classes); its output "
            f"has shape {tuple(shape)}. Build it with include_top=True."
        )
    return int(shape[-1])


def member_returns_logits(model) -> bool:
    """True unless the member's output layer ends in a softmax."""
    layer = _main_output(model)._keras_history.operation
    activation = getattr(layer, "activation", None)
    if activation is None:
        return True
    name = getattr(activation, "__name__", str(activation))
    return "softmax" not in name


def member_image_size(model) -> tuple[int | None, int | None]:
    shape = model.inputs[0].shape
    if len(shape) != 4 or shape[-1] != 3:
        raise ValueError(
            f"ensemble member {model.name!r} must take RGB images (batch, H, W, 3); "
            f"its input has shape {tuple(shape)}."
        )
    return shape[1], shape[2]


@keras.saving.register_keras_serializable(package="inception")
class Ensemble(keras.Model):
    """Weighted mean of member probabilities over a common label space (see module docstring).

    Args:
        members: built Keras classifiers (e.g. ``inception.build(...)``), at least one.
        weights: one non-negative weight per member (normalised to sum 1); default equal.
        input_shape: ``(H, W, 3)`` of the ensemble input; default the largest member size.
        preprocessing: ``"inception"`` (default) or ``"none"``, one for all or one per member.
        label_offsets: columns to drop at the start of each member's output; default
            ``member_classes - num_classes`` (1 for a slim 1001-class head in a 1000 ensemble).
        num_classes: size of the common label space; default the smallest member head.
        from_logits: per-member override of logits detection (``None``: detect).
        interpolation: resize interpolation for members of another input size.
        name: model name.
    """

    def __init__(
        self,
        members,
        weights=None,
        *,
        input_shape=None,
        preprocessing="inception",
        label_offsets=None,
        num_classes=None,
        from_logits=None,
        interpolation="bilinear",
        name="ensemble",
        **kwargs,
    ):
        members = list(members) if not isinstance(members, keras.Model) else [members]
        if not members:
            raise ValueError("an Ensemble needs at least one member model.")
        for m in members:
            if not isinstance(m, keras.Model):
                raise ValueError(f"ensemble members must be Keras models; got {type(m).__name__}.")
        n = len(members)
        widths = [member_num_classes(m) for m in members]
        sizes = [member_image_size(m) for m in members]
        num_classes = int(num_classes or min(widths))
        offsets = _as_list(label_offsets, n, "label_offsets")
        offsets = [w - num_classes if o is None else int(o) for o, w in zip(offsets, widths)]
        for m, o, w in zip(members, offsets, widths):
            if o < 0 or w - o != num_classes:
                raise ValueError(
                    f"member {m.name!r} has {w} classes: label offset {o} does not map it onto "
                    f"{num_classes} common classes (need classes - offset == {num_classes})."
                )
        weights = _as_list(1.0 if weights is None else weights, n, "weights")
        weights = np.asarray(weights, dtype=np.float64)
        if np.any(~np.isfinite(weights)) or np.any(weights < 0) or weights.sum() <= 0:
            raise ValueError(f"ensemble weights must be non-negative, not all 0; got {weights}.")
        weights = (weights / weights.sum()).tolist()
        prep = _as_list(preprocessing, n, "preprocessing")
        for p in prep:
            if p not in PREPROCESSING:
                raise ValueError(
                    f"unknown preprocessing {p!r}; choose one of {', '.join(PREPROCESSING)}."
                )
        logits = _as_list(from_logits, n, "from_logits")
        logits = [
            member_returns_logits(m) if f is None else bool(f) for m, f in zip(members, logits)
        ]
        if input_shape is None:
            known = [s for s in sizes if None not in s]
            input_shape = (*max(known, key=lambda s: s[0] * s[1]), 3) if known else (None, None, 3)
        input_shape = tuple(input_shape)

        # Unique member names: a functional model needs them (three copies of one network).
        seen = {}
        for i, m in enumerate(members):
            if m.name in seen:
                m.name = f"{m.name}_{i}"
            seen[m.name] = i

        images = keras.Input(shape=input_shape, name="images")
        branches = []
        for i, (m, size, p, o, lg) in enumerate(zip(members, sizes, prep, offsets, logits)):
            x = images
            if None not in size and tuple(size) != tuple(input_shape[:2]):
                x = layers.Resizing(*size, interpolation=interpolation, name=f"resize_{i}")(x)
            if PREPROCESSING[p] is not None:
                scale, offset = PREPROCESSING[p]
                x = layers.Rescaling(scale, offset, name=f"preprocess_{i}")(x)
            y = m(x)
            y = y[0] if isinstance(y, (list, tuple)) else y
            branches.append(AlignLabels(o, lg, name=f"align_{i}")(y))
        outputs = WeightedMean(weights, name="mean")(branches) if n > 1 else branches[0]
        super().__init__(images, outputs, name=name, **kwargs)

        self.members = members
        self.member_weights = weights
        self.label_offsets = offsets
        self.member_preprocessing = prep
        self.member_from_logits = logits
        self.num_classes = num_classes
        self.image_size = tuple(input_shape[:2])
        self.interpolation = interpolation

    def get_config(self):
        return {
            "name": self.name,
            "members": [keras.saving.serialize_keras_object(m) for m in self.members],
            "weights": self.member_weights,
            "input_shape": list(self.inputs[0].shape[1:]),
            "preprocessing": self.member_preprocessing,
            "label_offsets": self.label_offsets,
            "num_classes": self.num_classes,
            "from_logits": self.member_from_logits,
            "interpolation": self.interpolation,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["members"] = [
            keras.saving.deserialize_keras_object(m, custom_objects=custom_objects)
            for m in config["members"]
        ]
        return cls(**config)
