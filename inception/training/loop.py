"""``train()``: the training loop over a ``tf.distribute`` strategy.

One step: every replica computes its share of the loss (per-example cross-entropy with label
smoothing summed and divided by the GLOBAL batch, plus 0.4 x the auxiliary head's, plus the L2
penalty divided by the number of replicas), the gradients are all-reduced once (sum), clipped
by their global norm and applied by RMSProp; the optimizer keeps the exponential moving average
of the weights. ``tf.train.CheckpointManager`` saves model + optimizer (step, slots, EMA) every
``checkpoint_every_steps`` and at the end; a rerun with the same ``model_dir`` resumes from the
latest checkpoint at the same step (the input stream is skipped to that step).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

import inception
from inception.data import load_source, pipeline
from inception.errors import UsageError

from .config import Recipe, load_recipe
from .strategy import is_chief, make_strategy, precision_policy

log = logging.getLogger(__name__)


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or Inf; the last good checkpoint is left as it was."""


class _RMSprop(keras.optimizers.RMSprop):
    """RMSProp that receives gradients already all-reduced by the training step (so clipping
    acts on the global gradient, once) and uses slim's EMA warm-up: the decay is
    ``min(decay, (1 + step) / (10 + step))``, so short runs average over their own steps."""

    def _all_reduce_sum_gradients(self, grads_and_vars):
        return list(grads_and_vars)

    def _update_model_variables_moving_average(self, trainable_variables):
        if not self.use_ema:
            return
        step = keras.ops.cast(self.iterations, "float32")
        decay = keras.ops.minimum(self.ema_momentum, (1.0 + step) / (10.0 + step))
        for var, average in zip(trainable_variables, self._model_variables_moving_average):
            if average is not None:
                d = keras.ops.cast(decay, var.dtype)
                average.assign(d * average + (1.0 - d) * var)


class PaperSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """``peak x decay_rate ** floor(step / decay_steps)``, after an optional linear warm-up."""

    def __init__(self, peak, decay_steps, decay_rate, warmup_steps=0):
        self.peak, self.decay_steps = float(peak), int(decay_steps)
        self.decay_rate, self.warmup_steps = float(decay_rate), int(warmup_steps)

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        lr = self.peak * keras.ops.power(self.decay_rate, keras.ops.floor(step / self.decay_steps))
        if self.warmup_steps:
            lr = lr * keras.ops.minimum(1.0, (step + 1.0) / self.warmup_steps)
        return lr

    def get_config(self):
        return dict(peak=self.peak, decay_steps=self.decay_steps, decay_rate=self.decay_rate,
                    warmup_steps=self.warmup_steps)  # fmt: skip


def _lr_schedule(recipe: Recipe, global_batch: int, steps_per_epoch: int):
    return PaperSchedule(
        recipe.learning_rate(global_batch),
        max(1, round(recipe.lr_decay_epochs * steps_per_epoch)),
        recipe.lr_decay_rate,
        round(recipe.warmup_epochs * steps_per_epoch),
    )


def _kernels(model) -> list:
    return [
        layer.kernel
        for layer in model.layers
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))
    ]


def _resolve(model_name, data, image_size, batch_size, num_replicas, recipe):
    config = inception.get_model_config(model_name)
    size = int(image_size or config.input_size)
    if size < config.min_input_size:
        raise UsageError(
            f"--image-size {size} is too small for {model_name}; it needs at least "
            f"{config.min_input_size}."
        )
    global_batch = int(batch_size or recipe.batch_size * num_replicas)
    if global_batch <= 0:
        raise UsageError(f"--batch-size must be positive, got {global_batch}.")
    if global_batch % num_replicas:
        raise UsageError(
            f"--batch-size {global_batch} is not divisible by the {num_replicas} replicas; use a "
            f"multiple of {num_replicas} (the global batch is split evenly over replicas)."
        )
    return size, global_batch


_SCALAR_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")
)


def _scalar(tag: str, value: float) -> None:
    """A TensorBoard scalar, written without needing the tensorboard package installed."""
    tf.summary.write(tag, tf.constant(value, tf.float32), metadata=_SCALAR_METADATA)


def _write_json(path: Path, value) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(value, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def _truncate_metrics(path: Path, step: int) -> None:
    """Keeps the metrics lines of steps ``<= step`` (the checkpoint resumed from): the steps a
    killed run logged after its last checkpoint are run again, and a line cut by the kill is
    dropped, so ``metrics.jsonl`` holds each step once."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line + "\n")
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(kept))
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
    strategy: str | tf.distribute.Strategy = "auto",
    mixed_precision: str = "auto",
    seed: int | None = None,
    deterministic: bool = False,
    data_dir: str | None = None,
    eval_split: str | None = "validation",
    variant: str | None = None,
    checkpoint_every: int | None = None,
    verbose: int = 1,
) -> dict:
    """Trains ``model`` (a registered name) on ``data`` and writes everything to ``model_dir``.

    Args:
        model: ``inception_v4``, ``inception_resnet_v1`` or ``inception_resnet_v2``.
        data: ``"imagenet2012"``, ``"tfds:NAME"`` or a folder (see ``inception.data.sources``).
        model_dir: checkpoints (``checkpoints/``), TensorBoard logs (``logs/``),
            ``metrics.jsonl``, ``config.json``; at the end ``model.keras``,
            ``model.weights.h5`` (EMA weights, no aux head, softmax top) and ``eval.json``.
            An existing checkpoint there is resumed.
        image_size: input height = width (default: the model's, 299).
        batch_size: GLOBAL batch, split over replicas (default: recipe batch x replicas).
        epochs / steps: length of the run (one of them; ``steps`` wins). Counted from step 0,
            so a resumed run stops at the same total.
        recipe: ``"paper"`` (default), ``"demo"``, a JSON file, a dict or a :class:`Recipe`.
        strategy: ``auto|tpu|mirrored|multi_worker|one_device`` or a strategy object.
        mixed_precision: ``auto|float32|mixed_float16|mixed_bfloat16``.
        seed: seeds initialisation, dropout, shuffling and augmentation (default 0 when
            ``deterministic``, else random).
        deterministic: ordered input pipeline and deterministic TF ops: a run (and a resumed
            run) reproduces the same weights on the same hardware.
        data_dir: tfds data directory.
        eval_split: split evaluated at the end with the EMA weights (``None``: skip).
        variant: model variant (default: the model's default).
        checkpoint_every: steps between checkpoints (default: the recipe's).
        verbose: 1 progress bar, 0 quiet.

    Returns:
        ``{"model_dir", "steps", "resumed_from", "keras_model", "weights", "metrics",
        "train_metrics", "class_names", "image_size", "num_classes"}``.
    """
    recipe = load_recipe(recipe)
    model_dir = Path(model_dir).expanduser()
    if steps is None and epochs is None:
        raise UsageError("give the length of the run: --epochs N or --steps N.")
    # First: MultiWorkerMirroredStrategy must configure collective ops before anything
    # initialises the TF runtime (seeding does).
    strategy = make_strategy(strategy)
    if seed is None:
        seed = 0 if deterministic else int.from_bytes(os.urandom(3), "little")
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()

    replicas = strategy.num_replicas_in_sync
    size, global_batch = _resolve(model, data, image_size, batch_size, replicas, recipe)
    source = load_source(data, "train", data_dir=data_dir)
    steps_per_epoch = max(1, source.num_examples // global_batch)
    total_steps = int(steps) if steps is not None else math.ceil(float(epochs) * steps_per_epoch)
    if total_steps <= 0:
        raise UsageError("the run must have at least one step (--steps or --epochs too small).")
    policy = precision_policy(mixed_precision, strategy)
    aux = recipe.aux_logits and size >= 107
    chief = is_chief(strategy)

    previous_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        with strategy.scope():
            net = inception.build(
                model,
                input_shape=(size, size, 3),
                classes=source.num_classes,
                classifier_activation=None,
                aux_logits=aux,
                dropout_rate=recipe.dropout_rate,
                conv_bn=inception.ConvBN(
                    synchronized=recipe.sync_batch_norm,
                    **({"momentum": recipe.bn_momentum} if recipe.bn_momentum is not None else {}),
                ),
                **({"variant": variant} if variant else {}),
            )
            optimizer = _RMSprop(
                learning_rate=_lr_schedule(recipe, global_batch, steps_per_epoch),
                rho=recipe.rmsprop_rho,
                momentum=recipe.rmsprop_momentum,
                epsilon=recipe.rmsprop_epsilon,
                global_clipnorm=recipe.gradient_clip_norm,
                use_ema=recipe.ema_decay is not None,
                ema_momentum=recipe.ema_decay or 0.99,
                name="rmsprop",
            )
            if policy == "mixed_float16":
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
            optimizer.build(net.trainable_variables)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
    inner = getattr(optimizer, "inner_optimizer", optimizer)

    checkpoint = tf.train.Checkpoint(model=net, optimizer=optimizer)
    ckpt_dir = model_dir / "checkpoints"
    write_dir = ckpt_dir if chief else Path(tempfile.mkdtemp(prefix="inception-worker-ckpt-"))
    manager = tf.train.CheckpointManager(
        checkpoint, os.fspath(write_dir), max_to_keep=recipe.keep_checkpoints
    )
    latest = tf.train.latest_checkpoint(os.fspath(ckpt_dir))
    if latest:
        checkpoint.restore(latest).assert_existing_objects_matched()
    start = int(inner.iterations.numpy())
    every = int(checkpoint_every or recipe.checkpoint_every_steps)

    resolved = {
        "model": model,
        "variant": variant,
        "data": data,
        "data_dir": data_dir,
        "num_examples": source.num_examples,
        "skipped_files": source.skipped,
        "num_classes": source.num_classes,
        "class_names": source.class_names,
        "image_size": size,
        "global_batch_size": global_batch,
        "replicas": replicas,
        "strategy": type(strategy).__name__,
        "mixed_precision": policy,
        "aux_logits": aux,
        "learning_rate": recipe.learning_rate(global_batch),
        "steps_per_epoch": steps_per_epoch,
        "total_steps": total_steps,
        "seed": seed,
        "deterministic": deterministic,
        "recipe": dataclasses.asdict(recipe),
    }
    metrics_path = model_dir / "metrics.jsonl"
    if chief:
        model_dir.mkdir(parents=True, exist_ok=True)
        _write_json(model_dir / "config.json", resolved)
        _truncate_metrics(metrics_path, start)

    dist_ds = pipeline.distribute(
        strategy,
        global_batch,
        lambda **kw: pipeline.train_dataset(
            source,
            size,
            seed=seed,
            deterministic=deterministic,
            colour_distortion=recipe.colour_distortion,
            start_step=start,
            **kw,
        ),
    )
    train_step = _make_train_step(strategy, net, optimizer, recipe, global_batch, aux, replicas)
    scaled_loss = policy == "mixed_float16"

    writer = tf.summary.create_file_writer(os.fspath(model_dir / "logs")) if chief else None
    bar = keras.utils.Progbar(total_steps, stateful_metrics=["loss", "top1", "top5", "img/s"])
    if verbose and start:
        print(f"resuming from {latest} at step {start}")
    iterator = iter(dist_ds)
    step, record = start, {}
    try:
        while step < total_steps:
            t0 = time.perf_counter()
            loss, top1, top5, grad_norm = (float(v) for v in train_step(iterator))
            step += 1
            # A non-finite gradient (with loss scaling: expected now and then, and skipped by
            # the LossScaleOptimizer) would put NaN weights into the next checkpoint.
            if not math.isfinite(loss) or (not scaled_loss and not math.isfinite(grad_norm)):
                what = f"loss became {loss}" if not math.isfinite(loss) else "gradient became NaN"
                raise TrainingDivergedError(
                    f"{what} at step {step}; stopped without saving. The last good "
                    f"checkpoint is {manager.latest_checkpoint or '(none yet)'}: lower the "
                    "learning rate (--recipe) or check the data, then rerun to resume."
                )
            rate = global_batch / max(time.perf_counter() - t0, 1e-9)
            lr = float(inner.learning_rate)
            record = {"step": step, "loss": loss, "top1": top1 / global_batch,
                      "top5": top5 / global_batch, "images_per_sec": rate, "lr": lr}  # fmt: skip
            if verbose:
                bar.update(step, [("loss", loss), ("top1", record["top1"]),
                                  ("top5", record["top5"]), ("img/s", rate)])  # fmt: skip
            if chief:
                with writer.as_default(step=step):
                    for key in ("loss", "top1", "top5", "images_per_sec", "lr"):
                        _scalar(f"train/{key}", record[key])
                with open(metrics_path, "a") as f:
                    f.write(json.dumps({**record, "time": time.time()}) + "\n")
            if step % every == 0 or step == total_steps:
                manager.save(checkpoint_number=step)
    finally:
        if writer is not None:
            writer.flush()
        if not chief:
            shutil.rmtree(write_dir, ignore_errors=True)

    result = {
        "model_dir": os.fspath(model_dir),
        "steps": step,
        "resumed_from": start,
        "train_metrics": record,
        "class_names": source.class_names,
        "image_size": size,
        "num_classes": source.num_classes,
    }
    export = _export_model(model, net, inner, size, source.num_classes, variant)
    # Identical on every worker of a synchronous run (the tests compare it across workers).
    result["weights_checksum"] = float(
        sum(np.sum(w, dtype=np.float64) for w in export.get_weights())
    )
    if eval_split:
        result["metrics"] = evaluate_split(export, data, eval_split, size, global_batch, data_dir)
    if chief:
        result["keras_model"] = os.fspath(model_dir / "model.keras")
        result["weights"] = os.fspath(model_dir / "model.weights.h5")
        export.save(result["keras_model"])
        export.save_weights(result["weights"])
        if "metrics" in result:
            _write_json(model_dir / "eval.json", result["metrics"])
    return result


def _make_train_step(strategy, net, optimizer, recipe, global_batch, aux, replicas):
    kernels = _kernels(net)
    smoothing = recipe.label_smoothing
    num_classes = net.outputs[0].shape[-1]

    def cross_entropy(labels, logits):
        targets = tf.one_hot(labels, num_classes) * (1.0 - smoothing) + smoothing / num_classes
        return tf.nn.softmax_cross_entropy_with_logits(targets, tf.cast(logits, tf.float32))

    def step_fn(images, labels):
        with tf.GradientTape() as tape:
            outputs = net(images, training=True)
            logits, aux_logits = (outputs[0], outputs[1]) if aux else (outputs, None)
            loss = tf.reduce_sum(cross_entropy(labels, logits)) / global_batch
            if aux_logits is not None:
                aux_loss = tf.reduce_sum(cross_entropy(labels, aux_logits)) / global_batch
                loss += recipe.aux_loss_weight * aux_loss
            if recipe.weight_decay:
                l2 = tf.add_n([tf.nn.l2_loss(tf.cast(k, tf.float32)) for k in kernels])
                loss += recipe.weight_decay * l2 / replicas
            scaled = optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, net.trainable_variables)
        context = tf.distribute.get_replica_context()
        grads = context.all_reduce(tf.distribute.ReduceOp.SUM, grads)
        grad_norm = tf.linalg.global_norm([tf.cast(g, tf.float32) for g in grads])
        optimizer.apply(grads, net.trainable_variables)
        logits = tf.cast(logits, tf.float32)
        top1 = tf.reduce_sum(tf.cast(tf.math.in_top_k(labels, logits, 1), tf.float32))
        top5 = tf.reduce_sum(
            tf.cast(tf.math.in_top_k(labels, logits, min(5, num_classes)), tf.float32)
        )
        # The gradients are already all-reduced: every replica holds the same norm.
        return loss, top1, top5, grad_norm / replicas

    @tf.function(autograph=False)
    def train_step(iterator):
        images, labels = next(iterator)
        per_replica = strategy.run(step_fn, args=(images, labels))
        return [strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for v in per_replica]

    return train_step


def _export_model(model_name, net, optimizer, size, num_classes, variant):
    """A float32 copy of the network with softmax top, no aux head, and the EMA weights."""
    keras.mixed_precision.set_global_policy("float32")
    export = inception.build(
        model_name,
        input_shape=(size, size, 3),
        classes=num_classes,
        **({"variant": variant} if variant else {}),
    )
    averages = {}
    if optimizer.use_ema:
        for var, avg in zip(net.trainable_variables, optimizer._model_variables_moving_average):
            averages[id(var)] = avg
    for layer in export.layers:
        if not layer.weights:
            continue
        source_layer = net.get_layer(layer.name)
        values = []
        for var in source_layer.weights:
            avg = averages.get(id(var))
            values.append(np.asarray((avg if avg is not None else var).numpy(), np.float32))
        layer.set_weights(values)
    return export


def evaluate_split(model, data, split, size, batch_size, data_dir=None) -> dict:
    """Top-1 / top-5 accuracy and mean cross-entropy of ``model`` (softmax outputs) on a split."""
    try:
        source = load_source(data, split, data_dir=data_dir)
    except UsageError as exc:
        log.warning("no evaluation: %s", exc)
        return {}
    ds = pipeline.eval_dataset(source, size, batch_size)
    predict = tf.function(lambda x: model(x, training=False), autograph=False)
    n = top1 = top5 = 0
    nll = 0.0
    for images, labels in ds:
        probs = predict(images)
        k = min(5, probs.shape[-1])
        top1 += int(tf.reduce_sum(tf.cast(tf.math.in_top_k(labels, probs, 1), tf.int32)))
        top5 += int(tf.reduce_sum(tf.cast(tf.math.in_top_k(labels, probs, k), tf.int32)))
        picked = tf.gather(probs, labels, batch_dims=1)
        nll += float(tf.reduce_sum(-tf.math.log(tf.maximum(picked, 1e-12))))
        n += int(labels.shape[0])
    return {
        "split": split,
        "examples": n,
        "top1": top1 / max(n, 1),
        "top5": top5 / max(n, 1),
        "loss": nll / max(n, 1),
    }
