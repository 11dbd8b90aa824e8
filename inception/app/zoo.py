"""The table of ``inception models`` and of the zoo plot: each architecture's size and cost (from
the architecture table, nothing is built) with the paper's and the released accuracies (from the
model's preset, ``inception.weights.presets``)."""

from __future__ import annotations

from ..models.registry import get_model_config
from ..models.summary import table_counts
from ..weights.presets import get_preset


def model_row(name: str, variant: str | None = None) -> dict:
    """Parameters, GMACs at the default input size and the paper's accuracy for one variant
    (from the architecture table: nothing is built)."""
    preset = get_preset(name)
    variant = variant or get_model_config(name).default_variant
    params, macs = table_counts(name, variant, preset.num_classes, preset.input_size)
    # released checkpoints exist for the slim architecture only
    slim = variant == "slim"
    return {
        "model": name,
        "title": preset.title,
        "variant": variant,
        "params": params,
        "gmacs": macs / 1e9,
        "input": preset.input_size,
        "paper_top1": preset.paper_top1,
        "paper_top5": preset.paper_top5,
        "released_top1": preset.released_top1 if slim else None,
        "released_top5": preset.released_top5 if slim else None,
    }
