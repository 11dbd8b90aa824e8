"""``Ensemble``: one Keras model that averages the class probabilities of several classifiers.

The paper's best result (Section 5, Table 5) is an ensemble of one Inception-v4 and three
Inception-ResNet-v2 models whose probabilities are averaged. Members may differ in input size,
preprocessing and label layout (TF-slim's 1001-class heads put ``background`` at index 0; other
checkpoints have 1000 classes); the ensemble aligns all of them first, reading each member's
``inception.ModelInfo``.

Call contract
-------------
``Ensemble(members)`` is a ``keras.Model`` with

* **input**: one batch of RGB images, float32 pixels in **[0, 255]** (already cropped, not
  scaled), shape ``(batch, H, W, 3)`` with ``(H, W) = ensemble.image_size``: by default the
  largest member input size (299 for the released models); ``input_shape=(None, None, 3)``
  accepts any size. Each member's branch **resizes** the batch to the member's input size (with
  the member's interpolation, skipped when the sizes match), **scales** it as the member expects
  (``inception.preprocessing.SCALES``: ``"inception"`` to [-1, 1]; ``"none"``: unchanged) and
  runs it.
* **output**: ``(batch, num_classes)`` float32 probabilities that sum to 1 per row, over the
  common classes: those of the first member whose classes are known (``inception.models.labels``;
  1000-wide heads count as ImageNet's), matched by name in the others; slim's ``background`` column
  is dropped and the rest renormalised. Members whose classes are unknown are matched by position
  (``num_classes`` defaults to the smallest head; leading extra columns are dropped), as are all
  members when ``label_offsets`` is given.
* members whose last layer has no softmax are treated as returning logits (softmax is applied
  to the kept columns); members with an auxiliary head contribute their main output only.
* combination: the weighted arithmetic mean ``sum_i w_i p_i``, weights normalised to sum 1
  (alignment and mean are ``inception.models.combine``'s, shared with evaluation and export).

It is registered (``inception>Ensemble``): ``model.save("x.keras")`` stores the members inside,
and the file loads with ``keras.saving.load_model("x.keras")`` once ``inception`` is imported::

    import inception
    v4 = inception.build("inception_v4", weights="imagenet")
    r2 = inception.build("inception_resnet_v2", weights="imagenet")
    ens = inception.Ensemble([v4, r2, r2b, r2c])                        # (None, 299, 299, 3)
    probs = ens.predict(images_0_255)                                  # (batch, 1000)
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from ..preprocessing import SCALES, Preprocessing
from . import labels as lb
from .combine import mean_weights, member_probabilities, weighted_mean
from .info import ModelInfo, model_info, set_model_info


@keras.saving.register_keras_serializable(package="inception")
class AlignLabels(layers.Layer):
    """Maps one member's output onto the common classes as probabilities: keeps the columns
    ``indices`` (or drops the first ``offset``), then applies softmax (when the member returns
    logits) or renormalises the kept probabilities to sum 1."""

    returns_probabilities = True  # read by ``member_returns_logits``: a nested Ensemble

    def __init__(self, offset: int = 0, from_logits: bool = False, indices=None, **kwargs):
        super().__init__(**kwargs)
        self.offset = int(offset)
        self.from_logits = bool(from_logits)
        self.indices = None if indices is None else [int(i) for i in indices]

    def call(self, x):
        if self.indices is None:
            x = x[:, self.offset :]
        return member_probabilities(x, self.indices, self.from_logits)

    def compute_output_shape(self, input_shape):
        if self.indices is not None:
            return (input_shape[0], len(self.indices))
        n = input_shape[-1]
        return (input_shape[0], None if n is None else n - self.offset)

    def get_config(self):
        return {**super().get_config(), "offset": self.offset, "from_logits": self.from_logits,
                "indices": self.indices}  # fmt: skip


@keras.saving.register_keras_serializable(package="inception")
class WeightedMean(layers.Layer):
    """``sum_i w_i x_i`` over a list of equally shaped tensors; ``weights`` sum to 1."""

    returns_probabilities = True

    def __init__(self, weights: Sequence[float] = (), **kwargs):
        super().__init__(**kwargs)
        self.member_weights = [float(w) for w in weights]

    def call(self, inputs):
        return weighted_mean(inputs, self.member_weights)

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
    if getattr(layer, "returns_probabilities", False):  # an Ensemble's own output
        return False
    activation = getattr(layer, "activation", None)
    if activation is None:
        name = type(layer).__name__
        return "softmax" not in name.lower()
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


def label_columns(members, num_classes=None, label_offsets=None):
    """The common classes (``None`` if unknown) and, per member, the output columns that score
    them, in order (see the module docstring)."""
    widths = [member_num_classes(m) for m in members]
    infos = [model_info(m) for m in members]
    known = [lb.classes_of(i, w) for i, w in zip(infos, widths)]
    space = next((k for k in known if k is not None), None) if label_offsets is None else None
    if space is not None and num_classes is not None and len(space) != int(num_classes):
        space = None  # an explicit class count: match by position
    size = len(space) if space is not None else int(num_classes or min(widths))
    offsets = _as_list(label_offsets, len(members), "label_offsets")
    out = []
    for m, info, width, offset, names in zip(members, infos, widths, offsets, known):
        if space is None or names is None:
            o = width - size if offset is None else int(offset)
            if o < 0 or width - o != size:
                raise ValueError(
                    f"member {m.name!r} has {width} classes: label offset {o} does not map it onto "
                    f"{size} common classes (need classes - offset == {size})."
                )
            out.append(list(range(o, width)))
        else:
            out.append(lb.columns(info, width, space, size, f"member {m.name!r}"))
    return space, size, out


def own_preprocessing(first: Preprocessing, input_size: int | None) -> Preprocessing:
    """What an Ensemble's caller does to an image: the first member's crop at the ensemble's input
    size, and no scaling: the ensemble takes [0, 255] pixels and scales per member inside."""
    return first.replace(input_size=input_size or first.input_size, scale="none")


@keras.saving.register_keras_serializable(package="inception")
class Ensemble(keras.Model):
    """Weighted mean of member probabilities over common classes (see the module docstring).

    Args:
        members: built Keras classifiers (e.g. ``inception.build(...)``), at least one.
        weights: one non-negative weight per member (normalised to sum 1); default equal.
        input_shape: ``(H, W, 3)`` of the ensemble input; default the largest member size.
        preprocessing: ``"inception"`` or ``"none"``, one for all or one per member; default
            each member's own (``ModelInfo.preprocessing.scale``).
        label_offsets: match members by position, dropping this many leading columns of each.
        num_classes: size of the common label space (matched by position); default: the first
            member's classes.
        from_logits: per-member override of logits detection (``None``: detect).
        interpolation: resize interpolation for members of another input size; default each
            member's own.
        name: model name.
    """

    def __init__(
        self,
        members,
        weights=None,
        *,
        input_shape=None,
        preprocessing=None,
        label_offsets=None,
        num_classes=None,
        from_logits=None,
        interpolation=None,
        name="ensemble",
        label_indices=None,
        member_infos=None,
        **kwargs,
    ):
        members = list(members) if not isinstance(members, keras.Model) else [members]
        if not members:
            raise ValueError("an Ensemble needs at least one member model.")
        for m in members:
            if not isinstance(m, keras.Model):
                raise ValueError(f"ensemble members must be Keras models; got {type(m).__name__}.")
        n = len(members)
        for m, stored in zip(members, _as_list(member_infos, n, "member_infos")):
            if stored is not None:
                set_model_info(m, ModelInfo.from_dict(stored))
        infos = [model_info(m) for m in members]
        sizes = [member_image_size(m) for m in members]
        if label_indices is not None:  # a saved ensemble: the columns as they were resolved
            indices = [[int(c) for c in cols] for cols in label_indices]
            names = lb.output_classes(infos[0], member_num_classes(members[0]))
            space = None if names is None else [names[c] for c in indices[0]]
        else:
            space, _, indices = label_columns(members, num_classes, label_offsets)
        weights = mean_weights(weights, n)
        prep = [p or i.preprocessing.scale for p, i in zip(_as_list(preprocessing, n, "x"), infos)]
        for p in prep:
            if p not in SCALES:
                raise ValueError(f"unknown preprocessing {p!r}; choose one of {', '.join(SCALES)}.")
        interp = [p or i.preprocessing.interpolation
                  for p, i in zip(_as_list(interpolation, n, "interpolation"), infos)]  # fmt: skip
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
        for i, (m, size, p, cols, lg, ip) in enumerate(
            zip(members, sizes, prep, indices, logits, interp)
        ):
            x = images
            if None not in size and tuple(size) != tuple(input_shape[:2]):
                x = layers.Resizing(*size, interpolation=ip, name=f"resize_{i}")(x)
            if SCALES[p] is not None:
                scale, offset = SCALES[p]
                x = layers.Rescaling(scale, offset, name=f"preprocess_{i}")(x)
            y = m(x)
            y = y[0] if isinstance(y, (list, tuple)) else y
            branches.append(AlignLabels(from_logits=lg, indices=cols, name=f"align_{i}")(y))
        outputs = WeightedMean(weights, name="mean")(branches) if n > 1 else branches[0]
        super().__init__(images, outputs, name=name, **kwargs)

        self.members = members
        self.member_weights = weights
        self.label_indices = indices
        self.member_preprocessing = prep
        self.member_from_logits = logits
        self.member_interpolation = interp
        self.num_classes = len(indices[0])
        self.image_size = tuple(input_shape[:2])
        set_model_info(self, ModelInfo(
            class_names=space,
            preprocessing=own_preprocessing(infos[0].preprocessing, self.image_size[0]),
            weights="ensemble of " + ", ".join(i.weights or m.name for i, m in zip(infos, members)),
        ))  # fmt: skip

    def call(self, inputs, training=False):
        """Inference unless ``training=True`` is passed: members run with their moving
        statistics and without dropout when the ensemble is called directly."""
        return super().call(inputs, training=training)

    def get_config(self):
        return {
            "name": self.name,
            "members": [keras.saving.serialize_keras_object(m) for m in self.members],
            "member_infos": [model_info(m).to_dict() for m in self.members],
            "weights": self.member_weights,
            "input_shape": list(self.inputs[0].shape[1:]),
            "preprocessing": self.member_preprocessing,
            "label_indices": self.label_indices,
            "from_logits": self.member_from_logits,
            "interpolation": self.member_interpolation,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["members"] = [
            keras.saving.deserialize_keras_object(m, custom_objects=custom_objects)
            for m in config["members"]
        ]
        return cls(**config)
