"""Evaluation and prediction on every local device (``--devices``, ``devices=``).

* **TensorFlow**: a ``tf.distribute.MirroredStrategy`` over the chosen devices (the GPUs, else
  the CPUs: ``inception.devices``). The models are built in its scope (weights mirrored) and
  each micro-batch reaches ``predict_on_batch`` as one slice per device
  (``experimental_distribute_values_from_function``); Keras concatenates the slices' outputs in
  device order.
* **JAX**: ``keras.distribution.DataParallel`` over the chosen devices: weights replicated, each
  micro-batch sharded along its rows (``distribute_tensor``) into the one compiled program.
* **One device** (the default where only one is present, or ``devices=1``): no strategy and no
  distribution, exactly the single-device path. Exported ``.onnx`` / ``.tflite`` / ``.xml``
  models run in their own runtime, on one device.

The micro-batches stay those of ``runner.Runner``: each is split evenly across the devices (the
runner pads it to a multiple of the device count and drops the padding rows), so results are
those of one device, image for image.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field

import numpy as np

from ..devices import choose, local_devices, parse_count
from ..errors import UsageError

NONE = "none"  # the strategy of a one-device run


@dataclass
class Placement:
    """Where the models run: ``backend``, the ``strategy`` over ``devices`` (``"none"``: one
    device, nothing distributed)."""

    backend: str
    strategy: str = NONE
    devices: list[str] = field(default_factory=lambda: ["default"])
    distribution: object = field(default=None, repr=False)  # tf.distribute / keras.distribution

    @property
    def count(self) -> int:
        return len(self.devices) if self.distribution is not None else 1

    def record(self) -> dict:
        """The fields a result records: ``{"backend", "strategy", "devices"}`` (a count)."""
        return {"backend": self.backend, "strategy": self.strategy, "devices": self.count}

    def scope(self):
        """Where the models are built and run (weights on every device)."""
        if self.distribution is None:
            return contextlib.nullcontext()
        return self.distribution.scope()

    def adopt(self, model) -> None:
        """JAX: ``model``'s weights replicated over the devices, for a model built before the
        distribution was set (a Keras model passed in and run as it is); TensorFlow reads such
        weights from where they are."""
        if self.backend != "jax" or self.distribution is None or not hasattr(model, "variables"):
            return
        import keras

        for v in model.variables:
            layout = self.distribution.get_variable_layout(v)
            v.assign(keras.distribution.distribute_tensor(v.value, layout))

    def predict(self, model, x: np.ndarray, eager: bool = False):
        """``model``'s output for the rows of ``x`` (a multiple of ``count`` of them), split
        evenly across the devices."""
        if self.distribution is None:
            return model(x, training=False) if eager else model.predict_on_batch(x)
        return model.predict_on_batch(self._spread(x))

    def _spread(self, x: np.ndarray):
        if self.backend == "tensorflow":
            parts = np.split(x, self.count)
            return self.distribution.experimental_distribute_values_from_function(
                lambda context: parts[context.replica_id_in_sync_group]
            )
        import keras

        return keras.distribution.distribute_tensor(x, self.distribution.get_data_layout(x.shape))


def exported_entries(models) -> list[str]:
    """The entries of a model spec that are exported artifacts (``.onnx``, ``.tflite``,
    ``.xml``), which run in their own runtime."""
    from ..app.resolve import split_list
    from ..deploy.artifact import format_of

    entries = split_list(models)
    return [os.fspath(e) for e in entries if isinstance(e, (str, os.PathLike)) and format_of(e)]


def check_devices(devices, exported=()) -> int | None:
    """``devices`` as a count (``None``: all), checked before anything loads: exported models
    run on one device, so with them only 1 or ``"all"`` (which then means one device)."""
    count = parse_count(devices)
    if exported and count not in (None, 1):
        raise UsageError(
            f"{os.path.basename(exported[0])} runs in its own runtime on one device; drop "
            f"--devices {count} (or give --devices 1), or evaluate the .keras model instead."
        )
    return count


def placement(devices="all", models=None) -> Placement:
    """The :class:`Placement` of ``devices`` (a count, or ``"all"``) on the backend Keras runs
    on, for the model spec ``models``."""
    import keras

    backend = keras.backend.backend()
    exported = exported_entries(models) if models is not None else []
    if check_devices(devices, exported) == 1 or exported:
        return Placement(backend)
    chosen = choose(devices, local_devices(backend))
    if len(chosen) == 1:
        return Placement(backend, devices=chosen)
    if backend == "tensorflow":
        import tensorflow as tf

        mirrored = tf.distribute.MirroredStrategy(chosen)
        return Placement(backend, "MirroredStrategy", chosen, mirrored)
    if backend == "jax":
        parallel = keras.distribution.DataParallel(devices=chosen)
        return Placement(backend, "DataParallel", chosen, parallel)
    raise UsageError(
        f"several devices need the tensorflow or jax backend, not {backend}; "
        "give --devices 1 or set KERAS_BACKEND=tensorflow or jax."
    )
