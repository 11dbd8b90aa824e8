"""Which arithmetic precision an optimised model runs in, and how ``"auto"`` chooses it.

``auto`` looks at the device the current Keras backend computes on, without importing another
framework (under ``KERAS_BACKEND=jax`` TensorFlow is never imported):

* a TPU: ``bfloat16`` (the TPU's native matrix type);
* a CUDA GPU: ``bfloat16`` from compute capability 8.0 (Ampere) on, ``float16`` on 7.x
  (Volta/Turing tensor cores), ``float32`` before that;
* a CPU: ``bfloat16`` when ``/proc/cpuinfo`` lists ``amx_bf16`` or ``avx512_bf16`` and the
  backend has fast bfloat16 CPU kernels (TensorFlow with oneDNN, which ``TF_ENABLE_ONEDNN_OPTS=0``
  switches off, and PyTorch), else ``float32``. JAX's XLA:CPU runs bfloat16 convolutions no
  faster than float32 ones (measured on a Zen 5 with AVX512-BF16), so under JAX a CPU gets
  ``float32``.

The choice comes back as a ``PrecisionChoice`` whose ``reason`` says what was seen.

Training speaks the same vocabulary (``inception.precisions``) and sees the devices through the
same :func:`detect_devices`, but its ``auto`` (:func:`training_precision`) differs on CPUs, which
always train in float32: a training step is dominated by the backward pass and the optimizer
update, for which neither backend has faster bfloat16 CPU kernels, and bfloat16 gradients cost
accuracy that an inference-only copy (weights fixed, measured against the float32 model) does
not risk. On accelerators both choose alike, except that training takes float16 on every GPU
before compute capability 8.0 (loss scaling keeps its gradients finite) and asks bfloat16 of
every GPU of the run, not only of the first.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..precisions import KERAS_POLICIES, OLD_PRECISIONS, PRECISIONS

CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo names, best first
CPUINFO = "/proc/cpuinfo"
BF16_CPU_BACKENDS = ("tensorflow", "torch")  # Keras backends with oneDNN bfloat16 CPU kernels
BF16_CAPABILITY = (8, 0)  # CUDA GPUs with bfloat16 tensor cores: Ampere and later


@dataclass(frozen=True)
class PrecisionChoice:
    """``precision``: ``float32``, ``bfloat16`` or ``float16``; ``reason``: why, in words."""

    precision: str
    reason: str


@dataclass(frozen=True)
class Device:
    """The device the backend computes on: ``kind`` is ``cpu``, ``gpu`` or ``tpu``."""

    kind: str
    name: str = ""
    capability: tuple[int, int] | None = None  # CUDA compute capability


def check_precision(precision) -> str:
    """``precision`` if it is one of ``PRECISIONS``, else a one-line ``ValueError``."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}.")
    return precision


def choose_precision(precision: str = "auto") -> PrecisionChoice:
    """Resolves ``precision`` (one of ``PRECISIONS``); ``"auto"`` inspects the device."""
    import keras

    if check_precision(precision) != "auto":
        return PrecisionChoice(precision, "requested")
    backend = keras.backend.backend()
    device = detect_device(backend)
    if device.kind == "tpu":
        return PrecisionChoice("bfloat16", f"{backend} computes on a TPU ({device.name})")
    if device.kind == "gpu":
        where = f"{backend} computes on GPU {device.name}".strip()
        cc = device.capability
        if cc is None:
            return PrecisionChoice("float16", f"{where} (compute capability unknown)")
        text = f"{where}, compute capability {cc[0]}.{cc[1]}"
        if cc >= BF16_CAPABILITY:
            return PrecisionChoice("bfloat16", f"{text} (bfloat16 tensor cores)")
        if cc >= (7, 0):
            return PrecisionChoice("float16", f"{text} (float16 tensor cores, no bfloat16)")
        return PrecisionChoice("float32", f"{text} (no tensor cores)")
    flags = cpu_flags()
    found = next((f for f in CPU_BF16_FLAGS if f in flags), None)
    if found is None:
        seen = "cannot read CPU flags" if not flags else f"no {' or '.join(CPU_BF16_FLAGS)} flag"
        return PrecisionChoice("float32", f"{backend} computes on the CPU: {seen} in {CPUINFO}")
    if backend not in BF16_CPU_BACKENDS:
        return PrecisionChoice(
            "float32", f"the CPU has {found}, but {backend} has no faster bfloat16 CPU kernels"
        )
    if backend == "tensorflow" and os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "0":
        return PrecisionChoice(
            "float32", f"the CPU has {found} but TF_ENABLE_ONEDNN_OPTS=0 disables oneDNN's kernels"
        )
    return PrecisionChoice("bfloat16", f"{backend} computes on the CPU, which has {found}")


def training_precision(precision: str, accelerator: str, bfloat16: bool) -> str:
    """Training's precision: ``precision`` itself (an old ``mixed_*`` name gives its new one),
    or for ``"auto"``: ``bfloat16`` where the hardware computes in it (``bfloat16``, see
    :func:`bfloat16_hardware`), ``float16`` on other GPUs, ``float32`` on CPUs (see above why
    not bfloat16 as for inference). ``ValueError`` for an unknown name."""
    precision = check_precision(OLD_PRECISIONS.get(precision, precision))
    if precision != "auto":
        return precision
    if accelerator == "cpu":
        return "float32"
    return "bfloat16" if bfloat16 else "float16"


def keras_policy(precision: str) -> str:
    """The Keras mixed-precision policy of a training run in ``precision`` (not ``"auto"``)."""
    return KERAS_POLICIES[precision]


def bfloat16_hardware(devices: list[Device]) -> bool:
    """Whether every device computes in bfloat16: TPUs, CUDA GPUs of compute capability 8.0 and
    later."""
    return all(
        d.kind == "tpu" or (d.kind == "gpu" and (d.capability or (0, 0)) >= BF16_CAPABILITY)
        for d in devices
    )


def cpu_flags(path: str = CPUINFO) -> frozenset[str]:
    """The feature flags of the first CPU in ``/proc/cpuinfo``; empty where there is none."""
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


def detect_device(backend: str) -> Device:
    """The first accelerator the backend sees, else the CPU. Imports only ``backend``'s
    framework."""
    return detect_devices(backend)[0]


def detect_devices(backend: str) -> list[Device]:
    """The accelerators the backend sees (its TPUs, else its GPUs), else ``[Device("cpu")]``.
    Imports only ``backend``'s framework."""
    if backend == "tensorflow":
        import tensorflow as tf

        if tf.config.list_physical_devices("TPU") or tf.config.list_logical_devices("TPU"):
            return [Device("tpu", "TPU")]
        found = []
        for gpu in tf.config.list_physical_devices("GPU"):
            details = tf.config.experimental.get_device_details(gpu)
            cc = _capability(details.get("compute_capability"))
            found.append(Device("gpu", details.get("device_name", gpu.name), cc))
        if found:
            return found
    elif backend == "jax":
        import jax

        devices = jax.devices()
        if devices[0].platform == "tpu":
            return [Device("tpu", d.device_kind) for d in devices]
        if devices[0].platform in ("gpu", "cuda", "rocm"):
            return [
                Device("gpu", d.device_kind, _capability(getattr(d, "compute_capability", None)))
                for d in devices
            ]
    elif backend == "torch":
        import torch

        if torch.cuda.is_available():
            return [
                Device("gpu", torch.cuda.get_device_name(i), torch.cuda.get_device_capability(i))
                for i in range(torch.cuda.device_count())
            ]
    return [Device("cpu")]


def _capability(value) -> tuple[int, int] | None:
    """``(8, 0)`` from ``(8, 0)`` or ``"8.0"``; ``None`` when it cannot be read."""
    try:
        major, minor = value.split(".") if isinstance(value, str) else value
        return int(major), int(minor)
    except (AttributeError, TypeError, ValueError):
        return None
