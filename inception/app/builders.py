"""The public builders (``inception.InceptionV4``, ``InceptionResNetV1``, ``InceptionResNetV2``)
and ``inception.build``: the ``keras.applications`` signature plus the paper's knobs. Each is an
architecture of ``inception.models`` with the weights of ``inception.weights``."""

from __future__ import annotations

from ..models.builders import build_architecture
from ..models.registry import get_model_config, register_model
from ..weights.manifest import DEFAULT_WEIGHTS

_COMMON_DOC = """
    Args:
        include_top: whether to include the classifier (average pool, dropout, dense).
        weights: ``None`` (random initialisation), ``"imagenet"`` (the default pretrained entry of
            the weights manifest), a manifest name such as ``"timm:inception_v4.tf_in1k"``, or the
            path of a converted ``.weights.h5`` file or of a supported source checkpoint.
        input_tensor: optional Keras tensor to use as the image input.
        input_shape: ``(height, width, 3)``; default ``(299, 299, 3)`` with the top and
            ``(None, None, 3)`` without. Height and width must be at least 75 (107 with
            ``aux_logits``).
        pooling: with ``include_top=False``: ``None`` (the 4-D feature map), ``"avg"`` or ``"max"``.
        classes: number of classes (1000, or 1001 for slim's layout with background at index 0).
        classifier_activation: activation of the top layer(s); ``None`` returns logits.
        variant: ``"slim"`` (the architecture of the released TF-slim checkpoints) or ``"paper"``
            (the paper's figures).
        residual_scale: override of the residual activation scaling: one number for all blocks or
            three for blocks A, B, C.
        aux_logits: add the auxiliary classifier on the 17x17 grid; the model then returns
            ``[logits, aux_logits]``.
        dropout_rate: dropout before the classifier (the paper's keep probability 0.8).
        features_only: return a backbone whose outputs are a dict of the feature maps at output
            strides 4, 8, 16 and 32, keyed by their TF-slim end point names
            (``networks.ARCHS[...].features``); ``include_top``, ``pooling`` and ``classes`` are
            then ignored.
        conv_bn: an ``inception.ConvBN`` (batch-norm momentum, epsilon, synchronised BN, kernel
            L2); default: TF-slim's settings.
        name: model name.

    Inputs are RGB scaled to [-1, 1] (``inception.preprocess_input``). The built model carries
    its ``inception.ModelInfo`` (class names, preprocessing, weights' provenance).
"""


def _build(model_name, *, weights, **kwargs):
    model = build_architecture(model_name, **kwargs)
    if weights is not None:
        from ..weights.loading import load_weights  # Keras: loads when a model is built

        top = kwargs["include_top"] and not kwargs["features_only"]
        aux = kwargs["aux_logits"] and top
        load_weights(model, model_name, weights, variant=kwargs["variant"], include_top=top,
                     classes=kwargs["classes"], aux_logits=aux)  # fmt: skip
    return model


@register_model("inception_v4")
def InceptionV4(
    include_top=True, weights=DEFAULT_WEIGHTS, input_tensor=None, input_shape=None, pooling=None,
    classes=1000, classifier_activation="softmax", *, variant="slim", residual_scale=None,
    aux_logits=False, dropout_rate=0.2, features_only=False, conv_bn=None, name=None,
):  # fmt: skip
    """Inception-v4 (Szegedy et al., 2016, Fig. 9): 42.7 M parameters, 299x299 input.

    The ``slim`` and ``paper`` variants have the same widths and parameter count; they differ in
    the order of the factorised 1x7/7x1 and 1x3/3x1 convolutions (see ``inception.models.blocks``).
    """
    return _build("inception_v4", **locals())


@register_model("inception_resnet_v1")
def InceptionResNetV1(
    include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
    classes=1000, classifier_activation="softmax", *, variant="paper", residual_scale=None,
    aux_logits=False, dropout_rate=0.2, features_only=False, conv_bn=None, name=None,
):  # fmt: skip
    """Inception-ResNet-v1 (Fig. 15 with the stem of Fig. 14): 5 x A, 10 x B, 5 x C, 1792 final
    channels, Reduction-A (k, l, m, n) = (192, 192, 256, 384). Only the paper form exists: no
    TF-slim (or other public ImageNet) checkpoint was released. Residual scales default to
    0.17/0.10/0.20 (A/B/C), within the paper's 0.1-0.3.
    """
    return _build("inception_resnet_v1", **locals())


@register_model("inception_resnet_v2")
def InceptionResNetV2(
    include_top=True, weights=DEFAULT_WEIGHTS, input_tensor=None, input_shape=None, pooling=None,
    classes=1000, classifier_activation="softmax", *, variant="slim", residual_scale=None,
    aux_logits=False, dropout_rate=0.2, features_only=False, conv_bn=None, name=None,
):  # fmt: skip
    """Inception-ResNet-v2.

    ``slim`` (default; the released checkpoints, and ``keras.applications.InceptionResNetV2``):
    Inception-v3-like stem + Mixed_5b (35x35x320), 10 x block35 (scale 0.17), Mixed_6a,
    20 x block17 (0.10), Mixed_7a, 9 x block8 (0.20) and a tenth block8 with scale 1.0 and no
    ReLU, then Conv2d_7b_1x1 to 1536 channels: 55,873,736 parameters with 1000 classes.

    ``paper``: the stem of Fig. 3, 5 x Inception-ResNet-A (Fig. 16), Reduction-A
    (256, 256, 384, 384), 10 x B (Fig. 17), Reduction-B (Fig. 18), 5 x C (Fig. 19). The paper's
    figures do not add up: Fig. 17's 1x1 restores "1154" channels but its input has
    384 + 384 + 384 = 1152, and Fig. 19's restores "2048" but Reduction-B outputs
    1152 + 384 + 288 + 320 = 2144. A residual sum needs equal widths, so here each linear 1x1
    restores exactly its block's input width (1152 and 2144), and no final 1x1 conv is added.
    """
    return _build("inception_resnet_v2", **locals())


for _builder in (InceptionV4, InceptionResNetV1, InceptionResNetV2):
    _builder.__doc__ += _COMMON_DOC


def build(name: str, **kwargs):
    """Builds a registered model by name: ``build("inception_v4", weights=None, classes=10)``.

    Unlike the builders, ``weights`` defaults to ``None`` (as timm's ``pretrained=False``).
    Keyword arguments are those of the builder (``keras.applications`` signature plus
    ``variant``, ``residual_scale``, ``aux_logits``, ``dropout_rate``, ``features_only``,
    ``conv_bn``).
    """
    kwargs.setdefault("weights", None)
    return get_model_config(name).builder(**kwargs)
