"""Keras 3 builders for the Inception-v4 family."""

from .builders import InceptionResNetV1, InceptionResNetV2, InceptionV4
from .layers import ResidualScale
from .registry import ModelConfig, build, get_model_config, list_models

__all__ = [
    "InceptionV4",
    "InceptionResNetV1",
    "InceptionResNetV2",
    "ResidualScale",
    "ModelConfig",
    "build",
    "get_model_config",
    "list_models",
]
