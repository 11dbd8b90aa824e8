"""The Inception-v4 family as Keras 3 architectures: the registry, the architecture table, the
blocks and layers, and what a model knows about itself (``ModelInfo``). The bottom layer of the
package: it imports only ``inception.preprocessing``, ``inception.errors`` and
``inception._imports``. Weights and the public builders are in ``inception.weights`` and
``inception.app.builders``.

Names load on first use: the registry and the architecture table (``registry``, ``networks``,
``summary``) are read without Keras, so ``inception models`` and the argument checks of the
commands answer before TensorFlow loads.
"""

from .._imports import lazy_attributes

_WHERE = {
    "ConvBN": "layers", "ResidualScale": "layers",
    "ModelConfig": "registry", "get_model_config": "registry", "list_models": "registry",
    "ModelInfo": "info", "model_info": "info", "set_model_info": "info", "save_model": "info",
    "load_model": "info",
}  # fmt: skip
__all__ = list(_WHERE)

__getattr__ = lazy_attributes(__name__, _WHERE)


def __dir__():
    return sorted(set(globals()) | set(__all__))
