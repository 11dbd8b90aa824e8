"""Training recipes: small JSON files of hyper-parameters (``recipes/paper.json`` is the paper's,
and the source of :class:`Recipe`'s defaults).

A recipe may name a ``"base"`` recipe and override some of its keys. Keys are the fields of
:class:`Recipe`; unknown keys are an error (a typo should not be silently ignored).

A :class:`Recipe` also gives its Keras objects, for a model of one's own::

    recipe = load_recipe("paper")
    model = inception.build("inception_v4", classes=1000, classifier_activation=None,
                            aux_logits=True, conv_bn=recipe.conv_bn())
    model.compile(**recipe.compile_arguments(model, global_batch=256, steps_per_epoch=5004))
"""

from __future__ import annotations

import dataclasses
import json
from importlib import resources
from pathlib import Path

from ..errors import UsageError
from .options import JAX_STRATEGIES, STRATEGIES, TF_STRATEGIES  # noqa: F401
from .paper import PAPER


@dataclasses.dataclass(frozen=True)
class Recipe:
    """The optimisation recipe (defaults: the paper's, from ``recipes/paper.json``)."""

    description: str = ""
    batch_size: int = PAPER["batch_size"]  # per replica, when no --batch-size (global) is given
    # for a global batch of base_batch_size, scaled linearly
    base_learning_rate: float = PAPER["base_learning_rate"]
    base_batch_size: int = PAPER["base_batch_size"]
    lr_decay_rate: float = PAPER["lr_decay_rate"]
    lr_decay_epochs: float = PAPER["lr_decay_epochs"]  # staircase decay every this many epochs
    warmup_epochs: float = PAPER["warmup_epochs"]  # linear warm-up from 0 (not in the paper)
    rmsprop_rho: float = PAPER["rmsprop_rho"]
    rmsprop_momentum: float = PAPER["rmsprop_momentum"]
    rmsprop_epsilon: float = PAPER["rmsprop_epsilon"]
    label_smoothing: float = PAPER["label_smoothing"]
    # slim's L2 on conv and dense kernels: weight_decay * sum(w**2) / 2
    weight_decay: float = PAPER["weight_decay"]
    gradient_clip_norm: float | None = PAPER["gradient_clip_norm"]  # of the aggregated gradient
    # used where the model has one and the input is >= 107 px
    aux_logits: bool = PAPER["aux_logits"]
    aux_loss_weight: float = PAPER["aux_loss_weight"]
    dropout_rate: float = PAPER["dropout_rate"]
    ema_decay: float | None = PAPER["ema_decay"]  # evaluation/export use the moving averages
    colour_distortion: bool = PAPER["colour_distortion"]
    bn_momentum: float | None = None  # None: the layers' own BN decay (slim's 0.9997)
    sync_batch_norm: bool = False  # batch statistics over all replicas (slim: per replica)
    checkpoint_every_steps: int = PAPER["checkpoint_every_steps"]
    validate_every_steps: int | None = None  # None: about once per epoch
    keep_checkpoints: int = PAPER["keep_checkpoints"]

    def learning_rate(self, global_batch_size: int) -> float:
        return self.base_learning_rate * global_batch_size / self.base_batch_size

    # The recipe as Keras objects -----------------------------------------------------------

    def conv_bn(self, **overrides):
        """The conv-BN unit to build the model with: BN decay, synchronised BN, and the L2 penalty
        (Keras' ``L2(l)`` is ``l * sum(w**2)``, slim's weight decay ``wd * sum(w**2) / 2``)."""
        values = {"synchronized": self.sync_batch_norm, "l2": self.weight_decay / 2.0}
        if self.bn_momentum is not None:
            values["momentum"] = self.bn_momentum
        from ..models.layers import ConvBN  # Keras

        return ConvBN(**{**values, **overrides})

    def schedule(self, global_batch_size: int, steps_per_epoch: int):
        """The learning rate: linear scaling with the global batch, staircase decay every
        ``lr_decay_epochs`` epochs, optional warm-up."""
        from .objectives import paper_schedule

        return paper_schedule(
            self.learning_rate(global_batch_size),
            round(self.lr_decay_epochs * steps_per_epoch),
            self.lr_decay_rate,
            round(self.warmup_epochs * steps_per_epoch),
        )

    def optimizer(self, global_batch_size: int, steps_per_epoch: int):
        """:class:`~inception.training.PaperRMSProp` with this recipe's settings."""
        from .optimizer import PaperRMSProp

        return PaperRMSProp(
            learning_rate=self.schedule(global_batch_size, steps_per_epoch),
            rho=self.rmsprop_rho,
            momentum=self.rmsprop_momentum,
            epsilon=self.rmsprop_epsilon,
            global_clipnorm=self.gradient_clip_norm,
            ema_decay=self.ema_decay,
        )

    def compile_arguments(self, model, global_batch_size: int, steps_per_epoch: int) -> dict:
        """``optimizer``, ``loss``, ``loss_weights`` and ``metrics`` for ``model.compile``: the
        smoothed cross-entropy on the logits, and on the auxiliary logits with weight
        ``aux_loss_weight`` when ``model`` returns both; top-1 and top-5 accuracy (percent) of
        the main head."""
        from .objectives import SparseSmoothedCrossEntropy, TopKAccuracy

        classes = int(model.outputs[0].shape[-1])
        loss = SparseSmoothedCrossEntropy(self.label_smoothing)
        metrics = [TopKAccuracy(1), TopKAccuracy(min(5, classes), name="top5")]
        args = {"optimizer": self.optimizer(global_batch_size, steps_per_epoch)}
        if len(model.outputs) == 2:
            aux = SparseSmoothedCrossEntropy(self.label_smoothing, name="aux_cross_entropy")
            args.update(loss=[loss, aux], loss_weights=[1.0, self.aux_loss_weight],
                        metrics=[metrics, []])  # fmt: skip
        else:
            args.update(loss=loss, metrics=metrics)
        return args


def recipe_names() -> list[str]:
    folder = resources.files("inception.training").joinpath("recipes")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json"))


def read_recipe(name_or_file: str, seen: tuple = ()) -> dict:
    """The values of a packaged recipe or a JSON recipe file, its ``"base"`` chain resolved."""
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
        values = {**read_recipe(base, (*seen, name_or_file)), **values}
    return values


def recipe_values(name_or_file, recipe_class) -> dict:
    """The values of a recipe given as an instance of ``recipe_class``, a dict (which may name a
    ``"base"``), a packaged name or a JSON file."""
    if isinstance(name_or_file, recipe_class):
        return dataclasses.asdict(name_or_file)
    if isinstance(name_or_file, dict):
        values = dict(name_or_file)
        base = values.pop("base", None)
        return values if base is None else {**read_recipe(base), **values}
    return read_recipe(str(name_or_file))


def load_recipe(name_or_file: str | dict | Recipe = "paper", **overrides) -> Recipe:
    """A :class:`Recipe` from a packaged name (``"paper"``, ``"demo"``), a JSON file path or a
    dict, with ``overrides`` (``None`` values ignored) applied on top."""
    values = recipe_values(name_or_file, Recipe)
    if values.pop("kind", "train") == "finetune":
        raise UsageError(
            f"recipe {name_or_file!r} is a fine-tuning recipe: use it with `inception finetune` "
            "(inception.finetune), or give `inception train` a training recipe (paper, demo)."
        )
    values.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in dataclasses.fields(Recipe)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise UsageError(
            f"unknown recipe key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(known))}."
        )
    return Recipe(**values)
