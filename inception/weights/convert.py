"""Filling a built model from a source checkpoint, with full bookkeeping.

Every target weight must be filled, every source tensor must be used (or skipped for a stated
reason: the aux head of a model built without ``aux_logits``, the classifier of a model built
without its top, or bookkeeping such as ``global_step`` / ``num_batches_tracked``), and every
shape must agree; otherwise ``convert_into`` raises ``WeightsError`` naming the tensors.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..models.layers import DEFAULT_CONV_BN
from . import mapping as mp
from .sources import Source, WeightsError, read_source

BN_EPSILON = DEFAULT_CONV_BN.epsilon  # the scale-free BN of the target models


@dataclass
class Report:
    """What a conversion did: ``used`` maps each source key to the target weight it filled."""

    source: str
    format: str
    used: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # key -> reason
    folded: list[str] = field(default_factory=list)  # BN gammas folded into the variance
    class_drop: str | None = None
    class_hint: str | None = None  # why a classifier did not fit

    def lines(self) -> list[str]:
        out = [f"  used    {k}  ->  {t}" for k, t in self.used.items()]
        out += [f"  skipped {k}  ({why})" for k, why in self.skipped.items()]
        return out

    def summary(self) -> str:
        parts = [
            f"{self.source} ({self.format}): used {len(self.used)} source tensors",
            f"skipped {len(self.skipped)} on purpose",
        ]
        if self.folded:
            parts.append(f"folded {len(self.folded)} BN scales (gamma) into the variances")
        if self.class_drop:
            parts.append(self.class_drop)
        return ", ".join(parts) + "."


def _kind(layer) -> str:
    cls = type(layer).__name__
    if cls == "BatchNormalization":
        return "bn"
    if cls == "Dense":
        return "dense"
    if cls == "Conv2D":
        return "conv" if layer.use_bias else "conv_bn"
    raise WeightsError(f"no converter rule for layer {layer.name} ({cls}).")


def _weighted_layers(model):
    return [layer for layer in model.layers if layer.weights]


def _target_keys(model, model_name: str, source: Source) -> dict[tuple[str, str], mp.Key]:
    """(layer name, weight name) -> source key, for every weight of the model."""
    names = [layer.name for layer in model.layers]
    layers = _weighted_layers(model)
    keys: dict[tuple[str, str], mp.Key] = {}
    if source.format == "slim":
        if model_name not in mp.SLIM_ROOT:
            raise WeightsError(f"no TF-slim checkpoint layout is known for {model_name}.")
        n8 = mp.last_block8(names)
        for layer in layers:
            for w in layer.weights:
                keys[(layer.name, w.name)] = mp.slim_key(model_name, layer.name, w.name, n8)
    elif source.format == "timm":
        timm = mp.TimmNames(model_name, names)
        for layer in layers:
            if mp.is_aux(layer.name):
                for w in layer.weights:
                    keys[(layer.name, w.name)] = mp.Key(f"<no aux head in timm>/{layer.name}")
                continue
            for w in layer.weights:
                keys[(layer.name, w.name)] = timm.key(layer.name, w.name, _kind(layer))
    elif source.format == "keras":
        keys = _keras_keys(model, model_name, source, names, layers)
    else:
        raise WeightsError(f"unsupported source format {source.format!r}.")
    return keys


def _keras_keys(model, model_name, source, names, layers):
    if model_name != "inception_resnet_v2":
        raise WeightsError(
            f"keras.applications has no {model_name}; Keras h5 weights exist only for "
            "inception_resnet_v2."
        )
    by_name = {layer.name: layer for layer in layers}
    keys = {}
    ours = [n for n, layer in by_name.items() if _kind(layer) == "conv_bn"]
    ours = [n for n in ours if mp.keras_named(n) is None and not mp.is_aux(n)]
    ours = mp.keras_creation_order(ours, names)
    convs = mp.keras_auto_order(source.layers, "conv2d")
    bns = mp.keras_auto_order(source.layers, "batch_normalization")
    if not (len(ours) == len(convs) == len(bns)):
        raise WeightsError(
            f"{source.path}: {len(convs)} auto-named convolutions and {len(bns)} batch norms, "
            f"but the model has {len(ours)} conv-BN units; is this "
            "keras.applications.InceptionResNetV2's weights file?"
        )
    for ours_name, conv, bn in zip(ours, convs, bns):
        keys[(ours_name, "kernel")] = mp.Key(f"{conv}/kernel")
        for w in by_name[f"{ours_name}.BatchNorm"].weights:
            keys[(f"{ours_name}.BatchNorm", w.name)] = mp.Key(f"{bn}/{w.name}")
    for name, layer in by_name.items():
        named = mp.keras_named(name)
        if named:
            for w in layer.weights:
                keys[(name, w.name)] = mp.Key(f"{named}/{w.name}")
        elif mp.is_aux(name):
            for w in layer.weights:
                keys[(name, w.name)] = mp.Key(f"<no aux head in keras>/{name}")
    return keys


def _bookkeeping(fmt: str, key: str) -> bool:
    pattern = mp.SLIM_BOOKKEEPING if fmt == "slim" else mp.TIMM_BOOKKEEPING
    return fmt != "keras" and bool(pattern.search(key))


def _source_part(fmt: str, key: str) -> str | None:
    """Which optional part of the network a source key belongs to: ``aux``, ``top`` or None."""
    if fmt == "slim":
        scope = key.split("/")[1] if "/" in key else ""
        return {"AuxLogits": "aux", "Logits": "top"}.get(scope)
    if fmt == "timm":
        return "top" if key.startswith(("last_linear.", "classif.")) else None
    return "top" if key.startswith("predictions/") else None


def _fold_gamma(tensors, gamma_key, kernel, mean_key, var_key, eps=BN_EPSILON):
    """Folds a BN scale into a scale-free BN: gamma * (x - m) / s == (x' - m') / s' with
    s' = s / |gamma| and, for gamma < 0, x' = -x (kernel negated) and m' = -m. Exact for inference;
    a zero gamma cannot be folded."""
    gamma = tensors[gamma_key].astype(np.float64)
    if np.any(gamma == 0):
        raise WeightsError(
            f"{gamma_key} has zero entries: a BN scale of 0 cannot be folded into this model's "
            "scale-free batch norm; refusing to drop it."
        )
    var = (tensors[var_key].astype(np.float64) + eps) / gamma**2 - eps
    sign = np.sign(gamma)
    dtype = tensors[var_key].dtype
    tensors[var_key] = var.astype(dtype)
    tensors[mean_key] = (tensors[mean_key] * sign).astype(dtype)
    # ``kernel`` is the conv's Key: torch OIHW has output channels first, TF/Keras HWIO last.
    shape = (-1, 1, 1, 1) if kernel.layout == "conv" else (1, 1, 1, -1)
    tensors[kernel.name] = (tensors[kernel.name] * sign.reshape(shape)).astype(
        tensors[kernel.name].dtype
    )


def _layout(array: np.ndarray, layout: str | None) -> np.ndarray:
    if layout == "conv" and array.ndim == 4:
        return np.transpose(array, (2, 3, 1, 0))  # OIHW -> HWIO
    if layout == "dense" and array.ndim == 2:
        return array.T
    return array


def convert_into(model, model_name: str, source, *, fmt: str | None = None) -> Report:
    """Fills ``model`` (built as ``inception.build(model_name, variant="slim", ...)``) from
    ``source`` (a path or a ``Source``). Raises ``WeightsError`` on any unused source tensor, any
    unfilled target weight, or any shape mismatch; returns the ``Report``."""
    if not isinstance(source, Source):
        source = read_source(source, fmt)
    tensors = dict(source.tensors)
    keys = _target_keys(model, model_name, source)
    report = Report(source.path, source.format)
    has_aux = any(mp.is_aux(n) for n, _ in keys)
    has_top = any(mp.is_top(n) for n, _ in keys)

    # BN scales: consumed by folding (a value of 1 folds to itself).
    for (layer, weight), key in list(keys.items()):
        if weight != "moving_variance":
            continue
        gamma_key = _gamma_key(source.format, key.name)
        if gamma_key in tensors:
            kernel = keys[(mp.conv_of_bn(layer), "kernel")]
            mean_key = keys[(layer, "moving_mean")].name
            if kernel.name in tensors and mean_key in tensors and key.name in tensors:
                if not np.all(tensors[gamma_key] == 1):
                    _fold_gamma(tensors, gamma_key, kernel, mean_key, key.name)
                    report.folded.append(gamma_key)
                report.used[gamma_key] = f"{layer} (BN scale, folded)"

    missing, mismatched, values = [], [], {}
    by_name = {layer.name: layer for layer in _weighted_layers(model)}
    for (layer, weight), key in keys.items():
        if key.name not in tensors:
            missing.append(f"{key.name} (for {layer}/{weight})")
            continue
        array = _layout(tensors[key.name], key.layout)
        target = next(w for w in by_name[layer].weights if w.name == weight)
        array = _classes(array, tuple(target.shape), layer, weight, report)
        if tuple(array.shape) != tuple(target.shape):
            mismatched.append(
                f"{key.name} {tuple(array.shape)} vs {layer}/{weight} {tuple(target.shape)}"
            )
            continue
        values[(layer, weight)] = array
        report.used[key.name] = f"{layer}/{weight}"

    unused = []
    for key in tensors:
        if key in report.used:
            continue
        part = _source_part(source.format, key)
        if _bookkeeping(source.format, key):
            report.skipped[key] = "bookkeeping"
        elif part == "aux" and not has_aux:
            report.skipped[key] = "aux head: model built without aux_logits"
        elif part == "top" and not has_top:
            report.skipped[key] = "classifier: model built with include_top=False"
        else:
            unused.append(key)
    problems = []
    if missing:
        hint = ""
        if has_aux and any("<no aux head" in m for m in missing):
            hint = " (this source has no auxiliary head: build without aux_logits)"
        problems.append(f"{len(missing)} target weights not filled{hint}: {_few(missing)}")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatches: {_few(mismatched)}")
    if unused:
        problems.append(f"{len(unused)} source tensors unused: {_few(unused)}")
    if report.class_hint:
        problems.insert(0, report.class_hint)
    if problems:
        raise WeightsError(
            f"cannot convert {source.path} ({source.format}) into {model_name}: "
            + "; ".join(problems)
        )
    for (layer, weight), array in values.items():
        target = next(w for w in by_name[layer].weights if w.name == weight)
        target.assign(array.astype(target.dtype))
    return report


def _gamma_key(fmt: str, var_key: str) -> str:
    if fmt == "slim":
        return var_key.rsplit("/", 1)[0] + "/gamma"
    if fmt == "timm":
        return var_key.rsplit(".", 1)[0] + ".weight"
    return var_key.rsplit("/", 1)[0] + "/gamma"


def _classes(array, shape, layer, weight, report):
    """1001 -> 1000 classes: drops slim's background (index 0) from a classifier."""
    if not (mp.is_top(layer) or layer == "AuxLogits.Logits"):
        return array
    if array.shape[-1] == shape[-1] + 1 and array.shape[:-1] == shape[:-1]:
        report.class_drop = (
            f"dropped the background class (index 0): {array.shape[-1]} -> {shape[-1]} classes"
        )
        return array[..., 1:]
    if array.shape != shape and array.shape[:-1] == shape[:-1] and not report.class_hint:
        report.class_hint = (
            f"the checkpoint's {layer} has {array.shape[-1]} classes but the model was built with "
            f"classes={shape[-1]}: build with classes={array.shape[-1]}"
            + (" or 1000" if array.shape[-1] == 1001 else "")
            + ", or with include_top=False to fine-tune on other classes"
        )
    return array


def _few(items, n=8) -> str:
    shown = ", ".join(items[:n])
    return shown + (f", ... ({len(items) - n} more)" if len(items) > n else "")
