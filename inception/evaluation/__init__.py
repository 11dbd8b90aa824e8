"""Evaluation and prediction: top-1/top-5 accuracy with 1, 10, 12 or 144 crops, and ensembles.

``evaluate(...)`` is the Python API behind ``inception eval``; ``Ensemble`` averages the
probabilities of several classifiers as one saveable Keras model.
"""

__all__ = ["Ensemble", "evaluate"]


def __getattr__(name):
    """Loaded on first use, so ``inception eval --help`` does not wait for TensorFlow."""
    if name == "evaluate":
        from .evaluator import evaluate

        return evaluate
    if name == "Ensemble":
        from ..models.ensemble import Ensemble

        return Ensemble
    raise AttributeError(f"module 'inception.evaluation' has no attribute {name!r}")
