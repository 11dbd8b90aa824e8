"""Training with ``tf.distribute``: ``inception.train(...)`` and ``inception train``."""

from .config import Recipe, load_recipe, recipe_names
from .loop import TrainingDivergedError, evaluate_split, train

__all__ = [
    "train",
    "Recipe",
    "load_recipe",
    "recipe_names",
    "TrainingDivergedError",
    "evaluate_split",
]
