"""inception: Inception-v4, Inception-ResNet-v1 and Inception-ResNet-v2 for Keras 3.

Szegedy, Ioffe, Vanhoucke, Alemi (2016). "Inception-v4, Inception-ResNet and the Impact of
Residual Connections on Learning". arXiv:1602.07261.

Every name below loads on first use, so ``import inception`` (and the ``inception`` command's
``--help``) does not wait for Keras and TensorFlow. The package's Keras-serialisable classes
(``Ensemble`` and its layers) are registered as soon as Keras is imported, so a saved ensemble
loads with ``keras.saving.load_model`` after ``import inception``.
"""

import contextlib as _contextlib
import importlib as _importlib

from ._imports import around_import as _around_import

__version__ = "0.1.0"

_EXPORTS = {
    "inception.app.builders": ("InceptionV4", "InceptionResNetV1", "InceptionResNetV2", "build"),
    "inception.models": (
        "ConvBN", "ResidualScale", "ModelConfig", "ModelInfo", "get_model_config", "list_models",
        "model_info", "set_model_info", "save_model", "load_model",
    ),
    "inception.models.ensemble": ("Ensemble",),
    "inception.preprocessing": (
        "Preprocessing", "preprocess_input", "decode_predictions", "class_names",
    ),
    "inception.training": ("train", "finetune"),
    "inception.api": ("evaluate", "predict", "export", "convert"),
    "inception.optimize": ("optimize_for_inference",),
}  # fmt: skip
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = list(_WHERE)


_SUBPACKAGES = {
    "app", "data", "evaluation", "models", "optimize", "preprocessing", "serving", "training",
    "weights",
}  # fmt: skip


def __getattr__(name):
    if name in _SUBPACKAGES:  # inception.data, inception.training, ... load on first use too
        return _importlib.import_module(f"inception.{name}")
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'inception' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__) | _SUBPACKAGES)


_SERIALISABLE = ("inception.models.layers", "inception.models.ensemble")  # Keras classes


def _register():
    for module in _SERIALISABLE:
        _importlib.import_module(module)


@_contextlib.contextmanager
def _register_after():
    yield
    _register()


if not _around_import("keras", _register_after):  # Keras is already loaded: register now
    _register()
