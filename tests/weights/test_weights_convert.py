"""Converters: TF-slim checkpoints and timm safetensors with the reference frameworks' exact tensor
names and shapes (transcribed from slim's and timm's sources in weights_fixtures.py) convert
without a single unused or missing tensor; bad checkpoints fail naming the tensors."""

# ruff: noqa: F811 (pytest fixtures imported from weights_fixtures are used as arguments)

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

import inception  # noqa: E402
from inception.weights import WeightsError, convert_into  # noqa: E402
from inception.weights.sources import Source  # noqa: E402

NETS = ("inception_v4", "inception_resnet_v2")


@pytest.fixture(scope="module")
def models():
    """Per network: the 1001-class model with aux head (299x299, as slim trained it) and a
    1000-class model without it (small input: weights do not depend on the input size)."""
    out = {}
    for name in NETS:
        out[name, "aux"] = inception.build(
            name, input_shape=(299, 299, 3), classes=1001, aux_logits=True
        )
        out[name, "plain"] = inception.build(
            name, input_shape=(75, 75, 3), classes=1000, classifier_activation=None
        )
    return out


def weight(model, layer, name):
    return next(w for w in model.get_layer(layer).weights if w.name == name).numpy()


@pytest.mark.parametrize("name", NETS)
def test_slim_checkpoint_converts_with_aux_head_and_1001_classes(models, slim_checkpoints, name):
    prefix, tensors = slim_checkpoints[name]
    model = models[name, "aux"]
    report = convert_into(model, name, prefix)
    assert set(report.used) == set(tensors)  # every slim variable is used ...
    assert report.skipped == {"global_step": "bookkeeping"}  # ... only global_step is not
    assert len(report.used) == len(model.weights)
    root = {"inception_v4": "InceptionV4", "inception_resnet_v2": "InceptionResnetV2"}[name]
    aux_fc = "AuxLogits/Aux_logits" if name == "inception_v4" else "AuxLogits/Logits"
    np.testing.assert_array_equal(
        weight(model, "AuxLogits.Logits", "kernel"), tensors[f"{root}/{aux_fc}/weights"]
    )
    np.testing.assert_array_equal(
        weight(model, "Logits.Logits", "bias"), tensors[f"{root}/Logits/Logits/biases"]
    )
    if name == "inception_resnet_v2":  # slim's unrepeated final block is our block8_10
        np.testing.assert_array_equal(
            weight(model, "block8_10.Conv2d_1x1", "kernel"),
            tensors[f"{root}/Block8/Conv2d_1x1/weights"],
        )
        np.testing.assert_array_equal(
            weight(model, "block17_20.Branch_1.Conv2d_0c_7x1.BatchNorm", "moving_variance"),
            tensors[f"{root}/Repeat_1/block17_20/Branch_1/Conv2d_0c_7x1/BatchNorm/moving_variance"],
        )


@pytest.mark.parametrize("name", NETS)
def test_slim_checkpoint_converts_without_aux_head_to_1000_classes(models, slim_checkpoints, name):
    prefix, tensors = slim_checkpoints[name]
    model = models[name, "plain"]
    report = convert_into(model, name, prefix)
    aux = {k for k in tensors if "/AuxLogits/" in k}
    assert len(aux) == 10  # two conv-BN units (4 + 4) and the dense layer (2)
    assert set(report.skipped) == aux | {"global_step"}
    assert all("aux_logits" in report.skipped[k] for k in aux)
    assert set(report.used) == set(tensors) - aux
    root = next(iter(tensors)).split("/")[0]
    kernel, bias = tensors[f"{root}/Logits/Logits/weights"], tensors[f"{root}/Logits/Logits/biases"]
    np.testing.assert_array_equal(weight(model, "Logits.Logits", "kernel"), kernel[:, 1:])
    np.testing.assert_array_equal(weight(model, "Logits.Logits", "bias"), bias[1:])
    assert "background" in report.class_drop


@pytest.mark.parametrize("name", NETS)
def test_timm_safetensors_convert_with_exact_keys(models, timm_files, name):
    path, tensors = timm_files[name]
    model = models[name, "plain"]
    report = convert_into(model, name, path)
    counters = {k for k in tensors if k.endswith("num_batches_tracked")}
    assert set(report.skipped) == counters
    assert set(report.used) == set(tensors) - counters
    assert len(report.folded) == len(counters)  # every BN scale != 1 was folded
    np.testing.assert_array_equal(
        weight(model, "Logits.Logits", "kernel"),
        tensors["last_linear.weight" if name == "inception_v4" else "classif.weight"].T,
    )


def test_timm_bn_scale_is_folded_exactly(models, timm_files):
    """First conv-BN unit: ours (folded, scale-free BN) == timm's formula with gamma, including
    negative gammas (kernel and mean negated)."""
    name = "inception_resnet_v2"
    path, tensors = timm_files[name]
    tensors = dict(tensors)
    gamma = tensors["conv2d_1a.bn.weight"].copy()
    gamma[::3] *= -1.0
    tensors["conv2d_1a.bn.weight"] = gamma
    model = models[name, "plain"]
    convert_into(model, name, Source("timm", path, tensors))
    x = np.random.default_rng(0).uniform(-1, 1, (2, 75, 75, 3)).astype("float32")
    sub = tf.keras.Model(model.input, model.get_layer("Conv2d_1a_3x3.BatchNorm").output)
    ours = sub(x, training=False).numpy()
    kernel = np.transpose(tensors["conv2d_1a.conv.weight"], (2, 3, 1, 0))
    z = tf.nn.conv2d(x, kernel, strides=2, padding="VALID").numpy()
    mean, var = tensors["conv2d_1a.bn.running_mean"], tensors["conv2d_1a.bn.running_var"]
    ref = gamma * (z - mean) / np.sqrt(var + 0.001) + tensors["conv2d_1a.bn.bias"]
    np.testing.assert_allclose(ours, ref, atol=2e-5, rtol=1e-5)


def test_timm_zero_bn_scale_is_refused(models, timm_files):
    path, tensors = timm_files["inception_v4"]
    tensors = dict(tensors)
    tensors["features.3.conv.bn.weight"] = np.zeros_like(tensors["features.3.conv.bn.weight"])
    with pytest.raises(WeightsError, match="features.3.conv.bn.weight .*cannot be folded"):
        convert_into(models["inception_v4", "plain"], "inception_v4", Source("timm", path, tensors))


def test_unused_missing_and_misshapen_tensors_are_named(models, slim_checkpoints):
    name = "inception_v4"
    prefix, tensors = slim_checkpoints[name]
    model = models[name, "plain"]
    extra = dict(tensors, **{"InceptionV4/Mixed_9z/Branch_0/Conv2d_0a_1x1/weights": np.ones(3)})
    with pytest.raises(WeightsError, match=r"1 source tensors unused: InceptionV4/Mixed_9z/"):
        convert_into(model, name, Source("slim", prefix, extra))
    gone = "InceptionV4/Mixed_6c/Branch_2/Conv2d_0d_7x1/BatchNorm/beta"
    fewer = {k: v for k, v in tensors.items() if k != gone}
    with pytest.raises(WeightsError, match=f"1 target weights not filled: {gone} "):
        convert_into(model, name, Source("slim", prefix, fewer))
    bad = "InceptionV4/Mixed_7b/Branch_1/Conv2d_0b_1x3/weights"
    wrong = dict(tensors, **{bad: np.zeros((3, 1, 384, 256), np.float32)})
    with pytest.raises(WeightsError, match=f"1 shape mismatches: {bad} \\(3, 1, 384, 256\\)"):
        convert_into(model, name, Source("slim", prefix, wrong))


def test_timm_into_aux_or_1001_class_model_is_refused(models, timm_files):
    path, _ = timm_files["inception_resnet_v2"]
    with pytest.raises(WeightsError, match="no auxiliary head: build without aux_logits"):
        convert_into(models["inception_resnet_v2", "aux"], "inception_resnet_v2", path)
    model = inception.build("inception_resnet_v2", input_shape=(75, 75, 3), classes=10)
    with pytest.raises(
        WeightsError,
        match="has 1000 classes but .*classes=10: build with classes=1000.*include_top=False",
    ):
        convert_into(model, "inception_resnet_v2", path)


def test_unknown_or_unreadable_sources_get_clear_errors(models, tmp_path):
    model = models["inception_v4", "plain"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        convert_into(model, "inception_v4", str(tmp_path / "nope.safetensors"))
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(WeightsError, match="not a readable safetensors file"):
        convert_into(model, "inception_v4", str(junk))
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    with pytest.raises(WeightsError, match="cannot tell the format"):
        convert_into(model, "inception_v4", str(other))
    tar = tmp_path / "broken.tar.gz"
    tar.write_bytes(b"\x1f\x8b truncated")
    with pytest.raises(WeightsError, match="not a readable tar archive"):
        convert_into(model, "inception_v4", str(tar))
