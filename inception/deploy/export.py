"""``inception export --format onnx|litert|openvino``: one file (two for OpenVINO) that a
runtime other than TensorFlow loads, with ``labels.txt`` beside it.

The steps: resolve the members' common classes and columns (as evaluation does), wrap them in
one Keras model on the artifact contract (``Ensemble``: input pixels in [0, 255], scaling and,
for members of another size, resizing inside, output probabilities over the common classes),
write it with Keras' exporter for the format, add the record to the file's metadata, and, for
int8, quantize on calibration images and report how well the int8 file agrees with float32.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UsageError
from .artifact import LABELS_FILE, SUFFIXES, Artifact
from .calibration import DEFAULT_LIMIT, calibration_images
from .litert_file import export as export_litert
from .load import load_artifact
from .onnx_file import export as export_onnx
from .openvino_file import export as export_openvino

WRITERS = {"onnx": export_onnx, "litert": export_litert, "openvino": export_openvino}
QUANTIZATIONS = ("int8",)


@dataclass
class Exported:
    """What an export wrote: the model file, the labels beside it and, for int8, the
    agreement with float32 on the calibration images (``None`` for float32)."""

    path: Path
    labels: Path
    agreement: dict | None = None

    def summary(self) -> str:
        if self.agreement is None:
            return ""
        a = self.agreement
        return (
            f"int8 against float32 on {a['images']} calibration images: top-1 agreement "
            f"{100 * a['top1_agreement']:.1f}%, max probability difference "
            f"{a['max_probability_difference']:.4f}"
        )


def check_options(fmt, precision, quantize, calibration_data) -> None:
    """One sentence for a combination this format cannot make."""
    if fmt not in WRITERS:
        raise UsageError(f"unknown format {fmt!r}; choose saved_model, {', '.join(WRITERS)}.")
    if precision not in (None, "auto", "float32"):
        raise UsageError(
            f"--precision {precision} is for SavedModels; {fmt} files are float32 (use --quantize "
            "int8 for a smaller, faster file)."
        )
    if quantize not in (None, *QUANTIZATIONS):
        raise UsageError(f"--quantize {quantize!r}: only int8 is offered.")
    if quantize and not calibration_data:
        raise UsageError("--quantize int8 needs --calibration-data FOLDER (a few hundred images).")
    if calibration_data and not quantize:
        raise UsageError("--calibration-data is for --quantize int8; add it or drop the folder.")


def artifact_classes(members, class_names=None) -> tuple[list | None, list[str]]:
    """``(common classes or None, the class ids the artifact records)``."""
    from ..models import labels as lb

    known = (lb.classes_of(m.info, m.num_classes) for m in members)
    space = next((k for k in known if k is not None), None)  # as evaluation: the first known
    if class_names is not None:
        names = [str(c) for c in class_names]
        size = len(space) if space else min(m.num_classes - m.info.label_offset for m in members)
        if len(names) != size:
            raise UsageError(
                f"{len(names)} class names for a model of {size} classes; give one per class."
            )
        return space, names
    if space is None:
        raise UsageError(
            "the model's class names are unknown: pass --class-names FILE with one name per line "
            "(models trained or converted by inception carry them)."
        )
    return space, list(space)


def wrap(members, space, size: int, weights=None, name: str = "artifact"):
    """One Keras model on the artifact contract over ``members`` (see the module doc)."""
    from ..models import labels as lb
    from ..models.combine import mean_weights
    from ..models.ensemble import Ensemble

    columns = [lb.columns(m.info, m.num_classes, space, size, f"model {m.name}") for m in members]
    return Ensemble([m.model for m in members], weights=mean_weights(weights, len(members)),
                    label_indices=columns, name=name)  # fmt: skip


def _stderr(message: str) -> None:
    import sys

    print(f"inception export: {message}", file=sys.stderr, flush=True)


def default_name(members) -> str:
    """The file name of an export without a name: the model's (an ensemble's joined)."""
    names = [m.info.model or os.path.basename(m.name).split(".")[0] for m in members]
    return "_".join(dict.fromkeys(n.replace("#", "_") for n in names))


def agreement(reference: np.ndarray, other: np.ndarray) -> dict:
    same = np.argmax(reference, axis=-1) == np.argmax(other, axis=-1)
    return {
        "images": int(len(reference)),
        "top1_agreement": float(same.mean()),
        "max_probability_difference": float(np.abs(reference - other).max()),
    }


def export_artifact(
    members,
    out,
    name: str | None,
    fmt: str,
    class_names=None,
    *,
    weights=None,
    precision: str | None = "float32",
    quantize: str | None = None,
    calibration_data=None,
    calibration_limit: int = DEFAULT_LIMIT,
    overwrite: bool = False,
    quiet: bool = True,
    say=None,
) -> Exported:
    """Writes ``out/name.onnx`` (``.tflite``, ``.xml`` + ``.bin``) and ``out/labels.txt``.

    ``members``: resolved ``inception.app.resolve.Member`` objects (several: an ensemble,
    ``weights`` its mean weights). ``class_names``: the recorded class ids (default the models'
    own). ``quantize="int8"`` with ``calibration_data`` (a folder of images): post-training
    int8 quantization, and the agreement with float32 measured on those images. Progress goes
    to ``say`` (default: stderr unless ``quiet``)."""
    from ..models.info import model_info

    if say is None:
        say = (lambda message: None) if quiet else _stderr

    check_options(fmt, precision, quantize, calibration_data)
    name = name or default_name(members)
    for m in members:
        if isinstance(m.model, Artifact):
            raise UsageError(f"{m.name} is already an exported file; export a Keras model.")
    if not name or os.sep in name or "/" in name or name.startswith("."):
        raise UsageError(f"invalid --name {name!r}: use a plain file name such as 'inception'.")
    target = Path(out) / f"{name}{SUFFIXES[fmt]}"
    if target.exists() and not overwrite:
        raise UsageError(f"{target} already exists; pass --overwrite to replace it.")
    space, names = artifact_classes(members, class_names)
    model = wrap(members, space, len(names), weights, name)
    info = model_info(model)
    first = members[0].info
    info = info.replace(
        model=first.model if len(members) == 1 else None,
        variant=first.variant if len(members) == 1 else None,
        class_names=tuple(names),
        weights=first.weights if len(members) == 1 else info.weights,
    )
    size = info.image_size
    calibration = None
    if quantize:
        calibration = calibration_images(calibration_data, info.preprocessing, calibration_limit)
        say(f"calibrating on {len(calibration)} images of {calibration_data}")
    model.predict_on_batch(np.zeros((1, size, size, 3), np.float32))  # built before exporting
    target.parent.mkdir(parents=True, exist_ok=True)
    say(f"writing {target} ({quantize or 'float32'})")
    WRITERS[fmt](model, os.fspath(target), info, calibration)
    labels = target.parent / LABELS_FILE
    labels.write_text("".join(f"{n}\n" for n in names))
    result = Exported(target, labels)
    if calibration is not None:
        artifact = load_artifact(target)
        chunks = [calibration[i : i + 16] for i in range(0, len(calibration), 16)]
        reference = np.concatenate([model.predict_on_batch(c) for c in chunks])
        result.agreement = agreement(reference, np.concatenate([artifact(c) for c in chunks]))
        say(result.summary())
    return result
