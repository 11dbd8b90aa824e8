"""Inference-only copies of Keras models: Conv->BatchNorm pairs folded into biased convs, the
arithmetic in float32, bfloat16 or float16 (see ``docs/inference.md``).

    fast = inception.optimize_for_inference(model, precision="auto")
    inception.optimize.optimization_report(fast)
    # OptimizationReport(requested='auto', precision='bfloat16',
    #                    reason='tensorflow computes on the CPU, which has avx512_bf16', ...)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import keras

from ..models.ensemble import Ensemble
from ..models.info import model_info, set_model_info
from .graph import rewrite
from .precision import PRECISIONS, PrecisionChoice, check_precision, choose_precision

__all__ = [
    "PRECISIONS",
    "OptimizationReport",
    "PrecisionChoice",
    "choose_precision",
    "optimization_report",
    "optimize_for_inference",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OptimizationReport:
    """What ``optimize_for_inference`` did: the ``requested`` and resolved ``precision``, why
    (``reason``), and the names of the convolutions that absorbed a BatchNorm (``folded``)."""

    requested: str
    precision: str
    reason: str
    folded: tuple[str, ...]


def optimize_for_inference(model, precision: str = "float32", *, fold_batchnorm: bool = True):
    """An inference copy of ``model``: same inputs and outputs (float32 in, float32 out), each
    Conv->BatchNorm pair (and a residual ``Rescaling`` after it) one biased conv, the arithmetic
    in ``precision``.

    Args:
        model: a functional or Sequential Keras model (``inception.build``, a ``.keras`` file
            loaded with ``keras.saving.load_model``, ``keras.applications``, ...) or an
            ``inception.Ensemble`` (each member is optimised; weights, label columns and
            preprocessing are kept).
        precision: ``"float32"`` (the original arithmetic: reproduces published accuracy),
            ``"bfloat16"``, ``"float16"``, or ``"auto"``: bfloat16 on a TPU, on a CUDA GPU of
            compute capability >= 8.0 and on a CPU with AVX512-BF16 or AMX (TensorFlow and
            PyTorch backends); float16 on older tensor-core GPUs; float32 elsewhere
            (``inception.optimize.choose_precision``).
        fold_batchnorm: fold (default); ``False`` keeps the BatchNorm layers (their statistics
            stay float32 in every precision).

    Returns:
        A new Keras model (the input model is unchanged) with the input model's
        ``inception.ModelInfo``; ``inception.optimize.optimization_report(result)`` says which
        precision was used, why, and which convolutions were folded. It saves and loads as
        ``.keras`` (plain ``keras.saving.load_model`` for single models). The rewrite is
        weight arithmetic and Keras layers, tested under TensorFlow and JAX. The copy is for
        inference: BatchNorm is gone and low-precision weights do not train well.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(
            "optimize_for_inference needs a Keras model (functional, Sequential or "
            f"inception.Ensemble); got {type(model).__name__}."
        )
    choice = choose_precision(precision)
    folded: list[str] = []
    result = optimize_model(model, choice.precision, fold_batchnorm, folded, {})
    report = OptimizationReport(precision, choice.precision, choice.reason, tuple(folded))
    result._inception_optimization = report
    log.info(
        "optimize_for_inference(%s): precision %s (%s); %d Conv->BatchNorm pairs folded",
        model.name, choice.precision, choice.reason, len(folded),
    )  # fmt: skip
    return result


def optimization_report(model) -> OptimizationReport | None:
    """The ``OptimizationReport`` of a model returned by ``optimize_for_inference`` (kept in
    memory, not in saved files), else ``None``."""
    return getattr(model, "_inception_optimization", None)


def optimize_model(model, precision: str, fold: bool, folded: list[str], done: dict):
    """``optimize_for_inference`` without the report: ``precision`` already resolved; nested
    models met twice are optimised once (``done``)."""
    check_precision(precision)
    if id(model) in done:
        return done[id(model)]
    if isinstance(model, Ensemble):
        members = [optimize_model(m, precision, fold, folded, done) for m in model.members]
        result = Ensemble(**{**model.get_config(), "members": members})
    else:
        graph = _as_functional(model)
        result = rewrite(
            graph, precision, fold,
            lambda nested: optimize_model(nested, precision, fold, folded, done), folded,
        )  # fmt: skip
    set_model_info(result, model_info(model))
    done[id(model)] = result
    return result


def _as_functional(model):
    """``model`` as a functional graph: Sequential models are re-expressed as one (sharing their
    layers); subclassed models cannot be rewritten."""
    if isinstance(model, keras.Sequential):
        if not model.built or not model.inputs:
            raise ValueError(
                f"Sequential model {model.name!r} has no known input shape: start it with "
                "keras.Input(shape) (or build it) before optimize_for_inference."
            )
        inputs = keras.Input(batch_shape=model.inputs[0].shape, dtype=model.inputs[0].dtype)
        x = inputs
        for layer in model.layers:
            x = layer(x)
        return keras.Model(inputs, x, name=model.name)
    from keras.src.models.functional import Functional

    if not isinstance(model, Functional):
        raise ValueError(
            f"{model.name!r} is a subclassed Keras model ({type(model).__name__}): "
            "optimize_for_inference rewrites functional graphs; build the model with "
            "keras.Input and the functional API or keras.Sequential."
        )
    return model
