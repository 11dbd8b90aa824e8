"""Choosing the ``tf.distribute`` strategy and the mixed-precision policy."""

from __future__ import annotations

import json
import logging
import os

import tensorflow as tf

from inception.errors import UsageError

log = logging.getLogger(__name__)

STRATEGIES = ("auto", "tpu", "mirrored", "multi_worker", "one_device")
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")


def _tpu_hint() -> bool:
    """Whether a TPU may be reachable, without a network probe (a resolver would query GCE)."""
    return bool(
        os.environ.get("TPU_NAME")
        or os.environ.get("COLAB_TPU_ADDR")
        or os.path.exists("/dev/accel0")
        or os.path.exists("/dev/vfio/0")
    )


def _num_tf_config_workers() -> int:
    try:
        cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    except json.JSONDecodeError:
        raise UsageError("TF_CONFIG is not valid JSON.") from None
    return len(cluster.get("worker", [])) + len(cluster.get("chief", []))


def _tpu_strategy():
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(os.environ.get("TPU_NAME", ""))
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, tf.errors.OpError) as exc:
        raise UsageError(
            f"no TPU found ({exc}); use --strategy auto, mirrored or one_device."
        ) from None
    return tf.distribute.TPUStrategy(resolver)


def make_strategy(name: str | tf.distribute.Strategy = "auto") -> tf.distribute.Strategy:
    """``auto``: TPU if one is found, else multi-worker when TF_CONFIG lists several workers,
    else Mirrored over all GPUs when there are several, one GPU, or the default (CPU) strategy.
    A ``tf.distribute.Strategy`` object is returned as is."""
    if isinstance(name, tf.distribute.Strategy):
        return name
    if name not in STRATEGIES:
        raise UsageError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}.")
    if name == "tpu" or (name == "auto" and _tpu_hint()):
        try:
            return _tpu_strategy()
        except UsageError:
            if name == "tpu":
                raise
    if name == "multi_worker" or (name == "auto" and _num_tf_config_workers() > 1):
        if _num_tf_config_workers() < 1:
            raise UsageError(
                "--strategy multi_worker needs TF_CONFIG with a cluster of workers, e.g. "
                '{"cluster": {"worker": ["host1:port", "host2:port"]}, '
                '"task": {"type": "worker", "index": 0}}.'
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    # Only now: listing devices initialises the runtime, after which collective ops (the
    # multi-worker strategy above) can no longer be configured.
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        return tf.distribute.MirroredStrategy()
    if name == "one_device" or (name == "auto" and gpus):
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    return tf.distribute.get_strategy()


def precision_policy(name: str, strategy: tf.distribute.Strategy) -> str:
    """``auto``: ``mixed_bfloat16`` on TPU, ``mixed_float16`` on GPU, ``float32`` on CPU."""
    if name not in PRECISIONS:
        raise UsageError(
            f"unknown mixed precision {name!r}; choose one of {', '.join(PRECISIONS)}."
        )
    if name != "auto":
        return name
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return "mixed_bfloat16"
    if tf.config.list_logical_devices("GPU"):
        return "mixed_float16"
    return "float32"


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the one worker that writes checkpoints, logs and exports."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief
