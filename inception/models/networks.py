"""Inception-v4, Inception-ResNet-v1 and Inception-ResNet-v2 (Szegedy et al., 2016,
arXiv:1602.07261) as one table of data, built by one function from the shared block library.

Every network is: stem, N x A, Reduction-A (k, l, m, n), N x B, Reduction-B, N x C (Fig. 9 and
Fig. 15). What differs is in ``ARCHS``: the stem's ops, the block counts, whether the blocks are
residual (then with their branch widths and scales), Reduction-A's (k, l, m, n), the factorisation
order of the paper's figures, slim's final linear block and 1x1 conv, and the end points at
output strides 4, 8, 16 and 32 (``features_only``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..preprocessing import INPUT_SIZE
from . import blocks as blk

if TYPE_CHECKING:
    from .layers import ConvBN

MIN_INPUT_SIZE = 75  # five valid 3x3/2 reductions, two valid 3x3s: 75 -> 37 -> 35 -> 17 -> 7 -> 3
MIN_INPUT_SIZE_AUX = 107  # the auxiliary head's 5x5/3 pool needs a 17x17 grid of at least 5x5
STRIDES = (4, 8, 16, 32)  # output strides of the ``features_only`` end points


@dataclass(frozen=True)
class Arch:
    """One network, as data. Widths of residual blocks are given branch by branch, as in the
    figures; ``scales`` is ``None`` for a network without residual connections."""

    stem: tuple  # ops and Mixed blocks (blocks.stem_*)
    repeats: tuple[int, int, int]  # blocks A, B, C
    reduction_a: tuple[int, int, int, int]  # k, l, m, n (Table 1)
    features: tuple[str, str, str, str]  # end points at strides 4, 8, 16, 32
    paper: bool = False  # the figures' factorisation order (Inception-v4 blocks)
    widths: dict | None = None  # Inception-ResNet branch widths: a, b, c, reduction_b
    scales: tuple[float, float, float] | None = None  # residual scales of A, B, C
    final_linear_block: bool = False  # slim: one more Block8, scale 1.0, no ReLU
    final_conv: int | None = None  # slim: Conv2d_7b_1x1 to 1536 channels

    @property
    def residual(self) -> bool:
        return self.scales is not None


V1_WIDTHS = dict(
    a=(32, (32, 32), (32, 32, 32)),  # Fig. 10
    b=(128, (128, 128, 128)),  # Fig. 11
    reduction_b=((256, 384), (256, 256), (256, 256, 256)),  # Fig. 12
    c=(192, (192, 192, 192)),  # Fig. 13
)
V2_WIDTHS = dict(
    a=(32, (32, 32), (32, 48, 64)),  # Fig. 16
    b=(192, (128, 160, 192)),  # Fig. 17
    reduction_b=((256, 384), (256, 288), (256, 288, 320)),  # Fig. 18
    c=(192, (192, 224, 256)),  # Fig. 19
)
SCALES = (0.17, 0.10, 0.20)  # slim's; the paper says "between 0.1 and 0.3"

ARCHS = {  # (model, variant): Arch; each model's first variant is its default
    ("inception_v4", "slim"): Arch(
        blk.stem_v4(paper=False), (4, 7, 3), (192, 224, 256, 384),
        ("Mixed_4a", "Mixed_5e", "Mixed_6h", "Mixed_7d"),
    ),
    ("inception_v4", "paper"): Arch(
        blk.stem_v4(paper=True), (4, 7, 3), (192, 224, 256, 384),
        ("Mixed_4a", "Mixed_5e", "Mixed_6h", "Mixed_7d"), paper=True,
    ),
    ("inception_resnet_v1", "paper"): Arch(
        blk.stem_resnet_v1(), (5, 10, 5), (192, 192, 256, 384),
        ("Conv2d_4a_3x3", "block35_5", "block17_10", "block8_5"),
        widths=V1_WIDTHS, scales=SCALES,
    ),
    ("inception_resnet_v2", "slim"): Arch(
        blk.stem_resnet_v2_slim(), (10, 20, 9), (256, 256, 384, 384),
        ("Conv2d_4a_3x3", "block35_10", "block17_20", "Conv2d_7b_1x1"),
        widths=V2_WIDTHS, scales=SCALES, final_linear_block=True, final_conv=1536,
    ),
    ("inception_resnet_v2", "paper"): Arch(
        blk.stem_v4(paper=True), (5, 10, 5), (256, 256, 384, 384),
        ("Mixed_4a", "block35_5", "block17_10", "block8_5"),
        widths=V2_WIDTHS, scales=SCALES,
    ),
}  # fmt: skip


def variants(model: str) -> tuple[str, ...]:
    """The variants of ``model`` in ``ARCHS``, the default first."""
    return tuple(v for m, v in ARCHS if m == model)


def get_arch(model: str, variant: str) -> Arch:
    if (model, variant) not in ARCHS:
        allowed = ", ".join(map(repr, variants(model)))
        raise ValueError(f"{model} has no variant {variant!r}; choose one of {allowed}.")
    return ARCHS[(model, variant)]


RESIDUAL_BLOCKS = {"a": "block35", "b": "block17", "c": "block8"}


def block_names(arch: Arch, stage: str, count: int) -> list[str]:
    """Slim's names: ``Mixed_5b..`` (A), ``Mixed_6b..`` (B), ``Mixed_7b..`` (C) in Inception-v4,
    ``block35_1..``, ``block17_1..``, ``block8_1..`` in the Inception-ResNets."""
    if arch.residual:
        return [f"{RESIDUAL_BLOCKS[stage]}_{i + 1}" for i in range(count)]
    row = {"a": 5, "b": 6, "c": 7}[stage]
    return [f"Mixed_{row}{chr(ord('b') + i)}" for i in range(count)]


def stage_blocks(arch: Arch) -> tuple:
    """``(stage, block spec)`` after the stem, in order: A, Reduction-A, B, Reduction-B, C."""
    w = arch.widths
    return (
        ("a", blk.inception_resnet_a(w["a"]) if w else blk.inception_a()),
        ("reduction_a", blk.reduction_a(*arch.reduction_a)),
        ("b", blk.inception_resnet_b(w["b"]) if w else blk.inception_b(arch.paper)),
        ("reduction_b", blk.reduction_b_resnet(w["reduction_b"]) if w else blk.reduction_b()),
        ("c", blk.inception_resnet_c(w["c"]) if w else blk.inception_c(arch.paper)),
    )


def features(x, arch: Arch, unit: ConvBN | None = None, residual_scale=None):
    """Fig. 9 / Fig. 15: stem, N x A, Reduction-A, N x B, Reduction-B, N x C.

    Returns ``(final feature map, end points)``: ``end points`` maps the name of every stem op
    and block to its output, in order (the 17x17 grid the auxiliary head reads is the last B).
    """
    if residual_scale is not None and not arch.residual:
        raise ValueError("Inception-v4 has no residual connections: residual_scale does not apply.")
    if unit is None:
        from .layers import DEFAULT_CONV_BN

        unit = DEFAULT_CONV_BN
    scales = _scales(arch.scales, residual_scale) if arch.residual else None
    points = {}
    for op in arch.stem:
        x = points[op.name] = blk.apply(x, op, "", unit)
    stages = stage_blocks(arch)
    repeats = dict(zip("abc", arch.repeats))
    for stage, spec in stages:
        if stage.startswith("reduction"):
            name = "Mixed_6a" if stage == "reduction_a" else "Mixed_7a"
            x = points[name] = blk.branches(x, name, spec, unit)
            continue
        for name in block_names(arch, stage, repeats[stage]):
            if arch.residual:
                x = blk.residual(x, name, spec, scales["abc".index(stage)], unit)
            else:
                x = blk.branches(x, name, spec, unit)
            points[name] = x
    if arch.final_linear_block:
        name = f"block8_{arch.repeats[2] + 1}"
        x = points[name] = blk.residual(x, name, stages[-1][1], 1.0, unit, activation=False)
    if arch.final_conv:
        x = points["Conv2d_7b_1x1"] = unit(x, arch.final_conv, 1, "Conv2d_7b_1x1")
    return x, points


def _scales(default, override):
    if override is None:
        return default
    if isinstance(override, (int, float)):
        return (float(override),) * 3
    values = tuple(float(s) for s in override)
    if len(values) != 3:
        raise ValueError(
            f"residual_scale must be one number or three (for blocks A, B, C); got {override!r}."
        )
    return values


def build_network(
    name: str,
    arch: Arch,
    *,
    include_top=True,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    aux_logits=False,
    dropout_rate=0.2,
    features_only=False,
    residual_scale=None,
    conv_bn: ConvBN | None = None,
    model_name=None,
):
    """One network of ``ARCHS`` with the keras.applications surface (inputs, top, pooling) or,
    with ``features_only``, a model whose outputs are the end points at strides 4, 8, 16, 32."""
    import keras
    from keras import layers

    from .layers import DEFAULT_CONV_BN, ConvBN

    if keras.config.image_data_format() != "channels_last":
        raise ValueError(
            "inception models are built channels_last; call "
            "keras.config.set_image_data_format('channels_last') first."
        )
    if features_only:
        include_top, pooling, aux_logits = False, None, False
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"pooling must be None, 'avg' or 'max'; got {pooling!r}.")
    if include_top and (not isinstance(classes, int) or classes < 1):
        raise ValueError(
            f"classes must be a positive integer with include_top=True; got {classes!r}."
        )
    if aux_logits and not include_top:
        raise ValueError(
            "aux_logits=True needs include_top=True (the auxiliary head is a classifier)."
        )
    if not 0.0 <= dropout_rate < 1.0:
        raise ValueError(f"dropout_rate must be in [0, 1); got {dropout_rate!r}.")
    unit = conv_bn or DEFAULT_CONV_BN
    if not isinstance(unit, ConvBN):
        raise ValueError(f"conv_bn must be an inception.ConvBN; got {type(unit).__name__}.")
    inputs, x = _inputs(input_tensor, input_shape, include_top, aux_logits)
    x, points = features(x, arch, unit, residual_scale)
    if features_only:
        outputs = {point: points[point] for point in arch.features}
    elif include_top:
        outputs = blk.classifier(x, classes, dropout_rate, classifier_activation, unit)
        if aux_logits:
            aux = points[block_names(arch, "b", arch.repeats[1])[-1]]
            outputs = [outputs, blk.aux_head(aux, classes, classifier_activation, unit)]
    elif pooling == "avg":
        outputs = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        outputs = layers.GlobalMaxPooling2D(name="max_pool")(x)
    else:
        outputs = x
    return keras.Model(inputs, outputs, name=model_name or name)


def _inputs(input_tensor, input_shape, include_top, aux_logits):
    import keras
    from keras import layers

    if input_shape is None and input_tensor is None:
        input_shape = (INPUT_SIZE, INPUT_SIZE, 3) if include_top else (None, None, 3)
    if input_shape is not None:
        input_shape = tuple(input_shape)
        if len(input_shape) != 3:
            raise ValueError(f"input_shape must be (height, width, channels); got {input_shape}.")
        minimum = MIN_INPUT_SIZE_AUX if aux_logits else MIN_INPUT_SIZE
        for size in input_shape[:2]:
            if size is not None and size < minimum:
                raise ValueError(
                    f"input_shape {input_shape} is too small: height and width must be at least "
                    f"{minimum}{' with aux_logits=True' if aux_logits else ''}."
                )
    if input_tensor is None:
        inputs = layers.Input(shape=input_shape, name="images")
        return inputs, inputs
    if keras.backend.is_keras_tensor(input_tensor):
        return keras.utils.get_source_inputs(input_tensor), input_tensor
    inputs = layers.Input(tensor=input_tensor, shape=input_shape, name="images")
    return inputs, inputs
