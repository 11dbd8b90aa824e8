"""The fine-tuning recipe (``recipes/finetune.json``) and its Keras objects, for ``inception
finetune`` and for a ``model.compile`` of one's own::

    recipe = load_finetune_recipe("finetune")
    backbone = inception.build("inception_v4", weights="imagenet", include_top=False,
                               pooling="avg")
    model = keras.Sequential([backbone, keras.layers.Dense(5, name="Logits.Logits")])
    model.compile(**recipe.compile_arguments(model, global_batch_size=32, steps_per_epoch=100,
                                             total_steps=1000))
    set_phase(model, whole=False)   # the head alone: backbone frozen, BN in inference mode
    model.fit(data, epochs=2)
    set_phase(model, whole=True)    # then everything, with the same optimizer
    model.fit(data, epochs=10, initial_epoch=2)

* :class:`FinetuneRecipe`: the hyper-parameters (``finetune.json`` holds the defaults);
* :class:`FinetuneAdamW` and :class:`FinetuneSGD`: Keras' ``AdamW`` and ``SGD`` (decoupled weight
  decay, BatchNorm and biases spared) with a learning-rate multiplier per block of the network
  (the backbone's lower rate and layer-wise decay) that keep training when layers are frozen or
  unfrozen after the optimizer was built (a two-phase fine-tune keeps one optimizer);
* :func:`finetune_schedule`: linear warm-up then cosine decay (Keras' ``CosineDecay``);
* :func:`set_phase`: the head alone or the whole network trainable.

Nothing here reads data or runs a model; ``inception.training.finetune`` runs the recipe.
"""

from __future__ import annotations

import dataclasses
import math

import keras

from ..errors import UsageError
from .config import read_recipe, recipe_values

HEAD = "Logits"  # the classifier's block: its layers are named "Logits.*" (TF-slim's name)
OPTIMIZERS = ("adamw", "sgd")


def block_of(path: str) -> str:
    """The block a variable (by its path) or a layer (by its name) belongs to:
    ``"block8_5.Conv2d_1x1/kernel"`` -> ``"block8_5"``; ``"Logits.Logits/bias"`` and, in a
    ``keras.Sequential([backbone, head])``, ``"sequential/Logits.Logits/bias"`` -> ``"Logits"``."""
    parts = path.split("/")
    layer = parts[-2] if len(parts) > 1 else parts[0]
    return layer.split(".")[0]


class _BlockMultipliers:
    """What :class:`FinetuneAdamW` and :class:`FinetuneSGD` add to their Keras optimizer.

    ``learning_rate_multipliers``: ``{block: factor}``; a variable's update uses
    ``learning_rate * factor`` of its block (:func:`block_of`; 1 for a block not listed).
    ``no_weight_decay``: parts of variable names spared by the weight decay.

    Layers may be frozen (``trainable = False``) after the optimizer was built on all of them:
    their variables then keep their slots and are skipped until they are unfrozen. On JAX, where
    ``fit`` hands the optimizer the values of the variables that are trainable now, those are
    matched to the frozen or not variables it was built with.
    """

    def _setup(self, learning_rate_multipliers, no_weight_decay):
        self.learning_rate_multipliers = {
            str(k): float(v) for k, v in (learning_rate_multipliers or {}).items()
        }
        self.no_weight_decay = list(no_weight_decay or [])
        if self.no_weight_decay:
            self.exclude_from_weight_decay(var_names=self.no_weight_decay)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        table = self.learning_rate_multipliers
        self._factors = [table.get(block_of(v.path), 1.0) for v in variables]

    def update_step(self, gradient, variable, learning_rate):
        factor = self._factors[self._get_variable_index(variable)]
        if factor != 1.0:
            learning_rate = keras.ops.multiply(learning_rate, factor)
        super().update_step(gradient, variable, learning_rate)

    def stateless_apply(self, optimizer_variables, grads, trainable_variables):
        built = self._trainable_variables
        if len(trainable_variables) == len(built):
            return super().stateless_apply(optimizer_variables, grads, trainable_variables)
        active = [v for v in built if v.trainable]
        if len(active) != len(trainable_variables):
            raise ValueError(
                f"{len(trainable_variables)} trainable values for {len(active)} trainable "
                f"variables of the {len(built)} this optimizer was built with."
            )
        mapping = list(zip(active, trainable_variables)) + list(
            zip(self.variables, optimizer_variables)
        )
        with keras.StatelessScope(state_mapping=mapping) as scope:
            self.apply(grads, active)
        return (
            [scope.get_current_value(v) for v in active],
            [scope.get_current_value(v) for v in self.variables],
        )

    def get_config(self):
        return {
            **super().get_config(),
            "learning_rate_multipliers": dict(self.learning_rate_multipliers),
            "no_weight_decay": list(self.no_weight_decay),
        }


@keras.saving.register_keras_serializable(package="inception")
class FinetuneAdamW(_BlockMultipliers, keras.optimizers.AdamW):
    """Keras' ``AdamW`` with a learning-rate multiplier per block and weight decay that spares
    the variables named in ``no_weight_decay`` (see :class:`_BlockMultipliers`)."""

    def __init__(self, learning_rate=0.001, weight_decay=0.01, learning_rate_multipliers=None,
                 no_weight_decay=("gamma", "beta", "bias"), name="finetune_adamw",
                 **kwargs):  # fmt: skip
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay, name=name,
                         **kwargs)  # fmt: skip
        self._setup(learning_rate_multipliers, no_weight_decay)


@keras.saving.register_keras_serializable(package="inception")
class FinetuneSGD(_BlockMultipliers, keras.optimizers.SGD):
    """Keras' ``SGD`` (momentum) with decoupled weight decay, a learning-rate multiplier per block
    and weight decay that spares the variables named in ``no_weight_decay``."""

    def __init__(self, learning_rate=0.01, momentum=0.9, weight_decay=1e-4,
                 learning_rate_multipliers=None, no_weight_decay=("gamma", "beta", "bias"),
                 name="finetune_sgd", **kwargs):  # fmt: skip
        super().__init__(learning_rate=learning_rate, momentum=momentum,
                         weight_decay=weight_decay, name=name, **kwargs)  # fmt: skip
        self._setup(learning_rate_multipliers, no_weight_decay)


def set_phase(net, whole: bool) -> None:
    """The head alone trainable (``whole=False``: every other layer frozen, BatchNorm in
    inference mode), or every layer (``whole=True``); the train, test and predict functions
    made already are made again (before the first ``fit`` none is: made then, on JAX, they
    would miss the metrics' variables)."""
    for layer in net.layers:
        if layer.weights:
            layer.trainable = whole or block_of(layer.name) == HEAD
    for made, make in ((net.train_function, net.make_train_function),
                       (net.test_function, net.make_test_function),
                       (net.predict_function, net.make_predict_function)):  # fmt: skip
        if made is not None:  # on JAX they were jitted for the other phase's variables
            make(force=True)


def finetune_schedule(peak: float, total_steps: int, warmup_steps: int, alpha: float = 0.0):
    """A linear warm-up from 0 to ``peak`` over ``warmup_steps``, then a cosine decay to
    ``alpha * peak`` at ``total_steps``: Keras' ``CosineDecay`` with ``warmup_target``."""
    warmup = max(0, min(int(warmup_steps), int(total_steps) - 1))
    return keras.optimizers.schedules.CosineDecay(
        0.0 if warmup else float(peak), max(1, int(total_steps) - warmup), alpha=float(alpha),
        warmup_target=float(peak) if warmup else None, warmup_steps=warmup,
    )  # fmt: skip


def block_multipliers(model, backbone: float, layer_decay: float | None) -> dict:
    """``{block: factor}`` for ``model``'s weighted blocks: 1 for the head (``Logits``),
    ``backbone`` for the last block below it, times ``layer_decay`` for each block further
    down (layer-wise learning-rate decay; ``None``: the same ``backbone`` for all)."""
    blocks = []
    for variable in model.weights:
        block = block_of(variable.path)
        if block != HEAD and block not in blocks:
            blocks.append(block)
    decay = 1.0 if layer_decay is None else float(layer_decay)
    out = {b: float(backbone) * decay ** (len(blocks) - 1 - i) for i, b in enumerate(blocks)}
    return {**out, HEAD: 1.0}


@dataclasses.dataclass(frozen=True)
class FinetuneRecipe:
    """The fine-tuning recipe (defaults: ``recipes/finetune.json``, which ``load_finetune_recipe``
    reads); the run's ``total_steps`` sets the length of the cosine decay.

    Batch mixing of the training batches (after RandAugment; validation keeps integer labels):
    ``mixup_alpha`` > 0 turns MixUp on (a batch blended with a shuffled copy of itself,
    ``lam * x + (1 - lam) * x[perm]``, ``lam ~ Beta(mixup_alpha, mixup_alpha)``);
    ``cutmix_alpha`` > 0 turns CutMix on (a rectangle of the shuffled copy pasted in, of area
    share ``1 - lam``, ``lam ~ Beta(cutmix_alpha, cutmix_alpha)``, the labels weighed by the
    pasted pixels' exact share); 0 turns either off (the default). With both on, each batch gets
    CutMix with probability ``mix_switch_prob``, else MixUp (timm's rule). One ``lam`` and one
    permutation per batch; the labels become soft targets ``lam * one_hot(y) + (1 - lam) *
    one_hot(y[perm])`` and a class weight becomes the same mix of the two classes' weights.
    """

    description: str = ""
    batch_size: int = 32  # per replica, when no --batch-size (global) is given
    optimizer: str = "adamw"  # or "sgd" (with momentum)
    base_learning_rate: float = 0.001  # for a global batch of base_batch_size, scaled linearly
    base_batch_size: int = 32
    momentum: float = 0.9  # SGD's
    weight_decay: float = 0.01  # decoupled: w -= lr * weight_decay * w
    no_weight_decay: tuple = ("gamma", "beta", "bias")  # BatchNorm and biases
    warmup_fraction: float = 0.05  # of the run: linear warm-up from 0
    min_learning_rate_ratio: float = 0.0  # cosine decay to this times the peak
    label_smoothing: float = 0.1
    head_steps: int | None = None  # steps of the head alone (None: head_fraction of the run)
    head_fraction: float = 0.25
    backbone_learning_rate_multiplier: float = 0.1  # after the head phase
    layer_decay: float | None = None  # per block further from the head, e.g. 0.9
    dropout_rate: float = 0.2
    bn_momentum: float | None = 0.99
    sync_batch_norm: bool = False
    colour_distortion: bool = False
    rand_augment: bool = False  # keras.layers.RandAugment on the training batches
    rand_augment_ops: int = 2
    rand_augment_factor: float = 0.5
    mixup_alpha: float = 0.0  # MixUp's Beta(alpha, alpha) on the training batches; 0: off
    cutmix_alpha: float = 0.0  # CutMix's Beta(alpha, alpha); 0: off
    mix_switch_prob: float = 0.5  # both on: CutMix on this share of the batches, else MixUp
    class_weights: str | None = "balanced"  # folders: loss weight N / (K * n_class); None: 1
    early_stopping_patience: int | None = None  # validations without a better top-1
    checkpoint_every_steps: int = 100
    validate_every_steps: int | None = None  # None: about once per epoch
    keep_checkpoints: int = 3
    total_steps: int | None = None  # the run's length (set by finetune())
    # what train()'s plan reads: no auxiliary head, no moving average of the weights
    aux_logits: bool = False
    ema_decay: float | None = None

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise UsageError(
                f"recipe optimizer {self.optimizer!r} is not one of {', '.join(OPTIMIZERS)}."
            )
        if self.class_weights not in (None, "balanced"):
            raise UsageError(
                f'recipe class_weights {self.class_weights!r}: use "balanced" or null.'
            )
        for key in ("mixup_alpha", "cutmix_alpha"):
            value = float(getattr(self, key))
            if not (math.isfinite(value) and value >= 0.0):
                raise UsageError(f"recipe {key} must be 0 (off) or positive, got {value}.")
            object.__setattr__(self, key, value)
        if not 0.0 <= float(self.mix_switch_prob) <= 1.0:
            raise UsageError(
                f"recipe mix_switch_prob must be in [0, 1], got {self.mix_switch_prob}."
            )
        object.__setattr__(self, "no_weight_decay", tuple(self.no_weight_decay))

    def learning_rate(self, global_batch_size: int) -> float:
        return self.base_learning_rate * global_batch_size / self.base_batch_size

    def phase_boundary(self, total_steps: int) -> int:
        """The first step of the whole-network phase (steps before it train the head only)."""
        if self.head_steps is not None:
            return max(0, min(int(self.head_steps), int(total_steps)))
        return min(int(total_steps), round(self.head_fraction * total_steps))

    # The recipe as Keras objects -----------------------------------------------------------

    def conv_bn(self, **overrides):
        """The conv-BN unit: BN momentum, synchronised BN, no L2 (the optimizer decays)."""
        values = {"synchronized": self.sync_batch_norm, "l2": 0.0}
        if self.bn_momentum is not None:
            values["momentum"] = self.bn_momentum
        from ..models.layers import ConvBN  # Keras

        return ConvBN(**{**values, **overrides})

    def schedule(self, global_batch_size: int, steps_per_epoch: int, total_steps=None):
        """Warm-up then cosine decay over ``total_steps`` (default: the recipe's, else 10
        epochs)."""
        total = int(total_steps or self.total_steps or 10 * steps_per_epoch)
        return finetune_schedule(self.learning_rate(global_batch_size), total,
                                 round(self.warmup_fraction * total),
                                 self.min_learning_rate_ratio)  # fmt: skip

    def optimizer_for(self, model, global_batch_size, steps_per_epoch, total_steps=None):
        """:class:`FinetuneAdamW` or :class:`FinetuneSGD` with this recipe's settings and the
        block multipliers of ``model`` (:func:`block_multipliers`), built on the variables of
        ``model`` that are trainable now: call it before freezing any (``set_phase``), in the
        distribution scope the model was built in."""
        multipliers = block_multipliers(
            model, self.backbone_learning_rate_multiplier, self.layer_decay
        )
        common = dict(
            learning_rate=self.schedule(global_batch_size, steps_per_epoch, total_steps),
            weight_decay=self.weight_decay, learning_rate_multipliers=multipliers,
            no_weight_decay=self.no_weight_decay,
        )  # fmt: skip
        if self.optimizer == "sgd":
            optimizer = FinetuneSGD(momentum=self.momentum, **common)
        else:
            optimizer = FinetuneAdamW(**common)
        optimizer.build(model.trainable_variables)  # all of them: freezing comes after
        return optimizer

    def compile_arguments(self, model, global_batch_size: int, steps_per_epoch: int,
                          total_steps: int | None = None) -> dict:  # fmt: skip
        """``optimizer``, ``loss`` and ``metrics`` for ``model.compile``: the smoothed
        cross-entropy of integer labels (or of soft targets, MixUp's and CutMix's) on the
        logits, top-1 and top-5 accuracy (percent; of the argmax of a soft target)."""
        from .objectives import SparseSmoothedCrossEntropy, TopKAccuracy

        classes = int(model.outputs[0].shape[-1])
        return {
            "optimizer": self.optimizer_for(
                model, global_batch_size, steps_per_epoch, total_steps
            ),  # fmt: skip
            "loss": SparseSmoothedCrossEntropy(self.label_smoothing),
            "metrics": [TopKAccuracy(1), TopKAccuracy(min(5, classes), name="top5")],
        }

    def augmentation(self, seed: int = 0):
        """The batch augmentation layers of the recipe (``None`` without any), for images in
        [-1, 1]; they run inside ``tf.data`` on either backend."""
        if not self.rand_augment:
            return None
        return keras.layers.RandAugment(
            value_range=(-1, 1), num_ops=self.rand_augment_ops,
            factor=self.rand_augment_factor, seed=seed,
        )  # fmt: skip


def finetune_recipe_names() -> list[str]:
    from .config import recipe_names

    return [n for n in recipe_names() if read_recipe(n).get("kind") == "finetune"]


def load_finetune_recipe(name_or_file="finetune", **overrides) -> FinetuneRecipe:
    """A :class:`FinetuneRecipe` from a packaged name (``"finetune"``), a JSON file (which may
    name ``"base": "finetune"``) or a dict, with ``overrides`` (``None`` values ignored)."""
    values = recipe_values(name_or_file, FinetuneRecipe)
    kind = values.pop("kind", None)
    if kind != "finetune" and not isinstance(name_or_file, (dict, FinetuneRecipe)):
        raise UsageError(
            f"recipe {name_or_file!r} is a training recipe; fine-tune with "
            f'{" or ".join(finetune_recipe_names())}, or a JSON file with "base": "finetune".'
        )
    values.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in dataclasses.fields(FinetuneRecipe)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise UsageError(
            f"unknown recipe key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(known))}."
        )
    for key in ("head_steps", "early_stopping_patience"):
        if values.get(key) is not None and int(values[key]) < 0:
            raise UsageError(f"recipe {key} must be at least 0, got {values[key]}.")
    if not math.isfinite(float(values.get("base_learning_rate", 1.0))):
        raise UsageError("recipe base_learning_rate must be a finite number.")
    return FinetuneRecipe(**values)
