"""The model registry: each entry carries a network's defaults as data, apart from its builder.

Variants come from the architecture table (``networks.ARCHS``), released accuracies and the
preprocessing of released checkpoints from the weights manifest (``weights/manifest.json``); what
is here is only what belongs to the network itself; ``inception.weights.presets`` joins an entry
with its default weights (one ``Preset`` per model). ``paper_top1``/``paper_top5`` are Table 2
of the paper (ILSVRC-2012 validation, single crop, 100 minus its error rates), in percent.

The registry is read without Keras (names, defaults, variants, minimum input size): the commands
check their arguments with it before TensorFlow loads. An entry gets its builder when
``inception.app.builders`` (the public builders and ``inception.build``) is imported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..preprocessing import Preprocessing
from . import networks


@dataclass(frozen=True)
class ModelConfig:
    name: str
    title: str
    paper_top1: float
    paper_top5: float
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    num_classes: int = 1000
    builder: Callable | None = field(default=None, compare=False, repr=False)

    @property
    def variants(self) -> tuple[str, ...]:
        """The variants of ``networks.ARCHS``; the first one is the default."""
        return networks.variants(self.name)

    @property
    def default_variant(self) -> str:
        return self.variants[0]

    @property
    def input_size(self) -> int:
        return self.preprocessing.input_size

    @property
    def min_input_size(self) -> int:
        return networks.MIN_INPUT_SIZE


_CONFIGS = {
    c.name: c
    for c in (
        ModelConfig("inception_v4", "Inception-v4", 80.0, 95.0),
        ModelConfig("inception_resnet_v1", "Inception-ResNet-v1", 78.7, 94.5),
        ModelConfig("inception_resnet_v2", "Inception-ResNet-v2", 80.1, 95.1),
    )
}
_REGISTRY: dict[str, ModelConfig] = {}


def register_model(name: str):
    """Decorator: attaches a builder to the registry entry ``name``."""

    def wrap(builder):
        _REGISTRY[name] = ModelConfig(**{**_CONFIGS[name].__dict__, "builder": builder})
        return builder

    return wrap


def list_models() -> list[str]:
    """The registered model names (known without Keras: every builder registers one of them)."""
    return sorted(_CONFIGS)


def get_model_config(name: str) -> ModelConfig:
    """The entry of ``name`` (with its builder once ``inception.app.builders`` is loaded);
    ``ValueError`` for a name that is not registered. Does not import Keras."""
    try:
        return _REGISTRY.get(name) or _CONFIGS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown model {name!r}; registered models: {', '.join(list_models())}."
        ) from None
