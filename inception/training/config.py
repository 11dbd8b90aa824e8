"""Training recipes: small JSON files of hyper-parameters (``recipes/paper.json`` is the paper's).

A recipe may name a ``"base"`` recipe and override some of its keys. Keys are the fields of
:class:`Recipe`; unknown keys are an error (a typo should not be silently ignored).
"""

from __future__ import annotations

import dataclasses
import json
from importlib import resources
from pathlib import Path

from inception.errors import UsageError


@dataclasses.dataclass(frozen=True)
class Recipe:
    """The optimisation recipe (defaults: the paper's)."""

    description: str = ""
    batch_size: int = 32  # per replica, when no --batch-size (global) is given
    base_learning_rate: float = 0.045  # for a global batch of base_batch_size, scaled linearly
    base_batch_size: int = 32
    lr_decay_rate: float = 0.94
    lr_decay_epochs: float = 2.0  # staircase decay every this many epochs
    warmup_epochs: float = 0.0  # linear warm-up from 0 (not in the paper)
    rmsprop_rho: float = 0.9
    rmsprop_momentum: float = 0.9
    rmsprop_epsilon: float = 1.0
    label_smoothing: float = 0.1
    weight_decay: float = 4e-5  # L2 on convolution and dense kernels (slim: 4e-5 * l2_loss)
    gradient_clip_norm: float | None = 2.0  # global norm of the aggregated gradient
    aux_logits: bool = True  # used where the model has one and the input is >= 107 px
    aux_loss_weight: float = 0.4
    dropout_rate: float = 0.2
    ema_decay: float | None = 0.9999  # evaluation/export use the moving averages
    colour_distortion: bool = False
    bn_momentum: float | None = None  # None: the layers' 0.9997 (slim's BN decay)
    sync_batch_norm: bool = False  # batch statistics over all replicas (slim: per replica)
    checkpoint_every_steps: int = 1000
    keep_checkpoints: int = 5

    def learning_rate(self, global_batch_size: int) -> float:
        return self.base_learning_rate * global_batch_size / self.base_batch_size


def recipe_names() -> list[str]:
    folder = resources.files("inception.training").joinpath("recipes")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json"))


def _read(name_or_file: str, seen: tuple = ()) -> dict:
    if name_or_file in seen:
        raise UsageError(f"recipe {name_or_file!r} names itself as a base (cycle {seen}).")
    path = Path(name_or_file).expanduser()
    if name_or_file in recipe_names():
        text = resources.files("inception.training").joinpath(f"recipes/{name_or_file}.json")
        text = text.read_text()
    elif path.is_file():
        text = path.read_text()
    else:
        raise UsageError(
            f"unknown recipe {name_or_file!r}: give one of {', '.join(recipe_names())} "
            "or the path of a JSON recipe file."
        )
    try:
        values = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"recipe {name_or_file!r} is not valid JSON: {exc}") from None
    if not isinstance(values, dict):
        raise UsageError(f"recipe {name_or_file!r} must be a JSON object of hyper-parameters.")
    base = values.pop("base", None)
    if base is not None:
        values = {**_read(base, (*seen, name_or_file)), **values}
    return values


def load_recipe(name_or_file: str | dict | Recipe = "paper", **overrides) -> Recipe:
    """A :class:`Recipe` from a packaged name (``"paper"``, ``"demo"``), a JSON file path or a
    dict, with ``overrides`` (``None`` values ignored) applied on top."""
    if isinstance(name_or_file, Recipe):
        values = dataclasses.asdict(name_or_file)
    elif isinstance(name_or_file, dict):
        values = dict(name_or_file)
        if "base" in values:
            values = {**_read(values.pop("base")), **values}
    else:
        values = _read(str(name_or_file))
    values.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in dataclasses.fields(Recipe)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise UsageError(
            f"unknown recipe key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(known))}."
        )
    return Recipe(**values)
