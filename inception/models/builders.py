"""A registered network as a Keras model that knows what it is (its ``ModelInfo``), with random
weights. The public builders (``inception.InceptionV4``...), which also load ``weights=``, are in
``inception.app.builders``."""

from __future__ import annotations

from . import networks
from .info import ModelInfo, set_model_info
from .registry import get_model_config


def build_architecture(
    model_name, *, variant, include_top, input_tensor, input_shape, pooling, classes,
    classifier_activation, residual_scale, aux_logits, dropout_rate, features_only, conv_bn, name,
):  # fmt: skip
    """``model_name`` (a registered name) in ``variant``, randomly initialised; the arguments are
    those of the public builders."""
    arch = networks.get_arch(model_name, variant)
    model = networks.build_network(
        model_name, arch, include_top=include_top, input_tensor=input_tensor,
        input_shape=input_shape, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation, aux_logits=aux_logits,
        dropout_rate=dropout_rate, features_only=features_only, residual_scale=residual_scale,
        conv_bn=conv_bn, model_name=name,
    )  # fmt: skip
    config = get_model_config(model_name)
    shape = model.inputs[0].shape
    size = int(shape[1]) if shape[1] is not None else config.input_size
    set_model_info(
        model,
        ModelInfo(model_name, variant, preprocessing=config.preprocessing.replace(input_size=size)),
    )
    return model
