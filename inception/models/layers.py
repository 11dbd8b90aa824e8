"""The units every network of the family is made of: the conv-BN-ReLU unit and the residual sum.

``ConvBN`` holds the settings of the conv-BN unit and is passed into the builders
(``inception.build(name, conv_bn=ConvBN(momentum=0.9))``), as timm passes its ``conv_block``:
batch-norm decay, epsilon, synchronised (cross-replica) statistics and the L2 penalty of the
kernels are chosen once, where the layers are created. Its defaults are the released TF-slim
checkpoints': decay (Keras ``momentum``) 0.9997, epsilon 0.001, a learned offset (beta) and no
scale (gamma), because a ReLU follows every BN.

The residual sum ``shortcut + scale * residual`` is made of built-in layers (``Rescaling`` and
``Add``), so a saved single model loads with plain ``keras.saving.load_model``.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import layers, ops

KERNEL_INITIALIZER = "he_normal"  # slim's variance_scaling_initializer(factor=2.0, FAN_IN)


@dataclass(frozen=True)
class ConvBN:
    """Settings of the conv-BN unit (and of the other kernels of the network).

    Attributes:
        momentum: moving-average decay of the BN statistics (slim's ``decay``), 0.9997.
        epsilon: BN epsilon, 0.001.
        synchronized: batch statistics over all replicas (``BatchNormalization(synchronized=)``).
        l2: L2 penalty factor of every convolution and dense kernel, as Keras' ``L2(l2)``
            (``l2 * sum(w**2)``; slim's ``weight_decay`` of ``4e-5`` is ``l2=2e-5``). 0: none.
    """

    momentum: float = 0.9997
    epsilon: float = 0.001
    synchronized: bool = False
    l2: float = 0.0

    def regularizer(self):
        return keras.regularizers.L2(self.l2) if self.l2 else None

    def conv(self, x, filters, kernel_size, name, strides=1, padding="same", use_bias=False,
             init=KERNEL_INITIALIZER):  # fmt: skip
        """A bare convolution with this unit's L2 penalty."""
        return layers.Conv2D(
            filters,
            kernel_size,
            strides=strides,
            padding=padding,
            use_bias=use_bias,
            kernel_initializer=init,
            kernel_regularizer=self.regularizer(),
            name=name,
        )(x)

    def __call__(self, x, filters, kernel_size, name, strides=1, padding="same", activation=True):
        """Convolution (no bias) -> BatchNorm (no gamma) -> ReLU, named ``name``,
        ``name.BatchNorm``, ``name.Relu``: TF-slim scopes with ``/`` written as ``.``."""
        x = self.conv(x, filters, kernel_size, name, strides, padding)
        x = layers.BatchNormalization(
            momentum=self.momentum,
            epsilon=self.epsilon,
            scale=False,
            synchronized=self.synchronized,
            name=f"{name}.BatchNorm",
        )(x)
        return layers.Activation("relu", name=f"{name}.Relu")(x) if activation else x


DEFAULT_CONV_BN = ConvBN()


def residual_sum(shortcut, residual, scale: float, name: str):
    """``shortcut + scale * residual`` (the paper's residual activation scaling, Section 3.3):
    ``{name}.Scale`` (``Rescaling``) and ``{name}.ScaleSum`` (``Add``)."""
    scaled = layers.Rescaling(float(scale), name=f"{name}.Scale")(residual)
    return layers.Add(name=f"{name}.ScaleSum")([shortcut, scaled])


@keras.saving.register_keras_serializable(package="inception")
class ResidualScale(layers.Layer):
    """``shortcut + scale * residual`` as one layer, called on ``[shortcut, residual]``.

    The builders now use :func:`residual_sum` (built-in layers); this class stays so that
    ``.keras`` files saved by earlier versions still load after ``import inception``.
    """

    def __init__(self, scale: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = float(scale)

    def call(self, inputs):
        shortcut, residual = inputs
        return ops.add(shortcut, ops.multiply(residual, ops.cast(self.scale, residual.dtype)))

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


def residual_scales(model) -> list[float]:
    """The residual scales of a built Inception-ResNet, block by block."""
    return [
        float(layer.scale)
        for layer in model.layers
        if isinstance(layer, ResidualScale)
        or (isinstance(layer, layers.Rescaling) and layer.name.endswith(".Scale"))
    ]
