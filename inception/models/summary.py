"""Model statistics: parameters and multiply-accumulates.

``table_counts`` reads them off the architecture table (``networks.ARCHS``) by arithmetic, without
Keras, so ``inception models`` answers at once; ``count_macs`` counts a built model's graph (the
tests check that both agree, and that the parameters equal ``model.count_params()``).
"""

from __future__ import annotations

import functools
import math

from ..preprocessing import INPUT_SIZE
from . import blocks as blk
from . import networks
from .registry import get_model_config


def count_macs(model) -> int:
    """Multiply-accumulates of one forward pass of a built model (convolutions and dense layers)."""
    from keras import layers

    total = 0
    for layer in model.layers:
        if isinstance(layer, layers.Conv2D):
            kh, kw = layer.kernel_size
            in_ch = layer.input.shape[-1]
            out = layer.output.shape
            total += math.prod(out[1:]) * kh * kw * in_ch
        elif isinstance(layer, layers.Dense):
            total += layer.input.shape[-1] * layer.units
    return total


def _length(size: int, kernel: int, stride: int, padding: str) -> int:
    """Output length of a convolution or pooling along one axis (Keras' padding rules)."""
    if padding == "valid":
        return (size - kernel) // stride + 1
    return -(-size // stride)


class _Counter:
    """Walks the table as ``networks.features`` builds it, tracking the (height, width, channels)
    of every tensor; adds up weights (as ``count_params``: batch-norm statistics included) and
    multiply-accumulates (as ``count_macs``)."""

    def __init__(self):
        self.params = 0
        self.macs = 0

    def conv(self, shape, filters, kernel, strides=1, padding="same", bn=True, bias=False):
        """A convolution; ``bn``: followed by the unit's BatchNorm (offset, mean, variance: no
        scale), ``bias``: with a bias (the residual blocks' linear 1x1)."""
        h, w, c = shape
        kh, kw = kernel
        out = (_length(h, kh, strides, padding), _length(w, kw, strides, padding), filters)
        self.params += kh * kw * c * filters + 3 * filters * bn + filters * bias
        self.macs += out[0] * out[1] * kh * kw * c * filters
        return out

    def op(self, shape, op):
        if isinstance(op, blk.Conv):
            return self.conv(shape, op.filters, op.kernel, op.strides, op.padding)
        if isinstance(op, blk.Pool):
            h, w, c = shape
            size, stride = op.size, op.strides
            return (_length(h, size, stride, op.padding), _length(w, size, stride, op.padding), c)
        if isinstance(op, blk.Split):
            outs = [self.op(shape, c) for c in op.convs]
            return (*outs[0][:2], sum(o[2] for o in outs))
        if isinstance(op, blk.Mixed):
            return self.branches(shape, op.branches)
        raise TypeError(f"unknown op {op!r}")

    def branches(self, shape, spec):
        outs = []
        for ops in spec:
            x = shape
            for op in ops:
                x = self.op(x, op)
            outs.append(x)
        return (*outs[0][:2], sum(o[2] for o in outs))

    def residual(self, shape, spec):
        mixed = self.branches(shape, spec)
        self.conv(mixed, shape[2], (1, 1), bn=False, bias=True)
        return shape


@functools.cache
def table_counts(
    name: str, variant: str | None = None, classes: int = 1000, size: int = INPUT_SIZE
):
    """``(parameters, multiply-accumulates)`` of ``build(name, variant=variant, classes=classes,
    input_shape=(size, size, 3))``, computed from the architecture table (no Keras)."""
    arch = networks.get_arch(name, variant or get_model_config(name).default_variant)
    count = _Counter()
    x = (size, size, 3)
    for op in arch.stem:
        x = count.op(x, op)
    stages = networks.stage_blocks(arch)
    repeats = dict(zip("abc", arch.repeats))
    for stage, spec in stages:
        if stage not in repeats:  # a reduction
            x = count.branches(x, spec)
            continue
        for _ in range(repeats[stage]):
            x = count.residual(x, spec) if arch.residual else count.branches(x, spec)
    if arch.final_linear_block:
        x = count.residual(x, stages[-1][1])
    if arch.final_conv:
        x = count.conv(x, arch.final_conv, (1, 1))
    count.params += x[2] * classes + classes  # the classifier (dense, with bias)
    count.macs += x[2] * classes
    return count.params, count.macs
