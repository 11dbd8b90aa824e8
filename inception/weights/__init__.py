"""Pretrained weights: resolving a ``weights=`` argument and loading it into a built model.

``weights`` may be ``"imagenet"`` (the model's default manifest entry), a manifest name such as
``"timm:inception_v4.tf_in1k"``, the path of a converted ``.weights.h5`` / ``.keras`` file, or the
path of a supported source checkpoint (TF-slim prefix/folder/.tar.gz, timm .safetensors, Keras h5),
converted on the fly. Manifest entries are downloaded once into ``$INCEPTION_HOME`` (default
``~/.keras/inception``), verified, converted, and the converted ``.weights.h5`` is cached there.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .convert import Report, convert_into
from .download import DownloadError, converted_dir, fetch, inception_home
from .manifest import Entry, entries, get_entry, resolve
from .sources import WeightsError, detect_format, read_source

__all__ = [
    "load_weights",
    "convert_into",
    "Report",
    "Entry",
    "entries",
    "get_entry",
    "resolve",
    "fetch",
    "inception_home",
    "WeightsError",
    "DownloadError",
]


def load_weights(
    model,
    model_name,
    weights,
    *,
    variant="slim",
    include_top=True,
    classes=1000,
    aux_logits=False,
    verbose=False,
):
    """Loads ``weights`` into ``model`` (built by ``model_name``'s builder with the given
    arguments) and returns the model. Raises ``WeightsError`` (a ``ValueError``) with a message
    naming the problem and the fix."""
    if weights is None:
        return model
    if not isinstance(weights, (str, os.PathLike)):
        raise WeightsError(
            f"weights must be None, 'imagenet', a manifest name or a file path; got {weights!r}."
        )
    spec = os.fspath(weights)
    exists = os.path.exists(spec) or os.path.exists(f"{spec}.index")
    if spec == "imagenet" or (not exists and ":" in spec):
        entry = resolve(model_name, spec)
        _check_entry(entry, model_name, variant, include_top, classes, aux_logits)
        return _load_entry(model, model_name, entry, verbose)
    if not exists:
        raise FileNotFoundError(
            f"weights={spec!r} for {model_name} is neither 'imagenet', a manifest name such as "
            "'timm:inception_v4.tf_in1k' (see `inception convert --list`), nor an existing file."
        )
    fmt = detect_format(spec)
    if fmt == "converted":
        _load_converted(model, spec)
    elif fmt == "keras_archive":
        _load_keras_archive(model, spec)
    else:
        _check_variant(model_name, variant)
        report = convert_into(model, model_name, read_source(spec, fmt))
        if verbose:
            print(report.summary())
    return model


def _check_variant(model_name, variant):
    if variant != "slim":
        raise WeightsError(
            f"pretrained {model_name} checkpoints have the TF-slim architecture: build with "
            f"variant='slim' (got {variant!r})."
        )


def _check_entry(entry: Entry, model_name, variant, include_top, classes, aux_logits):
    _check_variant(model_name, variant)
    if include_top:
        if not entry.include_top:
            raise WeightsError(f"{entry.name} has no classifier: build with include_top=False.")
        allowed = (1000, 1001) if entry.num_classes == 1001 else (entry.num_classes,)
        if classes not in allowed:
            raise WeightsError(
                f"{entry.name} classifies {entry.num_classes} ImageNet classes: build with "
                f"classes={' or '.join(map(str, allowed))}, or with include_top=False to "
                f"fine-tune on {classes} classes."
            )
    if aux_logits and not entry.aux_logits:
        with_aux = [n for n, e in entries().items() if e.model == model_name and e.aux_logits]
        raise WeightsError(
            f"{entry.name} has no auxiliary head: build with aux_logits=False"
            + (f", or use {' / '.join(with_aux)}." if with_aux else ".")
        )


def cache_path(entry: Entry, model) -> Path:
    """The converted file for ``entry`` in ``model``'s configuration (its weights' names and
    shapes decide: classes, top, aux head)."""
    layout = "\n".join(f"{w.path}:{tuple(w.shape)}" for w in model.weights)
    digest = hashlib.sha256(layout.encode()).hexdigest()[:12]
    return converted_dir() / f"{entry.name.replace(':', '--')}-{digest}.weights.h5"


def _load_entry(model, model_name, entry: Entry, verbose):
    cached = cache_path(entry, model)
    if cached.is_file():
        try:
            model.load_weights(cached)
            return model
        except Exception:  # a stale or damaged cache entry: convert again
            cached.unlink(missing_ok=True)
    source = fetch(entry)
    report = convert_into(model, model_name, read_source(str(source), entry.format))
    if verbose:
        print(report.summary())
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_name(f".partial-{os.getpid()}-{cached.name}")
    try:
        model.save_weights(partial)
        os.replace(partial, cached)
    finally:
        partial.unlink(missing_ok=True)
    return model


def _load_converted(model, path):
    try:
        model.load_weights(path)
    except Exception as exc:
        raise WeightsError(
            f"{path} does not fit this model ({exc}). A converted .weights.h5 loads into the "
            "model built exactly as at conversion: same name, variant='slim', classes, "
            "include_top and aux_logits."
        ) from None


def _load_keras_archive(model, path):
    """Copies weights, layer by layer, from a ``.keras`` file loaded with ``safe_mode=True``."""
    import keras

    from ..models.layers import ResidualScale  # noqa: F401 (registers the layer)

    source = keras.saving.load_model(path, compile=False, safe_mode=True)
    by_name = {layer.name: layer for layer in source.layers}
    missing = [ly.name for ly in model.layers if ly.weights and ly.name not in by_name]
    if missing:
        raise WeightsError(f"{path} lacks layers {', '.join(missing[:8])} of this model.")
    for layer in model.layers:
        if layer.weights:
            try:
                layer.set_weights(by_name[layer.name].get_weights())
            except ValueError as exc:
                raise WeightsError(f"{path}: layer {layer.name} does not fit ({exc}).") from None
