"""The Python API of the operations on a model: ``inception.evaluate``, ``predict``, ``export``
and ``convert``, the functions behind ``inception eval``, ``predict``, ``export`` and ``convert``.

All four take the same model spec, resolved inside by ``inception.app.resolve``:

* a registered model name (``"inception_v4"``) with ``weights=``: ``"imagenet"`` (default), a
  manifest entry (``"timm:inception_v4.tf_in1k"``), ``"none"`` (random initialisation), a
  ``.weights.h5`` / ``.keras`` file or a source checkpoint (converted on the fly);
* the path of a ``.keras`` file (a whole model or ``Ensemble``; ``weights`` is ignored);
* a built Keras model (``weights`` is ignored);
* a list of those (or ``"name,name"``): an ensemble, with one ``weights`` value for all members
  or one per member.

This module sits above evaluation, serving and weights (and is imported by nothing inside the
package), so it may use all of them.
"""

from __future__ import annotations

import os
from pathlib import Path

import keras

from .app.resolve import DEFAULT_WEIGHTS, check_entry, per_member, resolve_all, split_list
from .evaluation import evaluator
from .evaluation import predict as prediction
from .models.ensemble import Ensemble
from .models.info import save_model
from .serving.export import class_names_for, export_saved_model

__all__ = ["convert", "evaluate", "export", "predict"]

SPEC = "a registered model name, a .keras path, a built Keras model, or a list of those"
_ONE = (str, os.PathLike, keras.Model)


def check_spec(models, weights=DEFAULT_WEIGHTS) -> list:
    """The entries of a model spec (see the module doc), checked before anything is built or
    read: ``TypeError`` for a value of the wrong kind, ``ValueError`` for an unknown name or a
    ``weights`` list of the wrong length, ``FileNotFoundError`` for a missing ``.keras`` file."""
    if not isinstance(models, (*_ONE, list, tuple)):
        raise TypeError(f"models must be {SPEC}; got {type(models).__name__}.")
    entries = split_list(models)
    if not entries:
        raise ValueError(f"no model given; pass {SPEC}.")
    for entry in entries:
        if not isinstance(entry, _ONE):
            raise TypeError(
                f"each model must be a registered name, a .keras path or a built Keras model; "
                f"got {type(entry).__name__} {entry!r:.60}."
            )
        check_entry(entry)
    if weights is not None and not isinstance(weights, (str, os.PathLike, list, tuple)):
        raise TypeError(
            "weights must be 'imagenet', a manifest entry, 'none', a file path, or a list of "
            f"those (one per model); got {type(weights).__name__}."
        )
    per_member(weights, len(entries), "weights", DEFAULT_WEIGHTS)
    return entries


def evaluate(models, data=None, *, weights=DEFAULT_WEIGHTS, **options) -> dict:
    """Top-1 / top-5 accuracy (percent) of each model of ``models`` and of their ensemble on
    ``data`` (``"imagenet2012"``, ``"tfds:NAME"`` or a folder of class folders).

    ``options`` are those of ``inception.evaluation.evaluator.evaluate`` (``split``, ``crops``,
    ``batch_size``, ``limit``, ``image_size``, ``precision``, ``ensemble_weights``, ``source``,
    ``devices``, ...); the result is its dict (``"models"``: one row per model, ``"ensemble"``;
    ``"backend"``, ``"strategy"`` and ``"devices"``: where it ran).

    ``devices``: how many local devices to run on, ``"all"`` (default: every GPU, else every
    CPU device; a ``tf.distribute.MirroredStrategy`` on TensorFlow, ``DataParallel`` on JAX) or
    a count (``1``: no strategy); the results are those of one device.
    """
    check_spec(models, weights)
    return evaluator.evaluate(models, data, weights=weights, **options)


def predict(models, inputs, *, weights=DEFAULT_WEIGHTS, **options) -> list[dict]:
    """The top classes of each input (an image file, a folder of them, a URL, or a list of
    those), in input order: ``[{"input", "predictions": [{"label", "class", "probability"}]}
    | {"input", "error"}]``; several models: their probabilities averaged.

    ``options`` are those of ``inception.evaluation.predict.predict`` (``top``, ``crops``,
    ``class_names``, ``num_classes``, ``image_size``, ``micro_batch``, ``precision``,
    ``devices``: as in ``evaluate``).
    """
    check_spec(models, weights)
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    return prediction.predict(inputs, models, weights=weights, **options)


def export(
    models,
    out,
    *,
    name: str | None = None,
    version: int = 1,
    format: str = "saved_model",
    weights=DEFAULT_WEIGHTS,
    image_size: int | None = None,
    num_classes: int | None = None,
    variant: str | None = None,
    class_names=None,
    ensemble_weights=None,
    precision: str | None = "auto",
    **options,
) -> Path:
    """Writes ``out/name/version/``, a SavedModel for TensorFlow Serving (signatures
    ``serving_default``, ``predict_pixels``, ``classify``), and returns its path; with
    ``format="onnx"``, ``"litert"`` or ``"openvino"``, writes ``out/name.onnx`` (``.tflite``,
    ``.xml`` + ``.bin``) and ``out/labels.txt`` instead (``inception.deploy``: float32 pixels
    0..255 in, probabilities out) and returns the model file's path.

    Args:
        models, weights: the model spec (several models: an ensemble).
        out: the model base directory; ``name``, ``version``: the folders under it (other
            formats: ``name`` is the file name, default the model's; ``version`` is unused).
        format: ``"saved_model"`` (default), ``"onnx"``, ``"litert"`` or ``"openvino"``.
        image_size, num_classes, variant: for models built from a name (as in ``evaluate``).
        class_names: the names the export returns (a list, or a labels file with one name per
            line); default the models' own.
        ensemble_weights: one weight per model for the ensemble mean (default equal).
        precision: ``"auto"`` (default, as ``inception export``), ``"float32"``, ``"bfloat16"``,
            ``"float16"``, or ``None`` to export the models as they are.
        options: those of ``inception.serving.export.export_saved_model`` (``top_k``,
            ``crop_fraction``, ``max_image_pixels``, ``overwrite``, ``warmup``, ``quiet``);
            other formats: those of ``inception.deploy.export.export_artifact``
            (``quantize="int8"`` with ``calibration_data=FOLDER``, ``overwrite``).
    """
    entries = check_spec(models, weights)
    members = resolve_all(
        entries, weights, image_size=image_size, num_classes=num_classes, variant=variant
    )
    if isinstance(class_names, (str, os.PathLike)):  # a labels file
        class_names = class_names_for(members, os.fspath(class_names))[1]
    if ensemble_weights is not None:
        ensemble_weights = per_member(ensemble_weights, len(members), "ensemble_weights")
        ensemble_weights = [float(w) for w in ensemble_weights]
    if format != "saved_model":
        from .deploy.export import export_artifact

        return export_artifact(
            members, out, name, format,
            class_names, weights=ensemble_weights, precision=precision, **options,
        ).path  # fmt: skip
    if name is None:
        raise ValueError("a SavedModel export needs name= (the folder under out).")
    return export_saved_model(
        members, out, name, version, class_names, weights=ensemble_weights,
        precision=precision, **options,
    )  # fmt: skip


def convert(
    models,
    out,
    *,
    weights=DEFAULT_WEIGHTS,
    image_size: int | None = None,
    num_classes: int | None = None,
    variant: str | None = None,
    ensemble_weights=None,
) -> str:
    """Builds the model spec and saves it, with its ``ModelInfo``, as ``out``: a ``.weights.h5``
    file (weights only, loaded with ``weights=out``) or a ``.keras`` file (the whole model).
    Returns ``out``.

    This is the Python form of ``inception convert``: ``weights`` may be a manifest entry (the
    checkpoint is downloaded and verified) or a source checkpoint (TF-slim, timm, Keras h5),
    converted into the registered architecture. Several models are saved as one ``Ensemble``
    (``ensemble_weights``: its member weights), which needs a ``.keras`` ``out``.
    """
    entries = check_spec(models, weights)
    out = os.fspath(out)
    if not out.endswith((".weights.h5", ".keras")):
        raise ValueError(f"out must end with .weights.h5 or .keras; got {out!r}.")
    if len(entries) > 1 and not out.endswith(".keras"):
        raise ValueError(
            f"several models are saved as one Ensemble, in a .keras file; got {out!r}."
        )
    members = resolve_all(
        entries, weights, image_size=image_size, num_classes=num_classes, variant=variant
    )
    if len(members) == 1:
        model = members[0].model
    else:
        model = Ensemble([m.model for m in members], weights=ensemble_weights)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    return save_model(model, out)
