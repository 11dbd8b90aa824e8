"""Presets: each registered model joined with its default pretrained weights, one record each.

A :class:`Preset` brings together what the model registry (``inception.models.registry``: title,
paper accuracy, classes) and the weights manifest (``weights/manifest.json``: the default entry,
its preprocessing and released accuracy, or why there is none) say about one model, so that
defaults are read in one place. Nothing here imports Keras.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..models.registry import get_model_config, list_models
from ..preprocessing import Preprocessing
from .manifest import load_manifest, no_checkpoint_reason

__all__ = ["Preset", "get_preset", "list_presets"]


@dataclass(frozen=True)
class Preset:
    """A model and its default weights. ``weights``: the manifest entry ``weights="imagenet"``
    loads, or ``None`` with ``no_checkpoint`` saying why; ``preprocessing``: that entry's, else
    the model's; accuracies in percent (``released_*``: the default entry's, ``None`` without
    one; ``paper_*``: Table 2 of the paper)."""

    name: str
    title: str
    weights: str | None
    no_checkpoint: str | None
    preprocessing: Preprocessing
    num_classes: int
    paper_top1: float
    paper_top5: float
    released_top1: float | None
    released_top5: float | None

    @property
    def input_size(self) -> int:
        return self.preprocessing.input_size


def get_preset(name: str) -> Preset:
    """The preset of registered model ``name``; ``ValueError`` for an unknown name."""
    config = get_model_config(name)
    manifest = load_manifest()
    default = manifest["defaults"].get(name)
    entry = manifest["entries"][default] if default else None
    reason = None if entry else no_checkpoint_reason(name)
    return Preset(
        name=name,
        title=config.title,
        weights=default,
        no_checkpoint=reason,
        preprocessing=(
            Preprocessing.from_dict(entry.preprocessing) if entry else config.preprocessing
        ),
        num_classes=config.num_classes,
        paper_top1=config.paper_top1,
        paper_top5=config.paper_top5,
        released_top1=entry.top1 if entry else None,
        released_top5=entry.top5 if entry else None,
    )


def list_presets() -> list[Preset]:
    """The preset of every registered model, by name."""
    return [get_preset(name) for name in list_models()]
