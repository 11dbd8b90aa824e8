"""Keras 3 builders for the Inception-v4 family."""

from .builders import InceptionResNetV1, InceptionResNetV2, InceptionV4
from .info import ModelInfo, load_model, model_info, save_model, set_model_info
from .layers import ConvBN, ResidualScale
from .registry import ModelConfig, build, get_model_config, list_models

__all__ = [
    "InceptionV4",
    "InceptionResNetV1",
    "InceptionResNetV2",
    "ConvBN",
    "ResidualScale",
    "ModelConfig",
    "ModelInfo",
    "build",
    "get_model_config",
    "list_models",
    "model_info",
    "set_model_info",
    "save_model",
    "load_model",
]
