"""Everything training does differently on the TensorFlow and the JAX backend, in one place.

* TensorFlow (``KERAS_BACKEND=tensorflow``): a ``tf.distribute`` strategy: TPU, multi-worker
  (``TF_CONFIG``), mirrored over all GPUs, one device. The model is built and compiled in
  ``strategy.scope()``; every input pipeline reads its own shard
  (``distribute_datasets_from_function``).
* JAX (``KERAS_BACKEND=jax``): ``keras.distribution.DataParallel`` over all local devices (the
  batch is split over them, the weights replicated); several hosts after
  ``keras.distribution.initialize()``, which ``runtime()`` calls when
  ``KERAS_DISTRIBUTION_NUM_PROCESSES`` is set (with ``KERAS_DISTRIBUTION_JOB_ADDRESSES`` and
  ``KERAS_DISTRIBUTION_PROCESS_ID``, see Keras' documentation). Batch statistics are those of the
  global batch (one XLA program over all devices), as ``sync_batch_norm`` gives on TensorFlow.

Nothing here imports TensorFlow or JAX until the backend in use needs it.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field

import keras

from ..devices import jax_devices, tf_devices
from ..errors import UsageError
from ..optimize.precision import (
    Device,
    bfloat16_hardware,
    detect_devices,
    keras_policy,
    training_precision,
)
from ..precisions import PRECISIONS
from .options import JAX_STRATEGIES, STRATEGIES, TF_STRATEGIES


@dataclass
class Runtime:
    """Where a run trains: backend, devices, the distribution over them, whether this process
    is the one that writes files (``chief``), and whether the hardware computes in bfloat16."""

    backend: str
    strategy: str
    replicas: int
    devices: list[str]
    accelerator: str  # "cpu", "gpu" or "tpu"
    bfloat16: bool
    chief: bool = True
    tf_strategy: object = field(default=None, repr=False)
    previous_distribution: object = field(default=None, repr=False)

    @property
    def even_batches(self) -> bool:
        """Whether every batch must split evenly over the devices (JAX data parallel)."""
        return self.backend == "jax" and self.replicas > 1

    def sync_batch_norm(self, wanted: bool) -> bool:
        """``BatchNormalization(synchronized=)``: TensorFlow only; on JAX the statistics are
        the global batch's anyway."""
        return bool(wanted) and self.backend == "tensorflow"

    def scope(self):
        """Where the model, optimizer and metrics are created."""
        return self.tf_strategy.scope() if self.tf_strategy else contextlib.nullcontext()

    def train_input(self, make, global_batch: int):
        """``make(batch_size=..., input_context=...)`` as fit's input: per-replica pipelines under
        a ``tf.distribute`` strategy, one global-batch pipeline that Keras splits on JAX."""
        if self.tf_strategy is None:
            return make(batch_size=global_batch)
        from ..data import pipeline  # TensorFlow

        return pipeline.distribute(self.tf_strategy, global_batch, make)

    def close(self) -> None:
        if self.backend == "jax":
            keras.distribution.set_distribution(self.previous_distribution)


def runtime(strategy="auto") -> Runtime:
    """The :class:`Runtime` of ``strategy`` on the backend Keras runs on. ``strategy`` is a name
    of ``STRATEGIES`` or, on TensorFlow, a ``tf.distribute.Strategy`` object."""
    name = keras.backend.backend()
    if name == "tensorflow":
        return _tf_runtime(strategy)
    if name == "jax":
        return _jax_runtime(strategy)
    raise UsageError(
        f"training runs on the tensorflow or jax backend, not {name}; "
        "set KERAS_BACKEND=tensorflow or KERAS_BACKEND=jax."
    )


def resolve_precision(name: str, rt: Runtime) -> str:
    """The precision of a run on ``rt`` (``inception.optimize.precision.training_precision``):
    ``auto`` is bfloat16 where the hardware computes in bfloat16 (TPU, GPUs of compute
    capability 8.0 and later), float16 (with loss scaling) on older GPUs, float32 on CPUs."""
    try:
        return training_precision(name, rt.accelerator, rt.bfloat16)
    except ValueError:
        raise UsageError(
            f"unknown --precision {name!r}; choose one of {', '.join(PRECISIONS)}."
        ) from None


def precision_policy(name: str, rt: Runtime) -> str:
    """The Keras mixed-precision policy of precision ``name`` on ``rt``."""
    return keras_policy(resolve_precision(name, rt))


def clip_by_global_norm(grads: list, clip_norm: float | None) -> list:
    """The gradients scaled so that the norm of the GLOBAL batch's gradient is at most
    ``clip_norm``, in the form ``Optimizer.apply`` expects them on this backend.

    On JAX the gradients already are the global batch's. Under a ``tf.distribute`` strategy with
    several replicas each replica holds its own share and Keras sums the shares after clipping;
    here they are summed first, clipped, and handed back as ``1/replicas`` of the clipped total,
    so the sum Keras then takes is the clipped global gradient (the price: a second all-reduce)."""
    if not clip_norm:
        return list(grads)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        context = tf.distribute.get_replica_context()
        replicas = context.num_replicas_in_sync if context is not None else 1
        if replicas > 1:
            present = [i for i, g in enumerate(grads) if g is not None]
            total = context.all_reduce(tf.distribute.ReduceOp.SUM, [grads[i] for i in present])
            clipped = list(grads)
            for i, g in zip(present, _clip(total, clip_norm)):
                clipped[i] = g / replicas
            return clipped
    return _clip(grads, clip_norm)


def _clip(grads, clip_norm):
    ops = keras.ops
    squares = [ops.sum(ops.square(ops.cast(g, "float32"))) for g in grads if g is not None]
    norm = ops.sqrt(sum(squares))
    scale = clip_norm / ops.maximum(norm, clip_norm)
    return [None if g is None else g * ops.cast(scale, g.dtype) for g in grads]


# ------------------------------------------------------------------------------- TensorFlow


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


def _tpu_strategy(tf):
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(os.environ.get("TPU_NAME", ""))
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, tf.errors.OpError) as exc:
        raise UsageError(
            f"no TPU found ({exc}); use --strategy auto, mirrored or one_device."
        ) from None
    return tf.distribute.TPUStrategy(resolver)


def make_strategy(name="auto"):
    """``auto``: TPU if one is found, else multi-worker when TF_CONFIG lists several workers,
    else mirrored over all GPUs when there are several, one GPU, or the default (CPU) strategy.
    A ``tf.distribute.Strategy`` object is returned as is."""
    import tensorflow as tf

    if isinstance(name, tf.distribute.Strategy):
        return name
    if name in JAX_STRATEGIES:
        raise UsageError(
            f"--strategy {name} is for KERAS_BACKEND=jax; on tensorflow use auto, one_device, "
            f"{', '.join(TF_STRATEGIES)}."
        )
    if name not in STRATEGIES:
        raise UsageError(f"unknown --strategy {name!r}; choose one of {', '.join(STRATEGIES)}.")
    if name == "tpu" or (name == "auto" and _tpu_hint()):
        try:
            return _tpu_strategy(tf)
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
        return _multi_worker_strategy(tf)
    # Only now: listing devices initialises the runtime, after which collective ops (the
    # multi-worker strategy above) can no longer be configured.
    gpus = tf_devices("GPU")
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        return tf.distribute.MirroredStrategy()
    if name == "one_device" or (name == "auto" and gpus):
        return tf.distribute.OneDeviceStrategy(gpus[0] if gpus else "/cpu:0")
    return tf.distribute.get_strategy()


def _multi_worker_strategy(tf):
    """``MultiWorkerMirroredStrategy`` whose ``reduce`` accepts what Keras 3's ``fit`` gives it
    with several workers (keras-team/keras#20585): a nest of values (the input batch, reduced
    while the model is built), reduced leaf by leaf, and scalars (the step's loss and metrics)
    with ``axis=0``, reduced over the replicas only."""

    class MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
        def reduce(self, reduce_op, value, axis):
            parent = super().reduce

            def leaf(v):
                rank = self.experimental_local_results(v)[0].shape.rank
                return parent(reduce_op, v, None if rank == 0 else axis)

            return tf.nest.map_structure(leaf, value)

    return MultiWorkerMirroredStrategy()


def is_chief(strategy) -> bool:
    """True on the one worker that writes checkpoints, logs and exports."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief


def _tf_runtime(strategy) -> Runtime:
    import tensorflow as tf

    strategy = make_strategy(strategy)
    if isinstance(strategy, tf.distribute.TPUStrategy):
        found = [Device("tpu", "TPU")]
    else:  # a TPU the strategy does not use is not computed on
        found = [d for d in detect_devices("tensorflow") if d.kind != "tpu"] or [Device("cpu")]
    try:
        devices = list(strategy.extended.worker_devices)
    except RuntimeError:  # the default strategy: the one default device
        devices = [tf.config.list_logical_devices()[0].name]
    return Runtime(
        backend="tensorflow",
        strategy=type(strategy).__name__.strip("_"),  # _DefaultDistributionStrategy: no "_"
        replicas=strategy.num_replicas_in_sync,
        devices=[str(d) for d in devices],
        accelerator=found[0].kind,
        bfloat16=bfloat16_hardware(found),
        chief=is_chief(strategy),
        tf_strategy=strategy,
    )


# -------------------------------------------------------------------------------------- JAX


def _jax_runtime(strategy) -> Runtime:
    if not isinstance(strategy, str) or strategy not in ("auto", "one_device", *JAX_STRATEGIES):
        raise UsageError(
            f"--strategy {strategy} is not available on KERAS_BACKEND=jax; use auto "
            "(data parallel over all local devices), data_parallel or one_device."
        )
    if int(os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES", "1")) > 1:
        keras.distribution.initialize()
    import jax

    names = jax_devices(local=False)  # every process's: one mesh over all hosts
    found = detect_devices("jax")
    previous = keras.distribution.distribution()
    parallel = strategy == "data_parallel" or (strategy == "auto" and len(names) > 1)
    if parallel:
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=names))
    else:
        names = names[:1]
    return Runtime(
        backend="jax",
        strategy="DataParallel" if parallel else "OneDevice",
        replicas=len(names),
        devices=[str(d) for d in names],
        accelerator=found[0].kind,
        bfloat16=bfloat16_hardware(found),
        chief=jax.process_index() == 0,
        previous_distribution=previous,
    )


def make_deterministic() -> None:
    """Deterministic kernels where the backend has a switch for them: TensorFlow's op
    determinism (XLA is deterministic on CPU; on GPU set ``--xla_gpu_deterministic_ops``)."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
