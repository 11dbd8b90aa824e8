"""Numerical parity of the slim Inception-ResNet-v2 with keras.applications.InceptionResNetV2."""

import keras
import numpy as np
import pytest

import inception


def randomize(model, rng):
    """Random weights everywhere, He-scaled kernels and non-trivial BN statistics, so the deep
    logits depend strongly on the input (default initialisation would make the check vacuous)."""
    for w in model.weights:
        shape = tuple(w.shape)
        path = w.path
        if path.endswith("kernel"):
            fan_in = int(np.prod(shape[:-1]))
            value = rng.normal(0, np.sqrt(2.0 / fan_in), shape)
        elif path.endswith("moving_variance"):
            value = rng.uniform(0.5, 1.5, shape)
        elif path.endswith("moving_mean"):
            value = rng.normal(0, 0.1, shape)
        else:  # beta, biases
            value = rng.normal(0, 0.1, shape)
        w.assign(value.astype("float32"))


def smooth_images(rng, n, size=299):
    """Images with large-scale structure: iid pixel noise averages out under global pooling."""
    coarse = rng.uniform(-1, 1, (n, 6, 6, 3)).astype("float32")
    return np.asarray(keras.ops.image.resize(coarse, (size, size), interpolation="bicubic"))


def pair_layers(src, dst, kind):
    a = [layer for layer in src.layers if isinstance(layer, kind)]
    b = [layer for layer in dst.layers if isinstance(layer, kind)]
    assert len(a) == len(b), (kind.__name__, len(a), len(b))
    return list(zip(a, b))


@pytest.fixture(scope="module")
def models():
    ref = keras.applications.InceptionResNetV2(weights=None, classifier_activation=None)
    ours = inception.InceptionResNetV2(weights=None, classifier_activation=None)
    return ref, ours


def test_same_parameter_count(models):
    ref, ours = models
    assert ours.count_params() == ref.count_params() == 55_873_736


def test_logits_match_keras_applications(models):
    ref, ours = models
    rng = np.random.default_rng(0)
    randomize(ref, rng)
    for kind in (keras.layers.Conv2D, keras.layers.BatchNormalization, keras.layers.Dense):
        for a, b in pair_layers(ref, ours, kind):
            for wa, wb in zip(a.weights, b.weights):
                assert wa.shape == wb.shape, (a.name, b.name, wa.shape, wb.shape)
                wb.assign(wa)
    x = smooth_images(rng, 2)
    want = np.asarray(ref(x, training=False))
    got = np.asarray(ours(x, training=False))
    scale = np.abs(want).max()
    assert scale > 1.0  # the logits are far from constant: the comparison is meaningful
    assert np.std(want[0] - want[1]) > 0.01 * scale  # and depend on the input
    assert np.abs(got - want).max() <= 1e-4 * scale
