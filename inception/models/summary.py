"""Model statistics: parameters and multiply-accumulates, counted from the built graph."""

from __future__ import annotations

import math

from keras import layers


def count_macs(model) -> int:
    """Multiply-accumulates of one forward pass (convolutions and dense layers)."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, layers.Conv2D):
            kh, kw = layer.kernel_size
            in_ch = layer.input.shape[-1]
            out = layer.output.shape
            total += math.prod(out[1:]) * kh * kw * in_ch
        elif isinstance(layer, layers.Dense):
            total += layer.input.shape[-1] * layer.units
    return total


def model_row(name: str, variant: str | None = None) -> dict:
    """Parameters, GMACs at the default input size and the paper's accuracy for one variant."""
    from .registry import build, get_model_config

    config = get_model_config(name)
    variant = variant or config.default_variant
    model = build(name, variant=variant)
    released = released_accuracy(name) if variant == "slim" else (None, None)
    return {
        "model": name,
        "title": config.title,
        "variant": variant,
        "params": model.count_params(),
        "gmacs": count_macs(model) / 1e9,
        "input": config.input_size,
        "paper_top1": config.paper_top1,
        "paper_top5": config.paper_top5,
        # released checkpoints exist for the slim architecture only
        "released_top1": released[0],
        "released_top5": released[1],
    }


def released_accuracy(name: str) -> tuple[float | None, float | None]:
    """Top-1 / top-5 (percent) reported for the model's default pretrained weights, as recorded
    in the weights manifest; ``(None, None)`` without a released checkpoint."""
    from ..weights.manifest import load_manifest

    default = load_manifest()["defaults"].get(name)
    if default is None:
        return None, None
    entry = load_manifest()["entries"][default]
    return entry.top1, entry.top5
