"""Resolving a ``weights=`` argument and loading it into a built model.

``weights`` may be ``"imagenet"`` (the model's default manifest entry), a manifest name such as
``"timm:inception_v4.tf_in1k"``, the path of a converted ``.weights.h5`` / ``.keras`` file, or the
path of a supported source checkpoint (TF-slim prefix/folder/.tar.gz, timm .safetensors, Keras h5),
converted on the fly. Manifest entries are downloaded once into ``$INCEPTION_HOME`` (default
``~/.keras/inception``), verified, converted, and the converted ``.weights.h5`` is cached there.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from pathlib import Path

from ..models.info import model_info, read_info, set_model_info
from ..preprocessing import Preprocessing, imagenet_synsets
from .convert import convert_into
from .download import DownloadError, converted_dir, fetch
from .manifest import DEFAULT_WEIGHTS, Entry, entries, preprocessing_for, resolve
from .sources import WeightsError, detect_format, read_keras3_applications, read_source


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
    arguments), attaches the ``ModelInfo`` the weights come with (class names, label offset,
    preprocessing, provenance) and returns the model. Raises ``WeightsError`` (a ``ValueError``)
    with a message naming the problem and the fix."""
    if weights is None:
        return model
    if not isinstance(weights, (str, os.PathLike)):
        raise WeightsError(
            f"weights must be None, 'imagenet', a manifest name or a file path; got {weights!r}."
        )
    spec = os.fspath(weights)
    exists = os.path.exists(spec) or os.path.exists(f"{spec}.index")
    info = model_info(model)
    imagenet = dict(
        class_names=imagenet_synsets(classes) if include_top and classes in (1000, 1001) else None,
        label_offset=classes - 1000 if include_top and classes == 1001 else 0,
    )
    if spec == DEFAULT_WEIGHTS or (not exists and ":" in spec):
        entry = resolve(model_name, spec)
        _check_entry(entry, model_name, variant, include_top, classes, aux_logits)
        _load_entry(model, model_name, entry, verbose)
        prep = Preprocessing.from_dict(entry.preprocessing)
        offset = entry.label_offset if include_top and classes == entry.num_classes else 0
        info = info.replace(weights=entry.name, preprocessing=_sized(prep, model),
                            class_names=imagenet["class_names"], label_offset=offset)  # fmt: skip
        return set_model_info(model, info)
    if not exists and (os.sep in spec or spec.endswith((".h5", ".keras", ".safetensors", ".gz"))):
        raise FileNotFoundError(f"weights file {spec!r} does not exist.")
    if not exists:
        raise FileNotFoundError(
            f"weights={spec!r} for {model_name} is neither 'imagenet', a manifest name such as "
            "'timm:inception_v4.tf_in1k' (see `inception convert --list`), nor an existing file."
        )
    fmt = detect_format(spec)
    stored = read_info(spec) if fmt in ("converted", "keras_archive") else None
    if fmt == "converted":
        _load_converted(model, model_name, spec, stored)
    elif fmt == "keras_archive":
        _load_keras_archive(model, spec)
    else:
        _check_variant(model_name, variant)
        report = convert_into(model, model_name, read_source(spec, fmt))
        if verbose:
            print(report.summary())
        prep = _sized(preprocessing_for(model_name, fmt, spec), model)
        stored = info.replace(preprocessing=prep, **imagenet)
    if stored is not None:
        info = stored.replace(preprocessing=_sized(stored.preprocessing, model))
    return set_model_info(model, info.replace(weights=spec))


def _sized(prep: Preprocessing, model) -> Preprocessing:
    """``prep`` at the model's fixed input size (a model built at 107 px runs at 107)."""
    shape = model.inputs[0].shape
    return prep.replace(input_size=int(shape[1])) if shape[1] is not None else prep


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
    try:
        checkpoint = read_source(str(source), entry.format)
    except (WeightsError, OSError, EOFError, tarfile.TarError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise DownloadError(
            f"{source}, the local copy of {entry.name}, cannot be read ({first}). Delete it to "
            f"download {entry.url} again, or put a good copy there."
        ) from None
    report = convert_into(model, model_name, checkpoint)
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


def _load_converted(model, model_name, path, stored):
    if stored is not None and stored.model not in (None, model_name):
        raise WeightsError(
            f"{path} holds {stored.model} weights, not {model_name}: build {stored.model}."
        )
    try:
        model.load_weights(path)
    except Exception:  # noqa: BLE001 (Keras' message lists every weight: replaced by the cause)
        problem = fit_problem(path, model)
    else:
        return
    if stored is None and model_name == "inception_resnet_v2":  # keras.applications' save?
        try:
            source = read_keras3_applications(path)
        except WeightsError:
            pass
        else:
            convert_into(model, model_name, source)
            return
    raise WeightsError(f"{path} does not fit this model: {problem}")


def fit_problem(path, model) -> str:
    """Why a Keras 3 ``.weights.h5`` file does not load into ``model``, in one sentence with the
    option that fixes it."""
    import h5py

    with h5py.File(path, "r") as f:
        groups = list(f.get("layers", {}))
        dense = sorted(
            (g for g in groups if g == "dense" or g.startswith("dense_")),
            key=lambda g: int(g.rsplit("_", 1)[1]) if "_" in g else 0,
        )
        widths = [int(f["layers"][g]["vars"]["0"].shape[-1]) for g in dense]
        convs = sum(1 for g in groups if g == "conv2d" or g.startswith("conv2d_"))
    ours = [ly for ly in model.layers if type(ly).__name__ == "Dense"]
    our_convs = sum(1 for ly in model.layers if type(ly).__name__ == "Conv2D")
    if widths and not ours:
        return (f"the file has a classifier ({widths[0]} classes); build with include_top=True "
                f"and classes={widths[0]}, or load it into the full model first.")  # fmt: skip
    if ours and not widths:
        return "the file has no classifier: build with include_top=False."
    if len(widths) != len(ours):
        has = len(widths) > len(ours)
        return (f"the file {'has' if has else 'has no'} auxiliary head: build with "
                f"aux_logits={has}.")  # fmt: skip
    if widths and widths[0] != int(ours[0].units):
        return (f"the file's classifier has {widths[0]} classes, the model {ours[0].units}: build "
                f"with classes={widths[0]} (--classes {widths[0]}).")  # fmt: skip
    if convs != our_convs:
        return (f"it holds another network ({convs} convolutions, this model has {our_convs}): "
                "build the model and variant it was saved from.")  # fmt: skip
    return "the layers' shapes differ (another variant or input layout?)."


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
            values = by_name[layer.name].get_weights()
            want = [tuple(w.shape) for w in layer.weights]
            got = [tuple(v.shape) for v in values]
            if want != got:
                hint = (
                    " (another class count: build with classes=" + str(got[0][-1]) + ")"
                    if (layer.name.endswith("Logits") and got)
                    else ""
                )
                raise WeightsError(
                    f"{path}: layer {layer.name} has shapes {got}, this model {want}{hint}."
                )
            layer.set_weights(values)
