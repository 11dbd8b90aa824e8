"""Training on Keras' ``fit``, on TensorFlow or JAX: ``inception.train(...)`` and
``inception train``, and the paper's recipe as Keras objects for a ``model.compile`` of one's
own (:class:`Recipe`, :class:`PaperRMSProp`, :class:`SparseSmoothedCrossEntropy`,
:class:`TopKAccuracy`, :func:`paper_schedule`).

Names load on first use, so ``inception train --help`` does not wait for Keras.
"""

from .._imports import lazy_attributes

_WHERE = {
    "train": "loop",
    "TrainingDivergedError": "callbacks", "TrainingInterrupted": "callbacks",
    "DiskFullError": "checkpoints",
    "Recipe": "config", "load_recipe": "config", "recipe_names": "config",
    "LinearWarmup": "objectives", "SparseSmoothedCrossEntropy": "objectives",
    "TopKAccuracy": "objectives", "paper_schedule": "objectives",
    "PaperRMSProp": "optimizer",
}  # fmt: skip
__all__ = list(_WHERE)


__getattr__ = lazy_attributes(__name__, _WHERE)
