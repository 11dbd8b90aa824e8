"""The paper's optimizer as a Keras optimizer: RMSProp as TensorFlow implements it (the paper's
and TF-slim's), gradient clipping by the global norm, and slim's moving average of the weights.

Written the way Keras documents custom optimizers (``build`` adds the slots with
``add_variable_from_reference``, ``update_step`` updates one variable), so it runs wherever
Keras' optimizers run: ``model.fit`` on TensorFlow (under ``tf.distribute``) and on JAX
(``stateless_apply`` inside the jitted step), wrapped by ``LossScaleOptimizer`` for float16.
"""

from __future__ import annotations

import keras
from keras import ops

from . import backend
from .paper import PAPER


@keras.saving.register_keras_serializable(package="inception")
class PaperRMSProp(keras.optimizers.Optimizer):
    """RMSProp with momentum, global-norm clipping and a warmed-up moving average of the weights.

    The update is TensorFlow's ``RMSPropOptimizer``; the defaults are Szegedy et al. 2016's
    (``recipes/paper.json``)::

        ms  = rho * ms + (1 - rho) * g**2          (ms starts at 1, as in TensorFlow)
        mom = momentum * mom + lr * g / sqrt(ms + epsilon)
        w   = w - mom

    Keras' ``RMSprop`` starts ``ms`` at 0, which with the paper's epsilon of 1.0 makes the first
    updates up to 1.4x larger.

    ``global_clipnorm`` clips the gradient of the global batch (under a ``tf.distribute``
    strategy with several replicas too, where Keras' own option clips each replica's share).

    ``ema_decay`` keeps TF-slim's ``ExponentialMovingAverage(decay, num_updates=step)`` of every
    trainable weight: ``average = d * average + (1 - d) * w`` after each update with
    ``d = min(ema_decay, (1 + step) / (10 + step))``, so a short run averages over its own steps
    rather than over its random initialisation (Keras' ``use_ema`` has no such warm-up). The
    averages start at the weights' values. As with Keras' ``use_ema``, ``fit()`` ends by writing
    the averages into the model (``finalize_variable_values``); ``averages`` holds them.
    """

    def __init__(
        self,
        learning_rate=PAPER["base_learning_rate"],
        rho=PAPER["rmsprop_rho"],
        momentum=PAPER["rmsprop_momentum"],
        epsilon=PAPER["rmsprop_epsilon"],
        global_clipnorm=PAPER["gradient_clip_norm"],
        ema_decay=PAPER["ema_decay"],
        name="paper_rmsprop",
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if ema_decay is not None and not 0.0 <= ema_decay <= 1.0:
            raise ValueError(f"ema_decay must be in [0, 1] or None; got {ema_decay}.")
        self.rho, self.momentum, self.epsilon = float(rho), float(momentum), float(epsilon)
        self.clip_norm = None if global_clipnorm is None else float(global_clipnorm)
        self.ema_decay = None if ema_decay is None else float(ema_decay)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.mean_squares = [
            self.add_variable_from_reference(v, "rms", initializer="ones") for v in variables
        ]
        self.momenta = [self.add_variable_from_reference(v, "momentum") for v in variables]
        self.averages = []
        if self.ema_decay is not None:
            self.averages = [
                self.add_variable_from_reference(v, "average", initializer=_value_of(v))
                for v in variables
            ]

    def apply(self, grads, trainable_variables=None):
        grads = backend.clip_by_global_norm(list(grads), self.clip_norm)
        return super().apply(grads, trainable_variables)

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        g = ops.cast(gradient, dtype)
        ms, mom = self.mean_squares[index], self.momenta[index]
        self.assign(ms, ops.add(ops.multiply(self.rho, ms), ops.multiply(1.0 - self.rho, g * g)))
        step = ops.divide(ops.multiply(lr, g), ops.sqrt(ops.add(ms, self.epsilon)))
        self.assign(mom, ops.add(ops.multiply(self.momentum, mom), step))
        self.assign_sub(variable, mom)
        if self.ema_decay is not None:
            count = ops.cast(self.iterations, dtype)
            decay = ops.minimum(self.ema_decay, (1.0 + count) / (10.0 + count))
            average = self.averages[index]
            moved = ops.multiply(1.0 - decay, ops.subtract(variable, average))
            self.assign(average, ops.add(average, moved))

    def finalize_variable_values(self, var_list):
        """Writes the moving averages into ``var_list`` (called by ``fit()`` at its end)."""
        if self.ema_decay is None:
            return
        for variable in var_list:  # copies: on JAX a buffer shared by two variables breaks fit
            average = self.averages[self._get_variable_index(variable)]
            variable.assign(ops.copy(ops.convert_to_tensor(average)))

    def get_config(self):
        config = super().get_config()
        config.update(
            rho=self.rho,
            momentum=self.momentum,
            epsilon=self.epsilon,
            global_clipnorm=self.clip_norm,
            ema_decay=self.ema_decay,
        )
        return config


def _value_of(variable):
    """An initializer that copies ``variable``'s current value (a copy of its own: on JAX the
    jitted step donates every variable's buffer, and a buffer may be donated once)."""

    def initializer(shape, dtype=None):
        return ops.copy(ops.cast(ops.convert_to_tensor(variable), dtype or variable.dtype))

    return initializer
