"""Training on Keras' ``fit``, on TensorFlow or JAX: ``inception.train(...)`` and
``inception train``, and the paper's recipe as Keras objects for a ``model.compile`` of one's
own (:class:`Recipe`, :class:`PaperRMSProp`, :class:`SparseSmoothedCrossEntropy`,
:class:`TopKAccuracy`, :func:`paper_schedule`)."""

from .callbacks import TrainingDivergedError
from .config import Recipe, load_recipe, recipe_names
from .objectives import LinearWarmup, SparseSmoothedCrossEntropy, TopKAccuracy, paper_schedule
from .optimizer import PaperRMSProp


def __getattr__(name):
    """``train`` loads on first use: it needs TensorFlow (tf.data), the recipe objects do not."""
    if name == "train":
        from .loop import train

        return train
    raise AttributeError(f"module 'inception.training' has no attribute {name!r}")


__all__ = [
    "train",
    "Recipe",
    "load_recipe",
    "recipe_names",
    "TrainingDivergedError",
    "PaperRMSProp",
    "SparseSmoothedCrossEntropy",
    "TopKAccuracy",
    "LinearWarmup",
    "paper_schedule",
]
