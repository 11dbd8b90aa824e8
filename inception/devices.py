"""The devices a Keras backend computes on in this process, and the ``--devices`` count.

One place for both users: training (``inception.training.backend``: its strategies) and
evaluation and prediction (``inception.evaluation.devices``: ``inception eval`` / ``predict``
on every local device).

* TensorFlow: its logical devices by name (``/device:GPU:0``, ...); "the local devices" are the
  GPUs, else the CPUs (one, unless ``tf.config.set_logical_device_configuration`` made more).
* JAX: its devices as Keras names them (``cpu:0``, ``gpu:1``, ...); ``local=False``: those of
  every process of a multi-host run.

Nothing here imports a framework until a function that lists devices is called, so the command
line checks a ``--devices`` value (:func:`parse_count`) before TensorFlow loads.
"""

from __future__ import annotations

from .errors import UsageError

ALL = "all"


def tf_devices(kind: str | None = None) -> list[str]:
    """TensorFlow's logical devices of ``kind`` (``"GPU"``, ``"CPU"``) by name; ``None``: the
    GPUs, else the CPUs."""
    import tensorflow as tf

    for each in [kind] if kind else ["GPU", "CPU"]:
        found = [d.name for d in tf.config.list_logical_devices(each)]
        if found:
            return found
    return []


def jax_devices(local: bool = True) -> list[str]:
    """JAX's devices as Keras names them (``keras.distribution.list_devices``): this process's,
    or with ``local=False`` those of every process."""
    import jax

    return [f"{d.platform}:{d.id}" for d in (jax.local_devices() if local else jax.devices())]


def local_devices(backend: str) -> list[str]:
    """The devices ``backend`` computes on in this process (one name for any other backend)."""
    if backend == "tensorflow":
        return tf_devices()
    if backend == "jax":
        return jax_devices()
    return [f"{backend}:0"]


def parse_count(value) -> int | None:
    """A ``--devices`` / ``devices=`` value: a whole number of at least 1, or ``"all"`` (and
    ``None``), which give ``None``; anything else is one ``UsageError`` sentence."""
    if value is None or (isinstance(value, str) and value.strip().lower() == ALL):
        return None
    try:
        count = None if isinstance(value, (bool, float)) else int(str(value).strip())
    except ValueError:
        count = None
    if count is None or count < 1:
        raise UsageError(
            f"--devices takes a count of devices (1, 2, ...) or 'all' (every local device); "
            f"got {value!r}."
        )
    return count


def choose(value, present: list[str]) -> list[str]:
    """The first ``value`` devices of ``present`` (all of them for ``"all"``); a count larger
    than ``present`` is one sentence naming the devices present and the fix."""
    count = parse_count(value)
    if count is None:
        return list(present)
    if count > len(present):
        raise UsageError(
            f"--devices {count} asks for more devices than the {len(present)} present "
            f"({', '.join(present)}); give --devices {len(present)} or fewer, or --devices all."
        )
    return list(present[:count])
