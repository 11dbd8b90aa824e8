"""Layers shared by every network of the family: the conv-BN-ReLU unit and the residual scale.

Batch normalisation follows the released TF-slim checkpoints: decay (Keras ``momentum``) 0.9997,
epsilon 0.001, a learned offset (beta) and no scale (gamma), because a ReLU follows every BN.
"""

from __future__ import annotations

import keras
from keras import layers, ops

BN_MOMENTUM = 0.9997
BN_EPSILON = 0.001
KERNEL_INITIALIZER = "he_normal"  # slim's variance_scaling_initializer(factor=2.0, FAN_IN)


@keras.saving.register_keras_serializable(package="inception")
class ResidualScale(layers.Layer):
    """``shortcut + scale * residual``: the paper's residual activation scaling (Section 3.3).

    Called on ``[shortcut, residual]``. Scaling the residual branch by 0.1 to 0.3 before the sum
    keeps very wide Inception-ResNets from dying early in training.
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


def conv_bn(x, filters, kernel_size, name, strides=1, padding="same", activation="relu"):
    """Convolution (no bias) -> BatchNorm (no gamma) -> ReLU, named ``name``, ``name.BatchNorm``.

    The names mirror TF-slim scopes with ``/`` written as ``.``, so weight converters map by name.
    """
    x = layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        use_bias=False,
        kernel_initializer=KERNEL_INITIALIZER,
        name=name,
    )(x)
    x = layers.BatchNormalization(
        momentum=BN_MOMENTUM, epsilon=BN_EPSILON, scale=False, name=f"{name}.BatchNorm"
    )(x)
    if activation:
        x = layers.Activation(activation, name=f"{name}.Relu")(x)
    return x
