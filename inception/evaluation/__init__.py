"""Evaluation and prediction: top-1/top-5 accuracy with 1, 10, 12 or 144 crops, and ensembles.

``evaluate(...)`` is the Python API behind ``inception eval``; ``Ensemble`` averages the
probabilities of several classifiers as one saveable Keras model.

Names load on first use, so ``inception eval --help`` does not wait for TensorFlow.
"""

import importlib

_WHERE = {"evaluate": "inception.evaluation.evaluator", "Ensemble": "inception.models.ensemble"}
__all__ = list(_WHERE)


def __getattr__(name):
    if name not in _WHERE:
        raise AttributeError(f"module 'inception.evaluation' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
