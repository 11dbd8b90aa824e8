"""Argument checks the commands run before TensorFlow and Keras load.

Loading TensorFlow takes seconds; a misspelt model name, a missing ``.keras`` or weights file, a
missing data folder or an input size below the network's minimum is refused at once instead, in
one line (``inception CMD: error: ...``). Everything here reads only the registry and the
architecture table (``inception.models.registry``, ``networks``), never Keras.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import check_image_folder
from ..models.registry import get_model_config, list_models
from ..weights.manifest import DEFAULT_WEIGHTS, NO_WEIGHTS

WEIGHT_FILE_SUFFIXES = (".h5", ".keras", ".safetensors", ".gz")


def _split(value) -> list[str]:
    """``"a,b"`` -> ``["a", "b"]``; a list or tuple passes through; ``None`` -> ``[]``."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [os.fspath(v) for v in value]
    return [v.strip() for v in os.fspath(str(value)).split(",") if v.strip()]


def check_models(models, files: bool = True) -> list[str]:
    """The entries of ``models`` (``"a,b"`` or a list): registered names or, with ``files``,
    existing ``.keras`` files."""
    entries = _split(models)
    for entry in entries:
        if files and entry.endswith(".keras"):
            if not os.path.isfile(entry):
                raise FileNotFoundError(f"model file {entry!r} does not exist.")
        elif entry not in list_models():
            if not files:
                get_model_config(entry)  # its one-line error
            raise ValueError(
                f"unknown model {entry!r}; give a registered model ({', '.join(list_models())}) "
                "or a .keras file."
            )
    return entries


def check_weights(weights) -> None:
    """A ``--weights`` value (one, or one per model) that names a file must name one that
    exists ('imagenet', manifest entries and 'none' pass)."""
    for spec in _split(weights):
        if spec in NO_WEIGHTS or spec == DEFAULT_WEIGHTS or ":" in spec:
            continue
        if os.path.exists(spec) or os.path.exists(f"{spec}.index"):  # .index: a TF checkpoint
            continue
        if os.sep in spec or spec.endswith(WEIGHT_FILE_SUFFIXES):
            raise FileNotFoundError(f"weights file {spec!r} does not exist.")


def check_image_size(image_size, models) -> None:
    """``--image-size`` (one value, or one per model) is a whole number no smaller than each
    named model's minimum (``.keras`` files keep their own size and are checked when loaded)."""
    sizes = _split(image_size)
    if not sizes:
        return
    entries = _split(models)
    if len(sizes) == 1:
        sizes = sizes * max(len(entries), 1)
    for entry, size in zip(entries, sizes):
        try:
            value = int(size)
        except ValueError:
            raise ValueError(f"--image-size must be a whole number; got {size!r}.") from None
        if entry.endswith(".keras") or entry not in list_models():
            continue
        minimum = get_model_config(entry).min_input_size
        if value < minimum:
            raise ValueError(
                f"--image-size {value} is too small: below {entry}'s minimum of {minimum}."
            )


def check_data(data) -> None:
    """``--data``: ``imagenet2012`` and ``tfds:NAME`` pass (tfds checks them); anything else is a
    folder, which must exist."""
    data = os.fspath(str(data))
    if data == "imagenet2012" or data.startswith("tfds:"):
        return
    check_image_folder(Path(data).expanduser())


def check_devices(devices, exported) -> None:
    """``--devices``: a count or ``all``, and with an exported model (``exported``: their paths)
    1 or ``all`` (``inception.evaluation.devices.check_devices``: no Keras)."""
    from ..evaluation.devices import check_devices as check

    check(devices, exported)


def check_arguments(*, models, weights=None, image_size=None, data=None, files=True,
                    devices=None, exported=()) -> None:  # fmt: skip
    """All of the above for one command line: ``files=False`` for commands that take registered
    names only (``train``); ``devices``: eval's and predict's ``--devices``, ``exported``: their
    exported model files."""
    entries = check_models(models, files=files)
    check_weights(weights)
    check_image_size(image_size, entries)
    if data is not None:
        check_data(data)
    if devices is not None:
        check_devices(devices, exported)


def random_weights(weights, models) -> bool:
    """Whether ``--weights`` (one, or one per model) leaves a named model of ``models`` randomly
    initialised (``.keras`` files bring their own weights)."""
    entries, specs = _split(models), _split(weights)
    if len(specs) == 1:
        specs = specs * len(entries)
    return any(s in NO_WEIGHTS and not e.endswith(".keras") for e, s in zip(entries, specs))
