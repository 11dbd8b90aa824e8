"""The tf.data input pipeline: source -> shuffle -> fused decode-and-crop + augmentation in
parallel -> batch -> prefetch, one pipeline per input worker through the strategy.

``train_dataset`` / ``eval_dataset`` build one (per-replica-batched) pipeline;
``distribute(strategy, ...)`` wraps them in ``strategy.distribute_datasets_from_function`` so
each input pipeline reads only its shard of the source and batches the per-replica batch.

Determinism: augmentation is seeded per example with ``(seed, example index)`` (stateless ops),
so with ``deterministic=True`` (ordered parallel map, seeded shuffles) the stream of batches is
a pure function of the seed, and ``start_step`` resumes it exactly: the examples of the first
``start_step`` batches are skipped before decoding (read, not decoded).
"""

from __future__ import annotations

import logging

import tensorflow as tf

from ..preprocessing import augment
from ..preprocessing.config import CROP_FRACTION
from .sources import Source

log = logging.getLogger(__name__)

AUTOTUNE = tf.data.AUTOTUNE
DEFAULT_SHUFFLE_BUFFER = 10_000


def _options(deterministic: bool, threads: int | None) -> tf.data.Options:
    options = tf.data.Options()
    options.deterministic = bool(deterministic)
    options.experimental_optimization.map_parallelization = True
    options.autotune.enabled = True
    if threads:
        options.threading.private_threadpool_size = threads
    return options


def train_dataset(
    source: Source,
    image_size: int,
    batch_size: int,
    *,
    seed: int = 0,
    deterministic: bool = False,
    colour_distortion: bool = False,
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
    start_step: int = 0,
    input_context: tf.distribute.InputContext | None = None,
    threads: int | None = None,
) -> tf.data.Dataset:
    """An endless stream of augmented training batches ``(images [B, S, S, 3] in [-1, 1],
    labels [B] int32)``; ``batch_size`` is this pipeline's batch (per replica under a strategy).
    Files that fail to decode are dropped (and logged by tf.data), never fatal."""
    ds = source.read(shuffle_files=True, seed=seed, input_context=input_context)
    ds = ds.shuffle(
        min(shuffle_buffer, max(source.num_examples, 1)), seed=seed, reshuffle_each_iteration=True
    )
    ds = ds.repeat().enumerate()
    if start_step:
        ds = ds.skip(int(start_step) * batch_size)

    def augmented(index, example):
        image_bytes, label = example
        image = augment.train_image(
            image_bytes, image_size, tf.stack([tf.cast(seed, tf.int64), index]), colour_distortion
        )
        return image, label

    ds = ds.map(augmented, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    ds = ds.ignore_errors(log_warning=True)
    ds = ds.batch(batch_size, drop_remainder=True)
    return ds.prefetch(AUTOTUNE).with_options(_options(deterministic, threads))


def eval_dataset(
    source: Source,
    image_size: int,
    batch_size: int,
    *,
    crop_fraction: float = CROP_FRACTION,
    input_context: tf.distribute.InputContext | None = None,
    threads: int | None = None,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """One ordered pass of central-crop batches ``(images, labels)``; the last batch may be
    smaller (or is dropped with ``drop_remainder``). Undecodable files are dropped."""
    ds = source.read(input_context=input_context)
    ds = ds.map(
        lambda image_bytes, label: (
            augment.eval_image(image_bytes, image_size, crop_fraction),
            label,
        ),
        num_parallel_calls=AUTOTUNE,
        deterministic=True,
    )
    ds = ds.ignore_errors(log_warning=True).batch(batch_size, drop_remainder=drop_remainder)
    return ds.prefetch(AUTOTUNE).with_options(_options(True, threads))


def distribute(strategy: tf.distribute.Strategy, global_batch_size: int, make, **kwargs):
    """``strategy.distribute_datasets_from_function`` over ``make(source-args...)``: ``make`` is
    ``train_dataset`` or ``eval_dataset`` (with its other arguments in ``kwargs``); each input
    pipeline gets its ``input_context`` and the per-replica batch of ``global_batch_size``."""

    def dataset_fn(context: tf.distribute.InputContext):
        per_replica = context.get_per_replica_batch_size(global_batch_size)
        return make(batch_size=per_replica, input_context=context, **kwargs)

    return strategy.distribute_datasets_from_function(dataset_fn)
