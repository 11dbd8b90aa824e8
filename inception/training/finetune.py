"""``finetune()``: a pretrained network adapted to the classes of your data, on ``train()``'s
machinery (plan, runtime per backend, checkpoints, automatic resume, metrics.jsonl, TensorBoard,
``model.keras`` with its ``ModelInfo``, eval.json).

A run: resolve the options into ``train()``'s :class:`~inception.training.plan.Plan` with the
fine-tuning recipe; build the network at the run's image size with a head for the data's classes
and copy the pretrained weights into it by layer name (the head too when the pretrained model
has the same class names, mapped by name); compile it with one optimizer built on every
variable; restore the newest checkpoint; then ``fit`` in two phases, a function of the global
step: until ``head_steps`` the head alone (every other layer ``trainable = False``, so BatchNorm
runs in inference mode and nothing below the head moves), then the whole network, with the
backbone at the recipe's lower learning rate. A kill in either phase resumes in it with the same
schedule (the optimizer's step counter and slots are in every checkpoint). After each validation
the best top-1 is kept (``checkpoints/best.weights.h5``, ``best.json``) and may stop the run
early; ``model.keras`` and eval.json are then the best checkpoint's.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import keras
import numpy as np

from ..app.builders import build
from ..app.resolve import resolve as resolve_member
from ..errors import UsageError
from ..models.info import load_model, model_info, read_info
from ..models.registry import list_models
from ..preprocessing.mix import mix_batch
from ..weights.manifest import DEFAULT_WEIGHTS, NO_WEIGHTS, load_manifest
from . import backend
from .callbacks import StepCallback, TrainingInterrupted
from .checkpoints import Checkpoints
from .finetune_recipe import (
    HEAD,
    FinetuneRecipe,
    block_of,
    load_finetune_recipe,
    set_phase,
)
from .loop import _finish, _fit, _precision_argument, _say, _start, _write_json
from .plan import make_plan, notice, notices_of

__all__ = ["finetune"]

BEST = "best.weights.h5"  # in checkpoints/: a copy of the checkpoint of the best validation
BEST_RECORD = "best.json"  # in the model directory: its step and top-1, an early stop


# --- the pretrained network --------------------------------------------------------------------


def _pretrained_names() -> list[str]:
    return sorted(load_manifest()["defaults"])


def _architecture(model: str, weights) -> tuple[str, str | None]:
    """The registered architecture (and variant) of ``model``: a name, or a ``.keras`` file's
    record; refuses a network without released weights asked for 'imagenet'."""
    model = os.fspath(model)
    if model.endswith(".keras"):
        if not os.path.isfile(model):
            raise UsageError(f"model file {model!r} does not exist.")
        info = read_info(model)
        if info is None or info.model not in list_models():
            raise UsageError(
                f"{model} is not a single Inception network saved by this package (no model "
                "record naming its architecture); fine-tune a registered name with --weights."
            )
        return info.model, info.variant
    if model not in list_models():
        raise UsageError(
            f"unknown model {model!r}; give a registered model ({', '.join(list_models())}) or "
            "a .keras file."
        )
    if os.fspath(weights) == DEFAULT_WEIGHTS and model not in _pretrained_names():
        raise UsageError(
            f"{model} has no released ImageNet weights: give --weights FILE (a .weights.h5, e.g. "
            f"from inception train) or --model FILE.keras; the networks with ImageNet weights "
            f"are {', '.join(_pretrained_names())}."
        )
    return model, None


def _pretrained(model: str, weights, image_size: int, variant):
    """The pretrained Keras model and where its weights are from."""
    model = os.fspath(model)
    if model.endswith(".keras"):
        return load_model(model), model
    spec = os.fspath(weights)
    try:
        member = resolve_member(model, spec, image_size=image_size, variant=variant)
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from None
    return member.model, spec


def _head_mapping(source, class_names) -> list[int] | None:
    """Columns of ``source``'s classifier for ``class_names`` (matched by name, any order), or
    ``None`` when its classes are not the data's."""
    info = model_info(source)
    names = list(info.class_names or [])
    if sorted(names) != sorted(class_names) or len(set(names)) != len(names):
        return None
    index = {name: i + info.label_offset for i, name in enumerate(names)}
    return [index[name] for name in class_names]


def _transfer(source, net, class_names) -> bool:
    """Copies ``source``'s weights into ``net`` by layer name: every layer below the head (all
    must fit), and the head when ``source`` classifies the same classes (mapped by name).
    Returns whether the head was kept."""
    layers = {layer.name: layer for layer in source.layers}
    columns = _head_mapping(source, class_names)
    for layer in net.layers:
        if not layer.weights:
            continue
        theirs = layers.get(layer.name)
        if block_of(layer.name) == HEAD:
            if columns is not None and theirs is not None:
                kernel, bias = theirs.get_weights()
                layer.set_weights([kernel[:, columns], bias[columns]])
            continue
        ours = [tuple(w.shape) for w in layer.weights]
        if theirs is None or [tuple(w.shape) for w in theirs.weights] != ours:
            raise UsageError(
                f"the pretrained weights do not fit this network at layer {layer.name}; give "
                "--model the architecture they were saved for."
            )
        layer.set_weights(theirs.get_weights())
    return columns is not None


def _build(plan, rt, source, recipe: FinetuneRecipe) -> tuple:
    """The training network (logits, the recipe's BN), holding the pretrained weights and
    compiled in the runtime's scope with the optimizer built on all of its variables."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(plan.policy)
    try:
        with rt.scope():
            conv_bn = recipe.conv_bn(synchronized=rt.sync_batch_norm(recipe.sync_batch_norm))
            net = build(
                plan.model, input_shape=(plan.image_size, plan.image_size, 3),
                classes=plan.source.num_classes, classifier_activation=None,
                dropout_rate=recipe.dropout_rate, conv_bn=conv_bn,
                **({"variant": plan.variant} if plan.variant else {}),
            )  # fmt: skip
            kept = _transfer(source, net, plan.source.class_names)
            net.compile(**recipe.compile_arguments(net, plan.global_batch, plan.steps_per_epoch))
            net.optimizer.build(net.trainable_variables)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    return net, kept


# --- data ------------------------------------------------------------------------------------


def class_counts(source) -> np.ndarray:
    """Training examples per class of ``source`` (one pass over its labels)."""
    labels = source.read().map(lambda image, label: label).batch(4096)
    counts = np.zeros(source.num_classes, np.int64)
    for batch in labels.as_numpy_iterator():
        counts += np.bincount(batch, minlength=source.num_classes)
    return counts


def _train_map(plan, recipe: FinetuneRecipe, verbose: int):
    """The training batches' extra step: the recipe's augmentation layers, then MixUp or CutMix
    (:func:`mix_batch`; the labels become soft targets) and, for a folder with
    ``class_weights: "balanced"``, per-example loss weights ``N / (K * n_class)`` (of a mixed
    example: the same mix of its two classes' weights). A class folder without a readable image
    is refused."""
    import tensorflow as tf

    augment = recipe.augmentation(plan.seed)
    mixing = recipe.mixup_alpha > 0 or recipe.cutmix_alpha > 0
    classes = plan.source.num_classes
    weights = None
    if plan.data != "imagenet2012" and not plan.data.startswith("tfds:"):
        counts = class_counts(plan.source)
        empty = [n for n, c in zip(plan.source.class_names, counts) if c == 0]
        if empty:
            raise UsageError(
                f"class folder(s) {', '.join(empty[:5])} of {plan.data} hold no readable image: "
                "add images to them or remove them."
            )
        balanced = counts.sum() / (len(counts) * counts)
        if recipe.class_weights == "balanced" and balanced.max() / balanced.min() > 1.0 + 1e-6:
            weights = tf.constant(balanced, tf.float32)
            notice(f"imbalanced classes ({counts.min()} to {counts.max()} images): the loss "
                   "weighs each class by N / (K x its images).", verbose)  # fmt: skip
    if augment is None and weights is None and not mixing:
        return None

    def extra(images, labels):
        if augment is not None:
            images = augment(images, training=True)
        if mixing:
            images, labels = mix_batch(
                images, labels, classes, mixup_alpha=recipe.mixup_alpha,
                cutmix_alpha=recipe.cutmix_alpha, switch_prob=recipe.mix_switch_prob,
                seed=plan.seed,
            )  # fmt: skip
        if weights is None:
            return images, labels
        if mixing:
            return images, labels, tf.linalg.matvec(labels, weights)
        return images, labels, tf.gather(weights, labels)

    return extra


# --- best checkpoint, early stopping -----------------------------------------------------------


class BestCheckpoint(StepCallback):
    """After each validation: a better top-1 than the best so far copies the checkpoint just
    written to ``checkpoints/best.weights.h5`` and records ``best.json`` (``step``,
    ``val_top1``); ``patience`` validations in a row without one stop the run
    (``stopped_at``)."""

    def __init__(self, start, checkpoints: Checkpoints, record: Path, validate_every: int,
                 patience: int | None):  # fmt: skip
        super().__init__(start)
        self.checkpoints, self.record = checkpoints, Path(record)
        self.every, self.patience = max(1, int(validate_every)), patience
        self.best = read_best(self.record)
        self.stopped = False

    def on_epoch_end(self, epoch, logs=None):
        top1 = (logs or {}).get("val_top1")
        if top1 is None:
            return
        top1 = float(top1)
        if self.best is None or top1 > self.best["val_top1"]:
            self.best = {"step": self.step, "val_top1": top1}
            if self.checkpoints.writer:
                best = self.checkpoints.folder / BEST
                partial = best.with_name("partial-best.weights.h5")
                shutil.copyfile(self.checkpoints.path(self.step), partial)
                os.replace(partial, best)
                _write_json(self.record, self.best)
            return
        waited = round((self.step - self.best["step"]) / self.every)
        if self.patience and waited >= self.patience:
            self.model.stop_training = self.stopped = True
            self.best = {**self.best, "stopped_at": self.step}
            if self.checkpoints.writer:
                _write_json(self.record, self.best)


def read_best(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None


# --- the run -----------------------------------------------------------------------------------


def finetune(model, data: str, model_dir, **options) -> dict:
    """Fine-tunes ``model`` on ``data`` and writes a normal run directory to ``model_dir``.

    ``model`` is a registered name with ``weights=`` (``"imagenet"``, a manifest entry, a
    ``.weights.h5`` / ``.keras`` file; ``"none"``: random initialisation, for comparisons) or
    the path of a ``.keras`` model saved here (``weights`` ignored). ``image_size=`` defaults to
    the model's (a ``.keras`` file's own size; another size rebuilds it with the same weights).
    ``head_steps=``: steps that train the head alone (default: the recipe's ``head_steps``, else
    ``head_fraction`` of the run). The other options are :func:`inception.train`'s
    (``steps``/``epochs``, ``batch_size``, ``recipe`` (default ``"finetune"``), ``strategy``,
    ``precision``, ``checkpoint_every``, ``validate_every``, ``verbose``...).

    Returns :func:`inception.train`'s dict plus ``"head"`` (``"kept"`` or ``"new"``),
    ``"head_steps"``, ``"best_step"`` (the step ``model.keras`` holds), ``"best_val_top1"``,
    ``"stopped_early_at"`` and ``"pretrained"`` (where the starting weights are from).
    """
    with notices_of("inception finetune"):
        return _finetune(model, data, model_dir, **options)


def _finetune(
    model,
    data: str,
    model_dir: str | os.PathLike,
    *,
    weights=DEFAULT_WEIGHTS,
    image_size: int | None = None,
    batch_size: int | None = None,
    epochs: float | None = None,
    steps: int | None = None,
    head_steps: int | None = None,
    recipe="finetune",
    strategy="auto",
    precision: str = "auto",
    seed: int | None = None,
    deterministic: bool = False,
    data_dir: str | None = None,
    eval_split: str | None = "validation",
    variant: str | None = None,
    checkpoint_every: int | None = None,
    validate_every: int | None = None,
    log_every: int | None = None,
    keep_checkpoints: int | None = None,
    verbose: int = 1,
) -> dict:
    if keep_checkpoints is not None and int(keep_checkpoints) < 1:
        raise UsageError(f"--keep-checkpoints must be at least 1, got {keep_checkpoints}.")
    if head_steps is not None and int(head_steps) < 0:
        raise UsageError(f"--head-steps must be at least 0, got {head_steps}.")
    recipe = load_finetune_recipe(recipe, keep_checkpoints=keep_checkpoints, head_steps=head_steps)
    if steps is None and epochs is None:
        raise UsageError("give the length of the run: --epochs N or --steps N.")
    arch, saved_variant = _architecture(model, weights)
    if image_size is None and os.fspath(model).endswith(".keras"):
        image_size = read_info(os.fspath(model)).image_size
    opts = dict(image_size=image_size, batch_size=batch_size, epochs=epochs, steps=steps,
                precision=_precision_argument(precision, None), seed=seed,
                deterministic=deterministic, data_dir=data_dir, eval_split=eval_split,
                variant=variant or saved_variant, checkpoint_every=checkpoint_every,
                validate_every=validate_every, log_every=log_every, verbose=verbose)  # fmt: skip
    rt = backend.runtime(strategy)
    checkpoints, start = None, None
    try:
        plan = make_plan(arch, data, model_dir, recipe, rt, opts)
        plan.recipe = recipe = FinetuneRecipe(
            **{**_fields(recipe), "total_steps": plan.total_steps,
               "head_steps": recipe.phase_boundary(plan.total_steps)}
        )  # fmt: skip
        plan.train_map = _train_map(plan, recipe, verbose)
        _say(rt, verbose, plan.summary(rt))
        source, pretrained = _pretrained(model, weights, plan.image_size, plan.variant)
        checkpoints = Checkpoints(plan.model_dir / "checkpoints", recipe.keep_checkpoints, rt.chief)
        keras.utils.set_random_seed(plan.seed)
        if plan.deterministic:
            backend.make_deterministic()
        net, kept = _build(plan, rt, source, recipe)
        del source
        _say_head(rt, verbose, plan, pretrained, kept, model)
        start = _start(plan, rt, net, checkpoints, verbose)
        stopped = _phases(plan, rt, net, start, checkpoints, verbose)
    except KeyboardInterrupt as exc:
        if isinstance(exc, TrainingInterrupted) or checkpoints is None:
            raise
        raise TrainingInterrupted(start, checkpoints) from None
    finally:
        rt.close()
    return _result(plan, rt, net, start, verbose, checkpoints, stopped, kept, pretrained)


def _fields(recipe: FinetuneRecipe) -> dict:
    return {f: getattr(recipe, f) for f in recipe.__dataclass_fields__}


def _say_head(rt, verbose, plan, pretrained, kept: bool, model) -> None:
    classes = plan.source.num_classes
    if kept:
        _say(rt, verbose, f"starting from {pretrained}: its head already classifies the data's "
                          f"{classes} classes, kept (columns mapped by class name)")  # fmt: skip
        return
    start = "random weights" if pretrained in NO_WEIGHTS else pretrained
    _say(rt, verbose, f"starting from {start} with a new head for the data's {classes} "
                      "classes")  # fmt: skip
    if os.fspath(model).endswith(".keras"):
        theirs = model_info(load_model(os.fspath(model))).class_names or ()
        notice(f"the classes of {model} ({', '.join(theirs[:5])}"
               f"{', ...' if len(theirs) > 5 else ''}) are not the data's "
               f"({', '.join(plan.source.class_names[:5])}"
               f"{', ...' if classes > 5 else ''}): its head is replaced by a new one.",
               verbose)  # fmt: skip


def _phases(plan, rt, net, start: int, checkpoints: Checkpoints, verbose: int) -> bool:
    """``fit`` from ``start``: the head alone until the phase boundary, then the whole network;
    returns whether the run stopped early (then or in an earlier run)."""
    boundary = plan.recipe.head_steps
    record = plan.model_dir / BEST_RECORD
    if start == 0 and rt.chief:  # a new run: no best of an earlier run in this folder
        record.unlink(missing_ok=True)
        (checkpoints.folder / BEST).unlink(missing_ok=True)
    done = read_best(record) or {}
    if done.get("stopped_at") is not None and start >= done["stopped_at"]:
        return True
    patience = plan.recipe.early_stopping_patience
    for whole, end in ((False, boundary), (True, plan.total_steps)):
        if start >= end and end < plan.total_steps:
            continue
        set_phase(net, whole)
        if start < end:
            what = "the whole network" if whole else "the head alone (backbone frozen)"
            _say(rt, verbose, f"steps {start + 1}-{end}: {what}")
        best = BestCheckpoint(start, checkpoints, record, plan.validate_every, patience)
        _fit(plan, rt, net, start, checkpoints, verbose, end=end, extra=[best])
        if best.stopped:
            return True
        start = max(start, end)
    return False


def _result(plan, rt, net, start, verbose, checkpoints, stopped, kept, pretrained) -> dict:
    """Exports the best validation checkpoint's weights (the last step's without validation)
    and evaluates them, through ``train()``'s ``_finish``."""
    best = read_best(plan.model_dir / BEST_RECORD) if plan.validate_every else None
    last = checkpoints.steps()[-1] if checkpoints.steps() else plan.total_steps
    step = last
    if best is not None and (checkpoints.folder / BEST).is_file():
        step = int(best["step"])
        if step != last:
            checkpoints.restore(net, checkpoints.folder / BEST)
        _say(rt, verbose, f"model.keras holds the best validation checkpoint: step {step} "
                          f"(validation top-1 {best['val_top1']:.2f}%)")  # fmt: skip
    else:
        _say(rt, verbose, f"model.keras holds the last step's weights (step {step})")
    provenance = f"fine-tuned from {pretrained} in {plan.model_dir} (step {step})"
    try:
        result = _finish(plan, rt, net, start, verbose, checkpoints, step, provenance)
    except KeyboardInterrupt as exc:
        if isinstance(exc, TrainingInterrupted):
            raise
        raise TrainingInterrupted(plan.total_steps, checkpoints) from None
    result.update(
        steps=last, head="kept" if kept else "new", head_steps=plan.recipe.head_steps,
        best_step=step, best_val_top1=best["val_top1"] if best else None,
        stopped_early_at=last if stopped else None, pretrained=pretrained,
    )  # fmt: skip
    if rt.chief:
        keys = ("pretrained", "head", "head_steps", "steps", "best_step", "best_val_top1",
                "stopped_early_at")  # fmt: skip
        _write_json(plan.model_dir / "finetune.json", {k: result[k] for k in keys})
    return result
