"""The table of ``inception models`` and of the zoo plot: each architecture's size and cost (from
the architecture table, nothing is built) with the paper's and the released accuracies."""

from __future__ import annotations

from ..models.registry import get_model_config
from ..models.summary import table_counts
from ..weights.manifest import released_accuracy


def model_row(name: str, variant: str | None = None) -> dict:
    """Parameters, GMACs at the default input size and the paper's accuracy for one variant
    (from the architecture table: nothing is built)."""
    config = get_model_config(name)
    variant = variant or config.default_variant
    params, macs = table_counts(name, variant, config.num_classes, config.input_size)
    released = released_accuracy(name) if variant == "slim" else (None, None)
    return {
        "model": name,
        "title": config.title,
        "variant": variant,
        "params": params,
        "gmacs": macs / 1e9,
        "input": config.input_size,
        "paper_top1": config.paper_top1,
        "paper_top5": config.paper_top5,
        # released checkpoints exist for the slim architecture only
        "released_top1": released[0],
        "released_top5": released[1],
    }
