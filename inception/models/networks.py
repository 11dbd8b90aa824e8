"""Inception-v4, Inception-ResNet-v1 and Inception-ResNet-v2 (Szegedy et al., 2016,
arXiv:1602.07261), built from the shared block library. What differs between the networks is the
data in ``ARCHS``: stem, block counts, widths, Reduction-A (k, l, m, n) and residual scales.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import layers

from . import blocks as blk

MIN_INPUT_SIZE = (
    75  # five valid 3x3/2 reductions and two valid 3x3s: 75 -> 37 -> 35 -> 17 -> 7 -> 3 -> 1
)
MIN_INPUT_SIZE_AUX = 107  # the auxiliary head's 5x5/3 pool needs a 17x17 grid of at least 5x5


@dataclass(frozen=True)
class ResNetArch:
    """One Inception-ResNet, as data. Widths are given branch by branch, as in the figures."""

    stem: str  # "resnet_v1" (Fig. 14), "v4" (Fig. 3) or "slim" (v3-like stem + Mixed_5b)
    repeats: tuple[int, int, int]  # Inception-ResNet-A, -B, -C
    block_a: tuple
    reduction_a: tuple[int, int, int, int]  # k, l, m, n
    block_b: tuple
    reduction_b: tuple
    block_c: tuple
    scales: tuple[float, float, float]
    final_linear_block: bool = False  # slim: one more Block8, scale 1.0, no ReLU
    final_conv: int | None = None  # slim: Conv2d_7b_1x1 to 1536 channels


V1_WIDTHS = dict(
    block_a=(32, (32, 32), (32, 32, 32)),  # Fig. 10
    reduction_a=(192, 192, 256, 384),  # Table 1
    block_b=(128, (128, 128, 128)),  # Fig. 11
    reduction_b=((256, 384), (256, 256), (256, 256, 256)),  # Fig. 12
    block_c=(192, (192, 192, 192)),  # Fig. 13
)
V2_WIDTHS = dict(
    block_a=(32, (32, 32), (32, 48, 64)),  # Fig. 16
    reduction_a=(256, 256, 384, 384),  # Table 1
    block_b=(192, (128, 160, 192)),  # Fig. 17
    reduction_b=((256, 384), (256, 288), (256, 288, 320)),  # Fig. 18
    block_c=(192, (192, 224, 256)),  # Fig. 19
)
SCALES = (0.17, 0.10, 0.20)  # slim's; the paper says "between 0.1 and 0.3"

ARCHS = {
    ("inception_resnet_v1", "paper"): ResNetArch(
        "resnet_v1", (5, 10, 5), scales=SCALES, **V1_WIDTHS
    ),
    ("inception_resnet_v2", "paper"): ResNetArch("v4", (5, 10, 5), scales=SCALES, **V2_WIDTHS),
    ("inception_resnet_v2", "slim"): ResNetArch(
        "slim", (10, 20, 9), scales=SCALES, final_linear_block=True, final_conv=1536, **V2_WIDTHS
    ),
}
V4_REPEATS = (4, 7, 3)
V4_REDUCTION_A = (192, 224, 256, 384)  # k, l, m, n (Table 1)


def inception_v4_features(x, variant, residual_scale=None):
    """Fig. 9: stem, 4 x Inception-A, Reduction-A, 7 x Inception-B, Reduction-B, 3 x Inception-C.

    Returns the 8x8x1536 feature map and the 17x17x1024 grid the auxiliary head reads.
    """
    if residual_scale is not None:
        raise ValueError("Inception-v4 has no residual connections: residual_scale does not apply.")
    paper = variant == "paper"
    x = blk.stem_v4(x, paper)
    n_a, n_b, n_c = V4_REPEATS
    for i in range(n_a):
        x = blk.inception_a(x, f"Mixed_5{'bcde'[i]}")
    x = blk.reduction_a(x, "Mixed_6a", *V4_REDUCTION_A)
    for i in range(n_b):
        x = blk.inception_b(x, f"Mixed_6{'bcdefgh'[i]}", paper)
    aux = x
    x = blk.reduction_b(x, "Mixed_7a")
    for i in range(n_c):
        x = blk.inception_c(x, f"Mixed_7{'bcd'[i]}", paper)
    return x, aux


def inception_resnet_features(arch: ResNetArch, residual_scale=None):
    """Fig. 15: stem, N x Inception-ResNet-A, Reduction-A, N x -B, Reduction-B, N x -C.

    Block names follow slim: ``block35_i``, ``Mixed_6a``, ``block17_i``, ``Mixed_7a``, ``block8_i``.
    """
    scales = _scales(arch.scales, residual_scale)

    def features(x):
        if arch.stem == "v4":
            x = blk.stem_v4(x, paper=True)
        elif arch.stem == "resnet_v1":
            x = blk.stem_resnet(x, blk.conv(256, 3, "4b", 2, True))
        else:
            x = blk.mixed_5b(blk.stem_resnet(x, blk.max_pool("5a")))
        n_a, n_b, n_c = arch.repeats
        for i in range(n_a):
            x = blk.inception_resnet_a(x, f"block35_{i + 1}", arch.block_a, scales[0])
        x = blk.reduction_a(x, "Mixed_6a", *arch.reduction_a)
        for i in range(n_b):
            x = blk.inception_resnet_b(x, f"block17_{i + 1}", arch.block_b, scales[1])
        aux = x
        x = blk.reduction_b_resnet(x, "Mixed_7a", arch.reduction_b)
        for i in range(n_c):
            x = blk.inception_resnet_c(x, f"block8_{i + 1}", arch.block_c, scales[2])
        if arch.final_linear_block:
            x = blk.inception_resnet_c(x, f"block8_{n_c + 1}", arch.block_c, 1.0, activation=False)
        if arch.final_conv:
            x = blk.conv_bn(x, arch.final_conv, 1, "Conv2d_7b_1x1")
        return x, aux

    return features


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
    name,
    features,
    *,
    include_top,
    input_tensor,
    input_shape,
    pooling,
    classes,
    classifier_activation,
    aux_logits,
    dropout_rate,
    model_name,
):
    """Wraps a feature extractor in the keras.applications surface (inputs, top, pooling)."""
    if keras.config.image_data_format() != "channels_last":
        raise ValueError(
            "inception models are built channels_last; call "
            "keras.config.set_image_data_format('channels_last') first."
        )
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
    inputs, x = _inputs(input_tensor, input_shape, include_top, aux_logits)
    x, aux = features(x)
    if include_top:
        outputs = blk.classifier(x, classes, dropout_rate, classifier_activation)
        if aux_logits:
            outputs = [outputs, blk.aux_head(aux, classes, classifier_activation)]
    elif pooling == "avg":
        outputs = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        outputs = layers.GlobalMaxPooling2D(name="max_pool")(x)
    else:
        outputs = x
    return keras.Model(inputs, outputs, name=model_name or name)


def _inputs(input_tensor, input_shape, include_top, aux_logits):
    if input_shape is None and input_tensor is None:
        input_shape = (299, 299, 3) if include_top else (None, None, 3)
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
