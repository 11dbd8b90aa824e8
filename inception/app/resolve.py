"""From what a user names to a built model: one resolver for ``eval``, ``predict`` and ``export``.

A member is named by

* a registered model name with ``weights``: ``"imagenet"`` or a manifest entry (pretrained),
  ``"none"`` (random initialisation), a ``.weights.h5`` file (a conversion or a training run; its
  stored record gives class count, variant and input size), a ``.keras`` file (a whole model of
  that architecture) or a source checkpoint (converted on the fly);
* a ``.keras`` file (a whole model: single network or ``Ensemble``);
* a built Keras model;
* an exported ``.onnx``, ``.tflite`` or OpenVINO ``.xml`` file, run in its own runtime
  (``inception.deploy``; ``weights``, ``variant`` and ``precision`` do not apply).

Each resolved model carries its ``ModelInfo`` (class names, preprocessing, provenance), so
callers need no flags for what the artifact already knows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..deploy.artifact import Artifact, format_of
from ..deploy.load import load_artifact
from ..errors import UsageError
from ..models.info import ModelInfo, load_model, model_info, read_info
from ..models.registry import get_model_config, list_models
from ..weights.manifest import DEFAULT_WEIGHTS, NO_WEIGHTS
from .builders import build


@dataclass
class Member:
    """A resolved model: the name shown in tables, the Keras model, where its weights are from."""

    name: str
    model: object
    weights: str

    @property
    def info(self) -> ModelInfo:
        return model_info(self.model)

    @property
    def num_classes(self) -> int:
        """Width of the (main) output."""
        from ..models.ensemble import member_num_classes

        if isinstance(self.model, Artifact):
            return self.model.num_classes
        return member_num_classes(self.model)

    @property
    def returns_logits(self) -> bool:
        from ..models.ensemble import member_returns_logits

        return False if isinstance(self.model, Artifact) else member_returns_logits(self.model)


def split_list(value) -> list:
    """``"a,b"`` -> ``["a", "b"]``; a list passes through; ``None`` -> ``[]``."""
    import keras

    if value is None:
        return []
    if isinstance(value, (str, os.PathLike)):
        return [v.strip() for v in os.fspath(value).split(",") if v.strip()]
    if isinstance(value, keras.Model):
        return [value]
    return list(value)


def per_member(values, n: int, flag: str, default=None) -> list:
    """One value for every member, or exactly one per member."""
    values = split_list(values)
    if not values:
        return [default] * n
    if len(values) == 1:
        return values * n
    if len(values) != n:
        raise ValueError(
            f"got {len(values)} {flag} values for {n} models; give one value for all models or "
            "exactly one per model, in the order of --model."
        )
    return values


def check_entry(entry) -> None:
    """Fails fast (before data is read) on a name that is neither registered nor a file."""
    import keras

    if isinstance(entry, keras.Model):
        return
    entry = os.fspath(entry)
    if entry.endswith(".keras") or format_of(entry):
        if not os.path.isfile(entry):
            raise FileNotFoundError(f"model file {entry!r} does not exist.")
        return
    if entry not in list_models():
        raise ValueError(
            f"unknown model {entry!r}; give a registered model ({', '.join(list_models())}), "
            "a .keras file or an exported .onnx, .tflite or .xml file."
        )


def resolve(entry, weights=DEFAULT_WEIGHTS, *, image_size=None, num_classes=None, variant=None):
    """One ``Member`` from a name, a ``.keras`` path or a Keras model (see the module doc)."""
    import keras

    if isinstance(entry, keras.Model):
        return Member(entry.name, entry, model_info(entry).weights or "given model")
    check_entry(entry)
    entry = os.fspath(entry)
    if entry.endswith(".keras"):
        return Member(os.path.basename(entry), _sized(load_model(entry), image_size), entry)
    if format_of(entry):
        return Member(os.path.basename(entry), load_artifact(entry, image_size), entry)
    config = get_model_config(entry)
    spec = DEFAULT_WEIGHTS if weights is None else os.fspath(weights)
    kw = {"variant": variant} if variant else {}
    if spec in NO_WEIGHTS:
        model = _build(entry, None, image_size or config.input_size, num_classes or 1000, kw)
        return Member(entry, model, "none")
    if spec.endswith(".keras"):
        model = load_model(spec)
        stored = model_info(model).model
        if stored not in (None, entry):
            raise ValueError(f"{spec} holds a {stored}, not {entry}: pass --model {stored}.")
        return Member(entry, _sized(model, image_size), spec)
    stored = read_info(spec) if spec.endswith(".h5") and os.path.isfile(spec) else None
    # the weights decide the class count (num_classes applies to random initialisation only)
    classes = (stored.num_classes if stored else None) or _h5_classes(spec) or 1000
    size = image_size or (stored.image_size if stored else config.input_size)
    if stored is not None:
        kw.setdefault("variant", stored.variant or config.default_variant)
    return Member(entry, _build(entry, spec, size, classes, kw), spec)


def resolve_all(
    models, weights=DEFAULT_WEIGHTS, *, image_size=None, num_classes=None, variant=None
):
    """``resolve`` for every entry of ``models`` (``"a,b"`` or a list), with one ``weights``
    value for all or one per model; unknown names fail before anything is built."""
    entries = split_list(models)
    if not entries:
        raise ValueError("no model given; name one or more, e.g. --model inception_v4.")
    for entry in entries:
        check_entry(entry)
    sources = per_member(weights, len(entries), "--weights", DEFAULT_WEIGHTS)
    members = [
        resolve(e, w, image_size=image_size, num_classes=num_classes, variant=variant)
        for e, w in zip(entries, sources)
    ]
    seen = {}
    for m in members:  # unique names in tables: "inception_v4", "inception_v4#2"
        seen[m.name] = seen.get(m.name, 0) + 1
        if seen[m.name] > 1:
            m.name = f"{m.name}#{seen[m.name]}"
    return members


def optimize(members, precision: str | None) -> str | None:
    """Replaces each member's model by ``inception.optimize_for_inference(model, precision)``
    (folded BatchNorm, arithmetic in ``precision``); returns the precision used, and why."""
    if precision is None:
        return None
    exported = [m for m in members if isinstance(m.model, Artifact)]
    if exported and precision != "float32":
        raise UsageError(
            f"{exported[0].name} runs as it was exported; --precision {precision} applies to "
            "Keras models only (drop it, or export with --quantize int8)."
        )
    members = [m for m in members if not isinstance(m.model, Artifact)]
    if not members:
        return "as exported"
    from ..optimize import optimization_report, optimize_for_inference

    for m in members:
        m.model = optimize_for_inference(m.model, precision)
    report = optimization_report(members[0].model)
    return report.precision if precision != "auto" else f"{report.precision} ({report.reason})"


def _build(name, weights, size, classes, kw):
    config = get_model_config(name)
    if int(size) < config.min_input_size:
        raise ValueError(
            f"--image-size {size} is below {name}'s minimum of {config.min_input_size}."
        )
    return build(name, weights=weights, classes=int(classes), input_shape=(size, size, 3), **kw)


def _sized(model, image_size):
    """A loaded model keeps its own input size; a different ``--image-size`` is an error."""
    own = model_info(model).image_size
    fixed = model.inputs[0].shape[1]
    if image_size and fixed is not None and int(image_size) != int(fixed):
        raise ValueError(
            f"{model.name} takes {fixed}x{fixed} images; drop --image-size {image_size} "
            f"(the model was saved at {own})."
        )
    return model


def _h5_classes(path) -> int | None:
    """Width of the (first) classifier stored in a Keras 3 ``.weights.h5`` file."""
    import h5py

    if not os.path.isfile(path):
        return None
    try:
        with h5py.File(path, "r") as f:
            layers = f.get("layers", {})
            dense = sorted(
                (n for n in layers if n == "dense" or n.startswith("dense_")),
                key=lambda n: int(n.rsplit("_", 1)[1]) if "_" in n else 0,
            )
            return int(layers[dense[0]]["vars"]["1"].shape[0]) if dense else None
    except OSError:
        return None
