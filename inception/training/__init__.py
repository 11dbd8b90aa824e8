"""Training on Keras' ``fit``, on TensorFlow or JAX: ``inception.train(...)`` and
``inception train``, and the paper's recipe as Keras objects for a ``model.compile`` of one's
own (:class:`Recipe`, :class:`PaperRMSProp`, :class:`SparseSmoothedCrossEntropy`,
:class:`TopKAccuracy`, :func:`paper_schedule`).

Names load on first use, so ``inception train --help`` does not wait for Keras.
"""

import importlib

_WHERE = {
    "train": "loop",
    "TrainingDivergedError": "callbacks",
    "Recipe": "config", "load_recipe": "config", "recipe_names": "config",
    "LinearWarmup": "objectives", "SparseSmoothedCrossEntropy": "objectives",
    "TopKAccuracy": "objectives", "paper_schedule": "objectives",
    "PaperRMSProp": "optimizer",
}  # fmt: skip
__all__ = list(_WHERE)


def __getattr__(name):
    if name not in _WHERE:
        raise AttributeError(f"module 'inception.training' has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
