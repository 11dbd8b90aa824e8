"""The model registry: each entry carries a network's defaults as data, apart from its builder.

Accuracies are ImageNet (ILSVRC-2012) validation, single 299x299 central crop, in percent.
``paper_*`` are Table 2 of the paper (100 - its error rates); ``released_*`` are those reported
for the released TF-slim checkpoints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ModelConfig:
    name: str
    title: str
    variants: tuple[str, ...]  # the first one is the default
    paper_top1: float
    paper_top5: float
    released_top1: float | None = None
    released_top5: float | None = None
    input_size: int = 299
    min_input_size: int = 75
    crop_fraction: float = 0.875
    interpolation: str = "bilinear"
    preprocessing: str = "inception"  # RGB scaled to [-1, 1]
    num_classes: int = 1000
    label_offset: int = 0  # slim's 1001-class checkpoints use 1 (background at index 0)
    builder: Callable | None = field(default=None, compare=False, repr=False)

    @property
    def default_variant(self) -> str:
        return self.variants[0]


_CONFIGS = {
    c.name: c
    for c in (
        ModelConfig("inception_v4", "Inception-v4", ("slim", "paper"), 80.0, 95.0, 80.2, 95.2),
        ModelConfig("inception_resnet_v1", "Inception-ResNet-v1", ("paper",), 78.7, 94.5),
        ModelConfig(
            "inception_resnet_v2", "Inception-ResNet-v2", ("slim", "paper"), 80.1, 95.1, 80.4, 95.3
        ),
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
    return sorted(_REGISTRY)


def get_model_config(name: str) -> ModelConfig:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown model {name!r}; registered models: {', '.join(list_models())}."
        ) from None


def build(name: str, **kwargs):
    """Builds a registered model by name: ``build("inception_v4", weights=None, classes=10)``.

    Unlike the builders, ``weights`` defaults to ``None`` (as timm's ``pretrained=False``).
    Keyword arguments are those of the builder (``keras.applications`` signature plus
    ``variant``, ``residual_scale``, ``aux_logits``, ``dropout_rate``).
    """
    kwargs.setdefault("weights", None)
    return get_model_config(name).builder(**kwargs)
