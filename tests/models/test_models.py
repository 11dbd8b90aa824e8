"""Architecture facts of the three networks: parameter counts, shapes, names, options."""

import keras
import numpy as np
import pytest

import inception
from inception.models import networks
from inception.models.layers import residual_scales
from inception.models.summary import count_macs


@pytest.fixture(scope="module")
def v4_slim():
    return inception.InceptionV4(weights=None)


def test_inception_v4_slim_parameter_count(v4_slim):
    # research/slim/nets/inception_v4.py with 1000 classes, no BN gamma, BN moving statistics
    assert v4_slim.count_params() == 42_711_400
    trainable = sum(int(np.prod(w.shape)) for w in v4_slim.trainable_weights)
    assert trainable == 42_648_232


def test_inception_v4_stages(v4_slim):
    def shape(name):
        return tuple(v4_slim.get_layer(name).output.shape[1:])

    assert shape("Mixed_5a.Concat") == (35, 35, 384)  # stem, Fig. 3
    assert shape("Mixed_5e.Concat") == (35, 35, 384)  # 4 x Inception-A
    assert shape("Mixed_6a.Concat") == (17, 17, 1024)  # Reduction-A
    assert shape("Mixed_6h.Concat") == (17, 17, 1024)  # 7 x Inception-B
    assert shape("Mixed_7a.Concat") == (8, 8, 1536)  # Reduction-B
    assert shape("Mixed_7d.Concat") == (8, 8, 1536)  # 3 x Inception-C
    assert v4_slim.output.shape == (None, 1000)
    assert 12.0e9 < count_macs(v4_slim) < 12.5e9


def test_paper_and_slim_differ_only_in_factorisation_order(v4_slim):
    paper = inception.InceptionV4(weights=None, variant="paper")
    assert paper.count_params() == v4_slim.count_params()
    # Fig. 5's deepest Inception-B branch starts with 1x7, slim's with 7x1
    assert paper.get_layer("Mixed_6b.Branch_2.Conv2d_0b_1x7").kernel.shape[:2] == (1, 7)
    assert v4_slim.get_layer("Mixed_6b.Branch_2.Conv2d_0b_7x1").kernel.shape[:2] == (7, 1)
    assert paper.get_layer("Mixed_7b.Branch_2.Conv2d_0b_1x3").kernel.shape[-1] == 448
    assert v4_slim.get_layer("Mixed_7b.Branch_2.Conv2d_0b_3x1").kernel.shape[-1] == 448
    names = {layer.name for layer in paper.layers} ^ {layer.name for layer in v4_slim.layers}
    assert names and all(n.startswith(("Mixed_4a", "Mixed_6", "Mixed_7")) for n in names)


def test_inception_resnet_v1_paper_widths():
    model = inception.InceptionResNetV1(weights=None, include_top=False)
    stages = {
        "Conv2d_4b_3x3.Relu": 256,  # stem, Fig. 14
        "block35_5.Relu": 256,
        "Mixed_6a.Concat": 896,  # Reduction-A k, l, m, n = 192, 192, 256, 384
        "block17_10.Relu": 896,
        "Mixed_7a.Concat": 1792,
        "block8_5.Relu": 1792,
    }
    for name, channels in stages.items():
        assert model.get_layer(name).output.shape[-1] == channels, name
    assert len(residual_scales(model)) == 5 + 10 + 5
    # BN only on the non-residual layers: nothing normalises a sum
    bn_inputs = {layer.input.name for layer in model.layers if "BatchNorm" in layer.name}
    assert not any(".ScaleSum" in n or ".Relu" in n for n in bn_inputs)


def test_inception_resnet_v2_paper_and_slim():
    paper = inception.InceptionResNetV2(weights=None, variant="paper", include_top=False)
    assert paper.get_layer("Mixed_5a.Concat").output.shape[-1] == 384  # the v4 stem
    assert paper.get_layer("Mixed_6a.Concat").output.shape[-1] == 1152  # 256, 256, 384, 384
    assert paper.output.shape[-1] == 2144  # Reduction-B: 1152 + 384 + 288 + 320
    assert len(residual_scales(paper)) == 20
    slim = inception.InceptionResNetV2(weights=None, include_top=False, input_shape=(299, 299, 3))
    assert residual_scales(slim) == [0.17] * 10 + [0.10] * 20 + [0.20] * 9 + [1.0]
    assert slim.get_layer("Conv2d_7b_1x1").kernel.shape[-1] == 1536
    assert slim.output.shape[1:] == (8, 8, 1536)
    # the tenth block8 is linear: its sum feeds Conv2d_7b_1x1 directly
    assert (
        slim.get_layer("Conv2d_7b_1x1").input.name
        == slim.get_layer("block8_10.ScaleSum").output.name
    )


@pytest.mark.parametrize("name", ["inception_v4", "inception_resnet_v1", "inception_resnet_v2"])
def test_minimum_input_size_and_pooling(name):
    model = inception.build(name, include_top=False, input_shape=(75, 75, 3), pooling="avg")
    out = model(np.zeros((1, 75, 75, 3), "float32"))
    assert out.shape[0] == 1 and len(out.shape) == 2
    with pytest.raises(ValueError, match="at least 75"):
        inception.build(name, include_top=False, input_shape=(74, 80, 3))


def test_any_input_size_without_top():
    model = inception.build("inception_resnet_v1", include_top=False, pooling="max")
    assert model.input.shape == (None, None, None, 3)
    for size in [(75, 75), (120, 97)]:
        assert model(np.zeros((1, *size, 3), "float32")).shape == (1, 1792)
    fmap = inception.build("inception_resnet_v1", include_top=False)
    assert fmap(np.zeros((1, 139, 139, 3), "float32")).shape == (1, 3, 3, 1792)


def test_aux_logits_1001_classes_and_activation():
    model = inception.build(
        "inception_resnet_v2", aux_logits=True, classes=1001, input_shape=(107, 107, 3)
    )
    logits, aux = model(np.zeros((2, 107, 107, 3), "float32"))
    assert logits.shape == aux.shape == (2, 1001)
    np.testing.assert_allclose(np.sum(np.asarray(logits), axis=1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="at least 107"):
        inception.build("inception_v4", aux_logits=True, input_shape=(99, 99, 3))
    with pytest.raises(ValueError, match="fixed input size"):
        inception.build("inception_v4", aux_logits=True, input_shape=(None, None, 3))


def test_residual_scale_override_and_bad_options():
    model = inception.build(
        "inception_resnet_v1", residual_scale=(0.3, 0.2, 0.1), input_shape=(75, 75, 3)
    )
    assert set(residual_scales(model)) == {0.3, 0.2, 0.1}
    with pytest.raises(ValueError, match="no residual"):
        inception.build("inception_v4", residual_scale=0.1)
    with pytest.raises(ValueError, match="variant"):
        inception.build("inception_resnet_v1", variant="slim")
    with pytest.raises(ValueError, match="unknown model"):
        inception.build("inception_v5")
    with pytest.raises(ValueError, match="pooling"):
        inception.build("inception_v4", include_top=False, pooling="mean")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        inception.build("inception_resnet_v1", weights="/no/such/file.weights.h5")
    with pytest.raises(FileNotFoundError, match="nor an existing file"):
        inception.build("inception_resnet_v1", weights="no-such-weights")


def test_input_tensor():
    images = keras.Input((80, 80, 3))
    model = inception.build("inception_resnet_v1", include_top=False, input_tensor=images)
    assert model.inputs[0] is images
    assert model.output.shape == (None, 1, 1, 1792)


def test_layer_names_are_deterministic():
    a = inception.build("inception_resnet_v1", input_shape=(75, 75, 3), classes=3)
    b = inception.build("inception_resnet_v1", input_shape=(75, 75, 3), classes=3)
    assert [layer.name for layer in a.layers] == [layer.name for layer in b.layers]
    assert "block17_3.Branch_1.Conv2d_0b_1x7.BatchNorm" in {layer.name for layer in a.layers}


STRIDED = {  # end points at strides 4, 8, 16, 32 and their channels
    ("inception_v4", "slim"): (192, 384, 1024, 1536),
    ("inception_v4", "paper"): (192, 384, 1024, 1536),
    ("inception_resnet_v1", "paper"): (192, 256, 896, 1792),
    ("inception_resnet_v2", "slim"): (192, 320, 1088, 1536),
    ("inception_resnet_v2", "paper"): (192, 384, 1152, 2144),
}


@pytest.mark.parametrize("name,variant", sorted(STRIDED))
def test_features_only_returns_the_strided_end_points(name, variant, tmp_path):
    model = inception.build(name, variant=variant, features_only=True)
    assert list(model.output) == list(networks.ARCHS[(name, variant)].features)
    outs = model(np.zeros((1, 299, 299, 3), "float32"))
    grids = [(71, 71), (35, 35), (17, 17), (8, 8)]  # 299 / 4, 8, 16, 32 with valid reductions
    for key, grid, channels in zip(model.output, grids, STRIDED[(name, variant)]):
        assert tuple(outs[key].shape) == (1, *grid, channels), key
    if (name, variant) == ("inception_resnet_v1", "paper"):  # saveable, plain Keras
        path = tmp_path / "backbone.keras"
        model.save(path)
        again = keras.saving.load_model(path)
        x = np.random.default_rng(0).uniform(-1, 1, (1, 96, 80, 3)).astype("float32")
        a, b = model(x), again(x)
        assert set(a) == set(b)
        for key in a:
            np.testing.assert_allclose(np.asarray(a[key]), np.asarray(b[key]), atol=1e-6)


@pytest.mark.parametrize("name", sorted({n for n, _ in networks.ARCHS}))
def test_builder_surface(name):
    """The keras.applications surface, the same for all three networks."""
    images = keras.Input((107, 107, 3))
    model = inception.build(name, input_tensor=images, classes=6, classifier_activation=None)
    assert model.inputs[0] is images and model.output.shape == (None, 6)
    x = np.random.default_rng(1).uniform(-1, 1, (2, 107, 107, 3)).astype("float32")
    logits = np.asarray(model(x))
    assert not np.allclose(logits.sum(axis=1), 1.0)  # logits, not probabilities
    both = inception.build(name, input_shape=(107, 107, 3), classes=6, aux_logits=True)
    main, aux = both(x)
    assert main.shape == aux.shape == (2, 6)
    np.testing.assert_allclose(np.asarray(aux).sum(axis=1), 1.0, rtol=1e-5)
    unit = inception.ConvBN(momentum=0.9, epsilon=0.01, synchronized=True, l2=1e-4)
    tuned = inception.build(name, input_shape=(75, 75, 3), classes=6, conv_bn=unit)
    bns = [ly for ly in tuned.layers if isinstance(ly, keras.layers.BatchNormalization)]
    assert bns and all((b.momentum, b.epsilon, b.synchronized) == (0.9, 0.01, True) for b in bns)
    assert len(tuned.losses) == sum(
        1 for ly in tuned.layers if isinstance(ly, (keras.layers.Conv2D, keras.layers.Dense))
    )
    info = inception.model_info(tuned)
    assert (info.model, info.image_size, info.class_names) == (name, 75, None)
    with pytest.raises(ValueError, match="inception.ConvBN"):
        inception.build(name, conv_bn={"momentum": 0.9})
