"""``train()``: the recipe compiled into the model and run by Keras' ``fit``, on TensorFlow or JAX.

A run: resolve the options into a :class:`Plan` (written to ``config.json``), build and compile
the model where the backend wants it (``backend.Runtime``), restore the newest checkpoint, skip
the input to its step, ``fit`` in periods of ``checkpoint_every`` steps with the callbacks of
``callbacks.py`` (checkpoint, metrics, divergence, exact last step, progress) and Keras' own
TensorBoard callback and validation, then export the moving-average weights as an inference
model and evaluate it with ``inception.evaluate``.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import warnings
from pathlib import Path

import keras
import numpy as np

from ..app.builders import build
from ..data import load_source, pipeline
from ..errors import UsageError
from ..evaluation.evaluator import evaluate
from ..models.info import model_info, save_model, set_model_info
from ..precisions import OLD_PRECISIONS
from . import backend
from .callbacks import (
    MetricsLog,
    PeriodCheckpoint,
    StopAtStep,
    StopOnDivergence,
    TrainingDivergedError,
    TrainingInterrupted,
    truncate_metrics,
)
from .checkpoints import Checkpoints, DiskFullError, guarded_write, variables_bytes
from .config import Recipe, load_recipe
from .plan import Plan, make_plan, notice
from .progress import Progress

__all__ = ["train", "TrainingDivergedError", "TrainingInterrupted", "DiskFullError"]

SKIPPED_FILES = "skipped_files.txt"  # in the model directory: every file the sources skipped


def _build(plan: Plan, rt: backend.Runtime):
    """The training model (logits, aux head, the recipe's BN and L2), compiled in the runtime's
    scope under the run's precision policy."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(plan.policy)
    try:
        with rt.scope():
            sync = rt.sync_batch_norm(plan.recipe.sync_batch_norm)
            conv_bn = plan.recipe.conv_bn(synchronized=sync)
            net = build(
                plan.model, input_shape=(plan.image_size, plan.image_size, 3),
                classes=plan.source.num_classes, classifier_activation=None,
                aux_logits=plan.aux, dropout_rate=plan.recipe.dropout_rate, conv_bn=conv_bn,
                **({"variant": plan.variant} if plan.variant else {}),
            )  # fmt: skip
            net.compile(
                **plan.recipe.compile_arguments(net, plan.global_batch, plan.steps_per_epoch)
            )
            net.optimizer.build(net.trainable_variables)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    return net


def _inputs(plan: Plan, rt: backend.Runtime, start: int):
    """Training batches from step ``start`` on, and the periodic validation batches with their
    number (``None, None`` without validation)."""

    def make(**kw):
        dataset = pipeline.train_dataset(
            plan.source, plan.image_size, seed=plan.seed, deterministic=plan.deterministic,
            colour_distortion=plan.recipe.colour_distortion, start_step=start, **kw,
        )  # fmt: skip
        if plan.train_map is not None:  # batch augmentation, sample weights (finetune)
            dataset = dataset.map(plan.train_map, num_parallel_calls=pipeline.AUTOTUNE,
                                  deterministic=plan.deterministic)  # fmt: skip
        return _per_output(plan, dataset)

    train_input = rt.train_input(make, plan.global_batch)
    count = plan.validation.num_examples if plan.validate_every else 0
    batch = plan.global_batch
    exact = rt.even_batches
    if exact and count < batch:
        batch = max(rt.replicas, count // rt.replicas * rt.replicas)
    steps = count // batch if exact else -(-count // batch)
    if not steps:
        return train_input, None, None
    validation = pipeline.eval_dataset(
        plan.validation, plan.image_size, batch, drop_remainder=exact
    )
    return train_input, _per_output(plan, validation), steps


def _per_output(plan: Plan, dataset):
    """``(images, labels)``, or ``(images, (labels, labels))`` for a model with the auxiliary
    head: Keras wants one target per output, and both heads learn the same labels."""
    return dataset.map(lambda x, y: (x, (y, y))) if plan.aux else dataset


def _callbacks(plan: Plan, rt: backend.Runtime, start: int, checkpoints, verbose: int,
               end: int, extra=()):  # fmt: skip
    """Divergence first (nothing of a diverged step gets written), then checkpoint, the
    ``extra`` callbacks, metrics, TensorBoard and progress (chief only), and the stop at step
    ``end``."""
    callbacks = [
        StopOnDivergence(start, checkpoints, plan.log_every),
        PeriodCheckpoint(start, checkpoints),
        *extra,
    ]
    progress = None
    if rt.chief:
        schedule = plan.recipe.schedule(plan.global_batch, plan.steps_per_epoch)
        path = plan.model_dir / "metrics.jsonl"
        callbacks.append(
            MetricsLog(path, start, plan.total_steps, plan.global_batch, schedule, plan.log_every)
        )
        if importlib.util.find_spec("tensorboard"):  # Keras' TensorBoard callback writes with it
            logs = os.fspath(plan.model_dir / "logs")
            callbacks.append(keras.callbacks.TensorBoard(logs, write_graph=False))
        else:
            notice("no TensorBoard logs: pip install 'inception[tensorboard]'.", verbose)
        if verbose:
            progress = Progress(start, plan.total_steps, plan.global_batch)
            callbacks.append(progress)
    callbacks.append(StopAtStep(start, end))
    return callbacks, progress


def _fit(plan: Plan, rt: backend.Runtime, net, start: int, checkpoints, verbose: int,
         end: int | None = None, extra=()) -> None:  # fmt: skip
    """``fit`` from step ``start`` to step ``end`` (default: the last step), in periods of
    ``plan.period`` steps, with the ``extra`` callbacks too; at the last step the model holds
    the moving averages (``PaperRMSProp.finalize_variable_values``)."""
    end = plan.total_steps if end is None else int(end)
    if start >= end:
        if end >= plan.total_steps:
            net.optimizer.finalize_variable_values(net.trainable_variables)
        return
    back_on_grid = start + (-start) % plan.period
    if start < back_on_grid < end:  # checkpoints and validations stay at multiples of the period
        _fit(plan, rt, net, start, checkpoints, verbose, back_on_grid, extra)
        start = back_on_grid
    train_input, validation, validation_steps = _inputs(plan, rt, start)
    callbacks, progress = _callbacks(plan, rt, start, checkpoints, verbose, end, extra)
    first = start // plan.period
    try:
        net.fit(
            train_input,
            epochs=first + math.ceil((end - start) / plan.period),
            initial_epoch=first,
            steps_per_epoch=plan.period,
            validation_data=validation,
            validation_steps=validation_steps,  # known: no warning at the end of the data
            validation_freq=max(1, plan.validate_every // plan.period),
            callbacks=callbacks,
            shuffle=False,  # the input pipeline shuffles
            verbose=0,
        )
    except KeyboardInterrupt:
        raise TrainingInterrupted(callbacks[-1].step, checkpoints) from None  # StopAtStep's
    finally:
        if progress is not None:
            progress.done.set()


def _export(plan: Plan, net, provenance: str | None = None):
    """A float32 copy of the network with a softmax top and no aux head, holding ``net``'s
    weights, and the model record (class names, image size, ``provenance``: where the weights
    come from) it is saved with."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        export = build(
            plan.model, input_shape=(plan.image_size, plan.image_size, 3),
            classes=plan.source.num_classes, **({"variant": plan.variant} if plan.variant else {}),
        )  # fmt: skip
    finally:
        keras.mixed_precision.set_global_policy(previous)
    for layer in export.layers:
        if layer.weights:
            values = net.get_layer(layer.name).get_weights()
            layer.set_weights([np.asarray(v, np.float32) for v in values])
    info = model_info(export).replace(
        class_names=tuple(plan.source.class_names),
        weights=provenance or f"trained in {plan.model_dir}",
    )
    set_model_info(export, info)
    return export


def _evaluate(plan: Plan, export) -> dict:
    """Top-1/top-5 (percent) of the exported model on the evaluation split, through the same
    ``inception.evaluate`` as ``inception eval``."""
    if plan.eval_split is None:
        return {}
    held_out = plan.eval_held_out
    if not held_out:
        source = plan.source
    elif plan.eval_split == "validation" and plan.validation is not None:
        source = plan.validation  # labelled by the training classes
    else:
        source = load_source(plan.data, plan.eval_split, data_dir=plan.data_dir)
    result = evaluate(
        export, plan.data, split=plan.eval_split, data_dir=plan.data_dir,
        batch_size=plan.global_batch, source=source, progress=False,
        devices=1,  # inside the run's own strategy: as before, no second one over it
    )  # fmt: skip
    scores = result["models"][0]
    return {
        "data": result["data"], "split": plan.eval_split, "held_out": held_out,
        "num_images": scores["num_images"], "top1": scores["top1"], "top5": scores["top5"],
        "top1_error": scores["top1_error"], "top5_error": scores["top5_error"],
        "images_per_second": result["images_per_second"],
    }  # fmt: skip


def _write_json(path: Path, value) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(value, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def train(
    model: str,
    data: str,
    model_dir: str | os.PathLike,
    *,
    image_size: int | None = None,
    batch_size: int | None = None,
    epochs: float | None = None,
    steps: int | None = None,
    recipe: str | dict | Recipe = "paper",
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
    mixed_precision: str | None = None,
) -> dict:
    """Trains ``model`` (a registered name) on ``data`` and writes everything to ``model_dir``.

    Runs on the backend Keras runs on (``KERAS_BACKEND=tensorflow`` or ``jax``). Arguments are
    those of ``inception train`` (``docs/training.md``): ``epochs``/``steps`` count from step 0,
    so a resumed run stops at the same total; ``batch_size`` is the global batch; ``strategy``
    also takes a ``tf.distribute.Strategy``; ``eval_split=None`` skips the final evaluation;
    ``validate_every=0`` the periodic one; ``keep_checkpoints`` overrides the recipe's;
    ``verbose=0`` prints nothing. ``precision`` is ``"auto"``, ``"float32"``, ``"bfloat16"`` or
    ``"float16"`` (mixed precision: the variables stay float32), the vocabulary of inference;
    ``mixed_precision=`` is its deprecated former name, which also takes the former values
    ``"mixed_bfloat16"`` and ``"mixed_float16"``.

    Raises:
        UsageError: bad options or data (before anything is built).
        TrainingDivergedError: the loss or the weights became NaN or Inf.
        DiskFullError: a checkpoint or the trained model could not be written.
        TrainingInterrupted: Ctrl-C (a ``KeyboardInterrupt``), with the step to resume from.

    Returns:
        ``{"model_dir", "steps", "resumed_from", "keras_model", "weights", "metrics" (the final
        evaluation: "split", "held_out", "num_images", "top1", "top5" in percent...),
        "train_metrics" (the last metrics.jsonl record), "class_names", "image_size",
        "num_classes", "backend", "replicas", "weights_checksum"}``.
    """
    if keep_checkpoints is not None and int(keep_checkpoints) < 1:
        raise UsageError(f"--keep-checkpoints must be at least 1, got {keep_checkpoints}.")
    recipe = load_recipe(recipe, keep_checkpoints=keep_checkpoints)
    precision = _precision_argument(precision, mixed_precision)
    if steps is None and epochs is None:
        raise UsageError("give the length of the run: --epochs N or --steps N.")
    opts = dict(image_size=image_size, batch_size=batch_size, epochs=epochs, steps=steps,
                precision=precision, seed=seed, deterministic=deterministic,
                data_dir=data_dir, eval_split=eval_split, variant=variant,
                checkpoint_every=checkpoint_every, validate_every=validate_every,
                log_every=log_every, verbose=verbose)  # fmt: skip
    rt = backend.runtime(strategy)  # first: the multi-worker strategy precedes any TF op
    checkpoints, start = None, None
    try:
        plan = make_plan(model, data, model_dir, recipe, rt, opts)
        _say(rt, verbose, plan.summary(rt))
        checkpoints = Checkpoints(plan.model_dir / "checkpoints", recipe.keep_checkpoints, rt.chief)
        keras.utils.set_random_seed(plan.seed)
        if plan.deterministic:
            backend.make_deterministic()
        net = _build(plan, rt)
        start = _start(plan, rt, net, checkpoints, verbose)
        _fit(plan, rt, net, start, checkpoints, verbose)
    except KeyboardInterrupt as exc:
        if isinstance(exc, TrainingInterrupted) or checkpoints is None:
            raise
        # Before fit: ``start`` is None while the checkpoint is being restored.
        raise TrainingInterrupted(start, checkpoints) from None
    finally:
        rt.close()
    try:
        return _finish(plan, rt, net, start, verbose, checkpoints)
    except KeyboardInterrupt as exc:
        if isinstance(exc, TrainingInterrupted):
            raise
        raise TrainingInterrupted(plan.total_steps, checkpoints) from None


def _precision_argument(precision: str, mixed_precision: str | None) -> str:
    """``precision``, or the deprecated ``mixed_precision=`` in its place; a former ``mixed_*``
    name becomes its new one, with a ``DeprecationWarning``."""
    if mixed_precision is not None:
        if precision != "auto" and precision != OLD_PRECISIONS.get(
            mixed_precision, mixed_precision
        ):
            raise UsageError("give precision= only (mixed_precision= is its former name).")
        warnings.warn("train(mixed_precision=) is deprecated; use precision= (auto, float32, "
                      "bfloat16, float16).", DeprecationWarning, stacklevel=3)  # fmt: skip
        precision = mixed_precision
    if precision in OLD_PRECISIONS:
        warnings.warn(f"precision {precision!r} is deprecated; use {OLD_PRECISIONS[precision]!r}.",
                      DeprecationWarning, stacklevel=3)  # fmt: skip
        precision = OLD_PRECISIONS[precision]
    return precision


def _say(rt: backend.Runtime, verbose: int, text: str) -> None:
    if verbose and rt.chief:
        print(text, flush=True)


def _start(plan: Plan, rt: backend.Runtime, net, checkpoints: Checkpoints, verbose: int) -> int:
    """Restores the newest checkpoint (the step it was saved at; 0 without one) and, on the
    chief, writes ``config.json`` and drops the metrics logged after that step."""
    latest = checkpoints.latest()
    start = checkpoints.restore(net, latest) if latest else 0
    if rt.chief:
        plan.model_dir.mkdir(parents=True, exist_ok=True)
        checkpoints.clean_partial()
        for partial in plan.model_dir.glob("partial-model.*"):
            partial.unlink(missing_ok=True)
        _write_json(plan.model_dir / "config.json", plan.record(rt))
        _write_skipped(plan, verbose)
        truncate_metrics(plan.model_dir / "metrics.jsonl", start)
        if verbose and start:
            print(f"resuming from {latest} at step {start}", flush=True)
    return start


def _write_skipped(plan: Plan, verbose: int) -> None:
    """Lists every file the training and validation sources skipped as unreadable in
    ``skipped_files.txt`` (one path a line; removed when none was)."""
    path = plan.model_dir / SKIPPED_FILES
    skipped = list(plan.source.skipped_files)
    if plan.validation is not None:
        skipped += plan.validation.skipped_files
    if not skipped:
        path.unlink(missing_ok=True)
        return
    path.write_text("".join(f"{name}\n" for name in skipped))
    notice(f"{len(skipped)} unreadable file(s) skipped, all listed in {path}.", verbose)


def _save(export, path: Path, what: str, checkpoints: Checkpoints | None) -> str:
    """``inception.save_model`` under a temporary name, renamed when complete; a full disk is
    a :class:`DiskFullError` and leaves no partial file."""
    partial = path.with_name("partial-" + path.name)
    guarded_write(partial, lambda: save_model(export, partial),
                  variables_bytes(export.weights), what,
                  checkpoints.latest() if checkpoints else None)  # fmt: skip
    os.replace(partial, path)
    return os.fspath(path)


def _finish(plan: Plan, rt: backend.Runtime, net, start: int, verbose: int = 0,
            checkpoints: Checkpoints | None = None, step: int | None = None,
            provenance: str | None = None) -> dict:  # fmt: skip
    """Exports the averaged weights (chief: ``model.keras``, ``model.weights.h5``) and
    evaluates them (chief: ``eval.json``); ``step``: the step the weights are of (default the
    last), ``provenance``: the model record's ``weights``."""
    step = plan.total_steps if step is None else int(step)
    export = _export(plan, net, provenance)
    result = {
        "model_dir": os.fspath(plan.model_dir), "steps": plan.total_steps,
        "resumed_from": start, "class_names": plan.source.class_names,
        "image_size": plan.image_size, "num_classes": plan.source.num_classes,
        "backend": rt.backend, "replicas": rt.replicas, "train_metrics": _last_record(plan),
        # Identical on every worker of a synchronous run (the tests compare it across workers).
        "weights_checksum": float(sum(np.sum(w, dtype=np.float64) for w in export.get_weights())),
    }  # fmt: skip
    if not rt.chief:
        return result
    for key, name in (("keras_model", "model.keras"), ("weights", "model.weights.h5")):
        what = f"the trained model {name} (step {step})"
        result[key] = _save(export, plan.model_dir / name, what, checkpoints)
    _say(rt, verbose, f"saved {result['keras_model']} and {result['weights']}")
    if plan.eval_split:
        averaged = "averaged " if plan.recipe.ema_decay else ""
        _say(rt, verbose, f"evaluating the {averaged}weights on the {plan.eval_split} split")
    result["metrics"] = _evaluate(plan, export)
    if result["metrics"]:
        _write_json(plan.model_dir / "eval.json", result["metrics"])
        m = result["metrics"]
        top5 = "" if m["top5"] is None else f", top-5 {m['top5']:.2f}%"  # None: <= 5 classes
        _say(rt, verbose, f"{m['split']}: top-1 {m['top1']:.2f}%{top5} on "
                          f"{m['num_images']} images (eval.json)")  # fmt: skip
    return result


def _last_record(plan: Plan) -> dict:
    path = plan.model_dir / "metrics.jsonl"
    if not path.exists():
        return {}
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    train_records = [r for r in records if "loss" in r]
    return train_records[-1] if train_records else {}
