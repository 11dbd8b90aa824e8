"""Readers for the supported source checkpoints. None of them executes code from the file: TF
checkpoints are read by ``tf.train.load_checkpoint``, safetensors by ``safetensors.numpy``, h5 by
``h5py``; no pickle anywhere.

Each reader returns a ``Source``: the format name and a dict ``key -> numpy array``.
"""

from __future__ import annotations

import os
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..preprocessing import INPUT_SIZE

FORMATS = ("slim", "timm", "keras")
# The most a checkpoint archive may extract to: slim's largest (Inception-ResNet-v2) holds
# about 0.5 GB; a member or a total past this is refused before anything is written.
MAX_EXTRACT_BYTES = 4 * 1024**3


class WeightsError(ValueError):
    """A checkpoint that cannot be used as asked: printed by the CLI as one line."""


@dataclass
class Source:
    format: str
    path: str
    tensors: dict[str, np.ndarray]
    layers: list[str] = field(default_factory=list)  # keras h5: layer names in file order


def detect_format(path: str) -> str:
    """``slim`` (TF1/TF2 checkpoint prefix, folder or .tar.gz), ``timm`` (.safetensors),
    ``keras`` (legacy keras h5), or ``converted`` (a Keras 3 ``.weights.h5`` of this project)."""
    p = str(path)
    if p.endswith((".tar.gz", ".tgz", ".tar")):
        return "slim"
    if p.endswith(".safetensors"):
        return "timm"
    if p.endswith((".h5", ".hdf5")):
        import h5py

        with h5py.File(p, "r") as f:
            if "layer_names" in f.attrs or "model_weights" in f:
                return "keras"
            if "layers" in f or "vars" in f:
                return "converted"
        raise WeightsError(f"{p} is an HDF5 file but neither a Keras h5 nor a .weights.h5 file.")
    if p.endswith(".keras"):
        return "keras_archive"
    if _checkpoint_prefix(p):
        return "slim"
    raise WeightsError(
        f"cannot tell the format of {p!r}: expected a TF-slim checkpoint (prefix, folder or "
        ".tar.gz), a timm .safetensors file, a Keras .h5 file, or a converted .weights.h5."
    )


def read_source(path: str, fmt: str | None = None) -> Source:
    path = os.fspath(path)
    if not os.path.exists(path) and not _checkpoint_prefix(path):
        raise FileNotFoundError(f"checkpoint {path!r} does not exist.")
    fmt = fmt or detect_format(path)
    if fmt == "slim":
        return read_slim(path)
    if fmt == "timm":
        return read_safetensors(path)
    if fmt == "keras":
        return read_keras_h5(path)
    raise WeightsError(f"unsupported source format {fmt!r}; choose one of {', '.join(FORMATS)}.")


# --- TF-slim -------------------------------------------------------------------------------------


def _checkpoint_prefix(path: str) -> str | None:
    """The checkpoint prefix for ``path``: a prefix with ``.index``, a V1 checkpoint file, or a
    folder holding exactly one checkpoint."""
    p = Path(path)
    if Path(f"{path}.index").is_file():
        return path
    if p.is_file() and p.suffix in (".ckpt", ".index"):
        return str(p.with_suffix("")) if p.suffix == ".index" else path
    if p.is_dir():
        found = sorted({str(f.with_suffix("")) for f in p.rglob("*.index")})
        found += [str(f) for f in p.rglob("*.ckpt") if f.is_file()]
        if len(found) == 1:
            return found[0]
    return None


def read_slim(path: str) -> Source:
    """Reads a TF1 name-based checkpoint (V1 or V2), a folder holding one, or slim's .tar.gz."""
    if path.endswith((".tar.gz", ".tgz", ".tar")):
        with tempfile.TemporaryDirectory(prefix="inception-slim-") as tmp:
            _extract_checkpoint(path, tmp)
            source = read_slim(tmp)
            return Source("slim", path, source.tensors)
    prefix = _checkpoint_prefix(path)
    if prefix is None:
        raise WeightsError(f"no single TF checkpoint found at {path!r}.")
    import tensorflow as tf

    try:
        reader = tf.train.load_checkpoint(prefix)
    except Exception as exc:  # tf raises DataLossError, NotFoundError, ...
        raise WeightsError(f"cannot read the TF checkpoint {prefix!r}: {exc}") from None
    names = reader.get_variable_to_shape_map()
    tensors = {n: np.asarray(reader.get_tensor(n)) for n in names}
    return Source("slim", path, tensors)


def _extract_checkpoint(archive: str, dest: str) -> None:
    """Extracts only checkpoint files, refusing links and paths outside ``dest``."""
    try:
        with tarfile.open(archive) as tar:
            members = [
                m
                for m in tar.getmembers()
                if m.isfile() and (".ckpt" in m.name or m.name.endswith(".index"))
            ]
            for m in members:
                target = os.path.realpath(os.path.join(dest, m.name))
                if not target.startswith(os.path.realpath(dest) + os.sep):
                    raise WeightsError(f"{archive}: member {m.name!r} escapes the archive.")
            if not members:
                raise WeightsError(f"{archive} holds no TF checkpoint (*.ckpt*, *.index).")
            total = sum(m.size for m in members)
            if total > MAX_EXTRACT_BYTES:
                raise WeightsError(
                    f"{archive} would extract {total} bytes of checkpoint files, over the cap "
                    f"of {MAX_EXTRACT_BYTES} bytes (sources.MAX_EXTRACT_BYTES); it is not a "
                    "TF-slim checkpoint archive: download it again or extract it yourself and "
                    "pass the checkpoint prefix."
                )
            if hasattr(tarfile, "data_filter"):
                tar.extractall(dest, members=members, filter="data")
            else:  # Python < 3.10.12: members were checked above
                tar.extractall(dest, members=members)
    except (tarfile.TarError, EOFError, OSError) as exc:
        cause = (str(exc).splitlines() or [type(exc).__name__])[0].rstrip(":")
        raise WeightsError(f"{archive} is not a readable tar archive ({cause}).") from None


# --- timm safetensors ----------------------------------------------------------------------------


def read_safetensors(path: str) -> Source:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        tensors = load_file(path)
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{path} is not a readable safetensors file ({exc}).") from None
    return Source("timm", path, {k: np.asarray(v) for k, v in tensors.items()})


# --- Keras h5 ------------------------------------------------------------------------------------


def read_keras_h5(path: str) -> Source:
    """Reads a legacy Keras h5 weights file (``keras.applications``' downloads, or the
    ``model_weights`` group of a model saved as .h5). Keys are ``layer/weight``."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            group = f["model_weights"] if "model_weights" in f else f
            layers = [_text(n) for n in group.attrs["layer_names"]]
            tensors = {}
            for layer in layers:
                g = group[layer]
                for wname in g.attrs.get("weight_names", []):
                    wname = _text(wname)
                    short = wname.split("/")[-1].split(":")[0]
                    tensors[f"{layer}/{short}"] = np.asarray(g[wname])
    except (OSError, KeyError) as exc:
        raise WeightsError(f"{path} is not a readable Keras h5 weights file ({exc}).") from None
    return Source("keras", path, tensors, layers)


def read_keras3_applications(path: str) -> Source:
    """Reads a Keras 3 ``.weights.h5`` saved from ``keras.applications.InceptionResNetV2``
    (``model.save_weights``): the file is loaded into that model (Keras matches its layers in
    order, checking every shape), then read out as ``layer/weight`` keys like a legacy h5."""
    import h5py
    import keras

    with h5py.File(path, "r") as f:
        groups = list(f.get("layers", {}))
        dense = [g for g in groups if g == "dense" or g.startswith("dense_")]
        width = int(f["layers"][dense[0]]["vars"]["0"].shape[-1]) if dense else None
    try:
        reference = keras.applications.InceptionResNetV2(
            weights=None, include_top=width is not None, classes=width or 1000,
            input_shape=(INPUT_SIZE, INPUT_SIZE, 3),
        )  # fmt: skip
        reference.load_weights(path)
    except Exception:  # noqa: BLE001 (any mismatch: it is not that model's file)
        raise WeightsError(
            f"{path} is a Keras 3 weights file of neither this model nor "
            "keras.applications.InceptionResNetV2."
        ) from None
    tensors = {
        f"{layer.name}/{w.name}": np.asarray(w) for layer in reference.layers for w in layer.weights
    }
    return Source("keras", path, tensors, [layer.name for layer in reference.layers])


def _text(x) -> str:
    return x.decode("utf8") if isinstance(x, bytes) else str(x)
