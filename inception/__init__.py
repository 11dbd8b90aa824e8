"""inception: Inception-v4, Inception-ResNet-v1 and Inception-ResNet-v2 for Keras 3.

Szegedy, Ioffe, Vanhoucke, Alemi (2016). "Inception-v4, Inception-ResNet and the Impact of
Residual Connections on Learning". arXiv:1602.07261.
"""

from .models import (
    ConvBN,
    InceptionResNetV1,
    InceptionResNetV2,
    InceptionV4,
    ModelConfig,
    ModelInfo,
    ResidualScale,
    build,
    get_model_config,
    list_models,
    load_model,
    model_info,
    save_model,
    set_model_info,
)
from .models.ensemble import Ensemble
from .optimize import optimize_for_inference
from .preprocessing import Preprocessing, class_names, decode_predictions, preprocess_input

__version__ = "0.1.0"

__all__ = [
    "InceptionV4",
    "InceptionResNetV1",
    "InceptionResNetV2",
    "Ensemble",
    "ConvBN",
    "ResidualScale",
    "ModelConfig",
    "ModelInfo",
    "Preprocessing",
    "model_info",
    "set_model_info",
    "save_model",
    "load_model",
    "build",
    "optimize_for_inference",
    "get_model_config",
    "list_models",
    "preprocess_input",
    "decode_predictions",
    "class_names",
]

_LAZY = {
    "train": ("inception.training", "train"),
    "evaluate": ("inception.evaluation", "evaluate"),
}


def __getattr__(name):
    """Training and evaluation APIs load on first use, so ``import inception`` stays light."""
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'inception' has no attribute {name!r}")
