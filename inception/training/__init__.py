"""Training on Keras' ``fit``, on TensorFlow or JAX: ``inception.train(...)`` and
``inception train``, and the paper's recipe as Keras objects for a ``model.compile`` of one's
own (:class:`Recipe`, :class:`PaperRMSProp`, :class:`SparseSmoothedCrossEntropy`,
:class:`TopKAccuracy`, :func:`paper_schedule`); fine-tuning a pretrained network,
``inception.finetune(...)`` and ``inception finetune``, and its recipe
(:class:`FinetuneRecipe`, :class:`FinetuneAdamW`, :class:`FinetuneSGD`,
:func:`finetune_schedule`).

Names load on first use, so ``inception train --help`` does not wait for Keras.
"""

from .._imports import lazy_attributes

_WHERE = {
    "train": "loop", "finetune": "finetune",
    "TrainingDivergedError": "callbacks", "TrainingInterrupted": "callbacks",
    "DiskFullError": "checkpoints",
    "Recipe": "config", "load_recipe": "config", "recipe_names": "config",
    "LinearWarmup": "objectives", "SparseSmoothedCrossEntropy": "objectives",
    "TopKAccuracy": "objectives", "paper_schedule": "objectives",
    "PaperRMSProp": "optimizer",
    "FinetuneRecipe": "finetune_recipe", "load_finetune_recipe": "finetune_recipe",
    "FinetuneAdamW": "finetune_recipe", "FinetuneSGD": "finetune_recipe",
    "finetune_schedule": "finetune_recipe", "set_phase": "finetune_recipe",
}  # fmt: skip
__all__ = list(_WHERE)


__getattr__ = lazy_attributes(__name__, _WHERE)
