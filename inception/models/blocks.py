"""The block library of Szegedy et al. (2016), shared by all three networks, written as data.

A block is a list of branches, each a sequence of ``Conv``/``Pool`` ops (or a ``Split``
fan-out), applied to the same input and concatenated (a "filter concat"); a stem is a sequence of
ops and ``Mixed`` blocks. The functions in the first half of this module only return that data;
``apply``, ``branches`` and ``residual`` at the end turn it into Keras layers with the conv-BN
unit they are given (``layers.ConvBN``). Names follow TF-slim's scopes
(``Mixed_6b.Branch_1.Conv2d_0b_1x7``), so converted checkpoints map by name.

Where the paper's figures and the released TF-slim checkpoints differ, the ``paper`` flag picks the
figure's form; everything else is shared:

* Stem (Fig. 3), Mixed_4a right branch: paper 7x1 then 1x7, slim 1x7 then 7x1.
* Inception-B (Fig. 5), 5-conv branch: paper 1x7, 7x1, 1x7, 7x1; slim 7x1, 1x7, 7x1, 1x7.
* Inception-C (Fig. 6), 4-conv branch: paper 1x3 (448) then 3x1 (512); slim 3x1 then 1x3.

Channel counts, strides and "V" (valid) paddings coincide in both forms, as do Inception-A,
Reduction-A and Reduction-B. The order in which branches are concatenated is not fixed by the
figures; slim's order is used everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the data half of this module is read without Keras (``models.summary``)
    from .layers import ConvBN


@dataclass(frozen=True)
class Conv:
    filters: int
    kernel: tuple[int, int]
    name: str
    strides: int = 1
    padding: str = "same"


@dataclass(frozen=True)
class Pool:
    kind: str  # "max" or "avg"
    name: str
    strides: int = 1
    padding: str = "same"
    size: int = 3


@dataclass(frozen=True)
class Split:
    """Parallel convolutions on the same input, concatenated (the fan-out of Inception-C)."""

    convs: tuple[Conv, ...]


@dataclass(frozen=True)
class Mixed:
    """A named filter-concat block inside a stem (``Mixed_3a``, ``Mixed_5b``)."""

    name: str
    branches: tuple


def conv(filters, kernel, tag=None, strides=1, valid=False):
    """A conv op named as slim names it: ``Conv2d_{tag}_{kh}x{kw}`` (``Conv2d_1x1`` without tag)."""
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    name = f"Conv2d_{tag}_{kh}x{kw}" if tag else f"Conv2d_{kh}x{kw}"
    return Conv(filters, (kh, kw), name, strides, "valid" if valid else "same")


def max_pool(tag, strides=2):
    """3x3 max pooling; stride 2 ones are valid-padded ("V") in every figure."""
    return Pool("max", f"MaxPool_{tag}_3x3", strides, "valid" if strides > 1 else "same")


def avg_pool(tag):
    """3x3/1 average pooling, same-padded, padding excluded from the average (as slim, timm)."""
    return Pool("avg", f"AvgPool_{tag}_3x3")


# --- Stems -------------------------------------------------------------------------------------


def stem_v4(paper=False):
    """Fig. 3: the stem of Inception-v4 and of the paper's Inception-ResNet-v2 (35x35x384)."""
    return (
        conv(32, 3, "1a", 2, True), conv(32, 3, "2a", valid=True), conv(64, 3, "2b"),
        Mixed("Mixed_3a", ([max_pool("0a")], [conv(96, 3, "0a", 2, True)])),
        Mixed("Mixed_4a", (
            [conv(64, 1, "0a"), conv(96, 3, "1a", valid=True)],
            [conv(64, 1, "0a"), conv(64, (7, 1) if paper else (1, 7), "0b"),
             conv(64, (1, 7) if paper else (7, 1), "0c"), conv(96, 3, "1a", valid=True)],
        )),
        Mixed("Mixed_5a", ([conv(192, 3, "1a", 2, True)], [max_pool("1a")])),
    )  # fmt: skip


def _stem_resnet_base():
    return (
        conv(32, 3, "1a", 2, True), conv(32, 3, "2a", valid=True), conv(64, 3, "2b"),
        max_pool("3a"), conv(80, 1, "3b", valid=True), conv(192, 3, "4a", valid=True),
    )  # fmt: skip


def stem_resnet_v1():
    """Fig. 14: the stem of Inception-ResNet-v1 (35x35x256)."""
    return (*_stem_resnet_base(), conv(256, 3, "4b", 2, True))


def stem_resnet_v2_slim():
    """Slim Inception-ResNet-v2's stem: Inception-v3-like, then Mixed_5b (35x35x320)."""
    return (*_stem_resnet_base(), max_pool("5a"), Mixed("Mixed_5b", (
        [conv(96, 1)],
        [conv(48, 1, "0a"), conv(64, 5, "0b")],
        [conv(64, 1, "0a"), conv(96, 3, "0b"), conv(96, 3, "0c")],
        [avg_pool("0a"), conv(64, 1, "0b")],
    )))  # fmt: skip


# --- Inception-v4 blocks -----------------------------------------------------------------------


def inception_a():
    """Fig. 4: Inception-A, 35x35x384."""
    return (
        [conv(96, 1, "0a")],
        [conv(64, 1, "0a"), conv(96, 3, "0b")],
        [conv(64, 1, "0a"), conv(96, 3, "0b"), conv(96, 3, "0c")],
        [avg_pool("0a"), conv(96, 1, "0b")],
    )


def reduction_a(k, l, m, n):  # noqa: E741 (the paper's names)
    """Fig. 7: Reduction-A, 35x35 -> 17x17; (k, l, m, n) per network (Table 1)."""
    return (
        [conv(n, 3, "1a", 2, True)],
        [conv(k, 1, "0a"), conv(l, 3, "0b"), conv(m, 3, "1a", 2, True)],
        [max_pool("1a")],
    )


def inception_b(paper=False):
    """Fig. 5: Inception-B, 17x17x1024."""
    first, second = ((1, 7), (7, 1)) if paper else ((7, 1), (1, 7))
    deep = [conv(192, first, "0b"), conv(224, second, "0c"),
            conv(224, first, "0d"), conv(256, second, "0e")]  # fmt: skip
    return (
        [conv(384, 1, "0a")],
        [conv(192, 1, "0a"), conv(224, (1, 7), "0b"), conv(256, (7, 1), "0c")],
        [conv(192, 1, "0a"), *deep],
        [avg_pool("0a"), conv(128, 1, "0b")],
    )


def reduction_b():
    """Fig. 8: Inception-v4's Reduction-B, 17x17 -> 8x8x1536."""
    return (
        [conv(192, 1, "0a"), conv(192, 3, "1a", 2, True)],
        [conv(256, 1, "0a"), conv(256, (1, 7), "0b"), conv(320, (7, 1), "0c"),
         conv(320, 3, "1a", 2, True)],
        [max_pool("1a")],
    )  # fmt: skip


def inception_c(paper=False):
    """Fig. 6: Inception-C, 8x8x1536."""
    first, second = ((1, 3), (3, 1)) if paper else ((3, 1), (1, 3))
    return (
        [conv(256, 1, "0a")],
        [conv(384, 1, "0a"), Split((conv(256, (1, 3), "0b"), conv(256, (3, 1), "0c")))],
        [conv(384, 1, "0a"), conv(448, first, "0b"), conv(512, second, "0c"),
         Split((conv(256, (1, 3), "0d"), conv(256, (3, 1), "0e")))],
        [avg_pool("0a"), conv(256, 1, "0b")],
    )  # fmt: skip


# --- Inception-ResNet blocks (the branches before the linear 1x1 and the scaled sum) ----------


def inception_resnet_a(w):
    """Fig. 10 (v1) / Fig. 16 (v2), 35x35 grid; ``w`` = (b0, (b1a, b1b), (b2a, b2b, b2c))."""
    b0, (b1a, b1b), (b2a, b2b, b2c) = w
    return (
        [conv(b0, 1)],
        [conv(b1a, 1, "0a"), conv(b1b, 3, "0b")],
        [conv(b2a, 1, "0a"), conv(b2b, 3, "0b"), conv(b2c, 3, "0c")],
    )


def inception_resnet_b(w):
    """Fig. 11 (v1) / Fig. 17 (v2), 17x17 grid; ``w`` = (b0, (b1a, b1b, b1c))."""
    b0, (b1a, b1b, b1c) = w
    return ([conv(b0, 1)], [conv(b1a, 1, "0a"), conv(b1b, (1, 7), "0b"), conv(b1c, (7, 1), "0c")])


def inception_resnet_c(w):
    """Fig. 13 (v1) / Fig. 19 (v2), 8x8 grid; ``w`` = (b0, (b1a, b1b, b1c))."""
    b0, (b1a, b1b, b1c) = w
    return ([conv(b0, 1)], [conv(b1a, 1, "0a"), conv(b1b, (1, 3), "0b"), conv(b1c, (3, 1), "0c")])


def reduction_b_resnet(w):
    """Fig. 12 (v1) / Fig. 18 (v2): 17x17 -> 8x8; ``w`` = ((a, b), (a, b), (a, b, c))."""
    (b0a, b0b), (b1a, b1b), (b2a, b2b, b2c) = w
    return (
        [conv(b0a, 1, "0a"), conv(b0b, 3, "1a", 2, True)],
        [conv(b1a, 1, "0a"), conv(b1b, 3, "1a", 2, True)],
        [conv(b2a, 1, "0a"), conv(b2b, 3, "0b"), conv(b2c, 3, "1a", 2, True)],
        [max_pool("1a")],
    )


# --- From data to layers -----------------------------------------------------------------------


def apply(x, op, scope: str, unit: ConvBN):
    """Applies one op under ``scope`` with the conv-BN ``unit``; returns the output tensor."""
    from keras import layers

    name = f"{scope}.{op.name}" if scope and hasattr(op, "name") else getattr(op, "name", "")
    if isinstance(op, Conv):
        return unit(x, op.filters, op.kernel, name, op.strides, op.padding)
    if isinstance(op, Pool):
        pool = layers.MaxPooling2D if op.kind == "max" else layers.AveragePooling2D
        return pool(op.size, strides=op.strides, padding=op.padding, name=name)(x)
    if isinstance(op, Split):
        outs = [apply(x, c, scope, unit) for c in op.convs]
        return layers.Concatenate(name=f"{scope}.Concat")(outs)
    if isinstance(op, Mixed):
        return branches(x, op.name, op.branches, unit)
    raise TypeError(f"unknown op {op!r}")


def sequence(x, ops, scope: str, unit: ConvBN):
    for op in ops:
        x = apply(x, op, scope, unit)
    return x


def branches(x, name: str, spec, unit: ConvBN):
    """Applies each branch of ``spec`` to ``x`` and concatenates them: a "filter concat"."""
    from keras import layers

    outs = [sequence(x, ops, f"{name}.Branch_{i}", unit) for i, ops in enumerate(spec)]
    return layers.Concatenate(name=f"{name}.Concat")(outs)


def residual(x, name: str, spec, scale: float, unit: ConvBN, activation=True):
    """The Inception-ResNet pattern: filter concat -> linear 1x1 conv (bias, no BN) back to the
    input width -> ``x + scale * branch`` -> ReLU. No BN after the sum (Section 3.2)."""
    from keras import layers

    from .layers import residual_sum

    mixed = branches(x, name, spec, unit)
    up = unit.conv(
        mixed, x.shape[-1], 1, f"{name}.Conv2d_1x1", use_bias=True, init="glorot_uniform"
    )
    x = residual_sum(x, up, scale, name)
    return layers.Activation("relu", name=f"{name}.Relu")(x) if activation else x


# --- Heads -------------------------------------------------------------------------------------


def aux_head(x, classes, activation, unit: ConvBN):
    """The auxiliary classifier on the 17x17 grid (training only): 5x5/3 avg pool -> 1x1 conv 128
    -> conv 768 over the whole remaining grid (5x5 at 299) -> fully connected."""
    from keras import layers

    if x.shape[1] is None or x.shape[2] is None:
        raise ValueError(
            "aux_logits=True needs a fixed input size (its 768-filter conv spans the whole grid): "
            "pass input_shape=(299, 299, 3) or another fixed size."
        )
    x = layers.AveragePooling2D(5, strides=3, padding="valid", name="AuxLogits.AvgPool_1a_5x5")(x)
    x = unit(x, 128, 1, "AuxLogits.Conv2d_1b_1x1")
    x = unit(x, 768, tuple(x.shape[1:3]), "AuxLogits.Conv2d_2a", padding="valid")
    x = layers.Flatten(name="AuxLogits.Flatten")(x)
    return layers.Dense(
        classes, activation=activation, kernel_regularizer=unit.regularizer(),
        name="AuxLogits.Logits",
    )(x)  # fmt: skip


def classifier(x, classes, dropout_rate, activation, unit: ConvBN):
    """Average pool over the final grid -> dropout (keep 0.8 in the paper) -> fully connected."""
    from keras import layers

    x = layers.GlobalAveragePooling2D(name="Logits.AvgPool_1a")(x)
    x = layers.Dropout(dropout_rate, name="Logits.Dropout")(x)
    return layers.Dense(
        classes, activation=activation, kernel_regularizer=unit.regularizer(),
        name="Logits.Logits",
    )(x)  # fmt: skip
