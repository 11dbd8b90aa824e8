"""What a model knows about itself: architecture, class names, label offset, preprocessing and the
provenance of its weights (``ModelInfo``), kept with the model in memory and in its files.

* In memory: ``inception.build`` and ``inception.load_model`` attach it;
  ``inception.model_info(model)`` reads it (for any other Keras model it is derived from the
  model: its input size, nothing else).
* In files: ``inception.save_model(model, "m.keras")`` writes the model with Keras and adds the
  record as ``inception.json`` inside the ``.keras`` archive (plain ``keras.saving.load_model``
  ignores it); ``.weights.h5`` files carry it as the HDF5 root attribute ``inception``.
  Training and ``inception convert`` write both, so ``inception eval``, ``predict``, ``export``
  and ``serve`` find class names, input size and preprocessing without flags.
"""

from __future__ import annotations

import dataclasses
import json
import os
import zipfile
from dataclasses import dataclass, field

from ..preprocessing import Preprocessing, display_name

ARCHIVE_MEMBER = "inception.json"
H5_ATTRIBUTE = "inception"
FORMAT = 1


@dataclass(frozen=True)
class ModelInfo:
    """The facts a model carries with it.

    Attributes:
        model: registered architecture (``inception_v4``...), ``None`` if unknown.
        variant: ``slim`` or ``paper``.
        class_names: the class id of every output column, in order (ImageNet synsets, the
            sub-folder names of a training folder, a tfds data set's names), ``None`` if unknown.
        label_offset: leading output columns that belong to no class of the data (1 for slim's
            1001-class heads, whose column 0 is ``background``).
        preprocessing: how images are prepared for it (``inception.Preprocessing``).
        weights: where the weights came from (a manifest entry, a file, a training run).
    """

    model: str | None = None
    variant: str | None = None
    class_names: tuple[str, ...] | None = None
    label_offset: int = 0
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    weights: str | None = None

    def __post_init__(self):
        if self.class_names is not None:
            object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))

    @property
    def image_size(self) -> int:
        return int(self.preprocessing.input_size)

    @property
    def num_classes(self) -> int | None:
        return None if self.class_names is None else len(self.class_names)

    def display_names(self) -> list[str] | None:
        """Readable names per output column (ImageNet synsets become their first lemma)."""
        return None if self.class_names is None else [display_name(c) for c in self.class_names]

    def replace(self, **changes) -> ModelInfo:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["class_names"] = None if self.class_names is None else list(self.class_names)
        return {"format": FORMAT, **out}

    @classmethod
    def from_dict(cls, values: dict) -> ModelInfo:
        values = {k: v for k, v in dict(values).items() if k != "format"}
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in values.items() if k in known}  # newer fields are ignored
        values["preprocessing"] = Preprocessing.from_dict(values.get("preprocessing"))
        return cls(**values)


def model_info(model) -> ModelInfo:
    """The ``ModelInfo`` attached to ``model``, or one derived from the model itself (its fixed
    input size; class names unknown)."""
    info = getattr(model, "_inception_info", None)
    if isinstance(info, ModelInfo):
        return info
    size = _input_size(model)
    return ModelInfo(preprocessing=Preprocessing(input_size=size) if size else Preprocessing())


def set_model_info(model, info: ModelInfo):
    """Attaches ``info`` to ``model`` (in memory) and returns the model."""
    if not isinstance(info, ModelInfo):
        raise TypeError(f"expected a ModelInfo, got {type(info).__name__}.")
    model._inception_info = info
    return model


def _input_size(model) -> int | None:
    try:
        shape = model.inputs[0].shape
    except (AttributeError, IndexError, TypeError):
        return None
    return int(shape[1]) if len(shape) == 4 and shape[1] is not None else None


# --- files -------------------------------------------------------------------------------------


def save_model(model, path, info: ModelInfo | None = None) -> str:
    """Saves ``model`` as a ``.keras`` archive (Keras' own format) or a ``.weights.h5`` file,
    with its ``ModelInfo`` (``info`` or the attached one) inside; returns the path."""
    path = os.fspath(path)
    info = info or model_info(model)
    if path.endswith(".weights.h5"):
        model.save_weights(path)
    elif path.endswith(".keras"):
        model.save(path)
    else:
        raise ValueError(f"save to a .keras or .weights.h5 path; got {path!r}.")
    write_info(path, info)
    return path


def write_info(path, info: ModelInfo) -> None:
    """Adds ``info`` to an existing ``.keras`` archive or ``.weights.h5`` file."""
    path = os.fspath(path)
    text = json.dumps(info.to_dict())
    if path.endswith(".keras"):
        with zipfile.ZipFile(path, "a") as archive:
            if ARCHIVE_MEMBER in archive.namelist():
                raise ValueError(f"{path} already holds {ARCHIVE_MEMBER}.")
            archive.writestr(ARCHIVE_MEMBER, text)
    else:
        import h5py

        with h5py.File(path, "a") as f:
            f.attrs[H5_ATTRIBUTE] = text


def read_info(path) -> ModelInfo | None:
    """The ``ModelInfo`` stored in a ``.keras`` or ``.h5`` file, or ``None``."""
    path = os.fspath(path)
    try:
        if path.endswith(".keras"):
            with zipfile.ZipFile(path) as archive:
                if ARCHIVE_MEMBER not in archive.namelist():
                    return None
                return ModelInfo.from_dict(json.loads(archive.read(ARCHIVE_MEMBER)))
        if path.endswith(".h5"):
            import h5py

            with h5py.File(path, "r") as f:
                text = f.attrs.get(H5_ATTRIBUTE)
            return None if text is None else ModelInfo.from_dict(json.loads(text))
    except (OSError, zipfile.BadZipFile, ValueError, KeyError) as exc:
        raise ValueError(f"{path}: cannot read its model record ({exc}).") from None
    return None


def load_model(path, *, compile: bool = False):
    """Loads a ``.keras`` file (``safe_mode``: no code from the file runs) with its
    ``ModelInfo`` attached (derived from the model when the file has none)."""
    import keras

    path = os.fspath(path)
    if not path.endswith(".keras"):
        raise ValueError(f"load_model reads .keras files; got {path!r}.")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model file {path!r} does not exist.")
    try:
        model = keras.saving.load_model(path, compile=compile, safe_mode=True)
    except (ValueError, TypeError, OSError, zipfile.BadZipFile) as exc:
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{path} is not a loadable Keras model: {first}") from None
    info = read_info(path)
    if info is None:
        return model
    own = getattr(model, "_inception_info", None)
    if isinstance(own, ModelInfo):
        # A model that describes its own input as it is rebuilt (an ``Ensemble`` scales per
        # member inside) keeps that description: files written before it did carry a stale one.
        info = info.replace(preprocessing=own.preprocessing)
    return set_model_info(model, info)
