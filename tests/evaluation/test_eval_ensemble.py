"""``Ensemble``: label alignment (1001 vs 1000), per-member input size, weights, saving."""

import keras
import numpy as np
import pytest

from inception.evaluation import Ensemble


def linear_model(kernel, bias, size, activation="softmax", name=None):
    """Global average pool -> Dense with the given weights: predictions known in closed form."""
    images = keras.Input((size, size, 3))
    x = keras.layers.GlobalAveragePooling2D()(images)
    dense = keras.layers.Dense(len(bias), activation=activation)
    model = keras.Model(images, dense(x), name=name)
    dense.set_weights([np.asarray(kernel, np.float32), np.asarray(bias, np.float32)])
    return model


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def heads():
    """A 1000-class model and a 1001-class copy with a strong ``background`` column in front."""
    rng = np.random.default_rng(0)
    kernel, bias = rng.normal(0, 2, (3, 1000)), rng.normal(0, 1, 1000)
    m1000 = linear_model(kernel, bias, 32, name="thousand")
    m1001 = linear_model(
        np.concatenate([np.full((3, 1), 0.5), kernel], 1), np.r_[8.0, bias], 32, name="slim"
    )
    images = rng.uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
    return m1000, m1001, images


def test_1001_and_1000_class_members_that_agree_give_the_same_ranking(heads):
    m1000, m1001, images = heads
    raw = m1001.predict(images / 127.5 - 1, verbose=0)
    assert raw[:, 0].min() > 0.05  # the background column does take probability mass
    p1000 = Ensemble([m1000]).predict(images, verbose=0)
    p1001 = Ensemble([m1001], num_classes=1000).predict(images, verbose=0)
    both = Ensemble([m1001, m1000])
    assert both.num_classes == 1000
    assert both.label_indices == [list(range(1, 1001)), list(range(1000))]
    pboth = both.predict(images, verbose=0)
    assert pboth.shape == (4, 1000)
    np.testing.assert_allclose(p1001, p1000, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(pboth, p1000, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(pboth.sum(axis=1), 1.0, rtol=1e-5)
    top = np.argsort(-p1000, axis=1)[:, :5]
    np.testing.assert_array_equal(np.argsort(-pboth, axis=1)[:, :5], top)
    np.testing.assert_array_equal(np.argsort(-raw[:, 1:], axis=1)[:, :5], top)


def test_logits_members_sizes_and_weights(heads):
    _, _, images = heads
    rng = np.random.default_rng(1)
    k1, b1 = rng.normal(0, 1, (3, 6)), rng.normal(0, 1, 6)
    k2, b2 = rng.normal(0, 1, (3, 6)), rng.normal(0, 1, 6)
    probs = linear_model(k1, b1, 32, name="probs")
    logits = linear_model(k2, b2, 16, activation=None, name="logits")  # smaller input
    ens = Ensemble([probs, logits], weights=[1, 3])
    assert ens.image_size == (32, 32) and ens.member_from_logits == [False, True]
    assert ens.member_weights == [0.25, 0.75]
    x = images / 127.5 - 1
    small = keras.ops.image.resize(images, (16, 16)).numpy() / 127.5 - 1
    # average pooling commutes with bilinear resizing only approximately: compare to the members
    expected = 0.25 * probs.predict(x, verbose=0) + 0.75 * softmax(logits.predict(small, verbose=0))
    np.testing.assert_allclose(ens.predict(images, verbose=0), expected, rtol=1e-4, atol=1e-6)
    none = Ensemble([probs], preprocessing="none").predict(x, verbose=0)
    np.testing.assert_allclose(none, probs.predict(x, verbose=0), rtol=1e-5, atol=1e-7)


def test_saved_ensemble_loads_and_predicts_the_same(tmp_path):
    a = linear_model(np.eye(3, 4), np.ones(4), 75, name="head1000")
    b = linear_model(np.ones((3, 5)), np.arange(5.0), 91, activation=None, name="head1001")
    ens = Ensemble([a, b], weights=[2, 1])  # 4 common classes: b drops its first column
    assert ens.label_indices == [[0, 1, 2, 3], [1, 2, 3, 4]] and ens.image_size == (91, 91)
    images = np.random.default_rng(2).uniform(0, 255, (2, 91, 91, 3)).astype(np.float32)
    before = ens.predict(images, verbose=0)
    ens.save(tmp_path / "ensemble.keras")
    loaded = keras.saving.load_model(tmp_path / "ensemble.keras")
    assert isinstance(loaded, Ensemble)
    assert loaded.member_weights == pytest.approx([2 / 3, 1 / 3])
    assert loaded.label_indices == [[0, 1, 2, 3], [1, 2, 3, 4]]
    np.testing.assert_allclose(loaded.predict(images, verbose=0), before, rtol=1e-5, atol=1e-6)


def test_three_copies_of_one_network_get_unique_names(heads):
    m1000, _, images = heads
    copies = [linear_model(np.eye(3, 4), np.zeros(4), 32, name="same") for _ in range(3)]
    ens = Ensemble(copies)
    assert len({m.name for m in ens.members}) == 3
    assert ens.predict(images, verbose=0).shape == (4, 4)


def test_bad_members_and_weights_are_refused(heads):
    m1000, m1001, _ = heads
    with pytest.raises(ValueError, match="at least one member"):
        Ensemble([])
    with pytest.raises(ValueError, match="must be Keras models"):
        Ensemble([m1000, "inception_v4"])
    with pytest.raises(ValueError, match="weights has 3 entries for 2"):
        Ensemble([m1000, m1001], weights=[1, 2, 3])
    with pytest.raises(ValueError, match="non-negative"):
        Ensemble([m1000, m1001], weights=[1, -1])
    with pytest.raises(ValueError, match="does not map it onto 1000"):
        Ensemble([m1000, m1001], label_offsets=[0, 0])
    with pytest.raises(ValueError, match="unknown preprocessing"):
        Ensemble([m1000], preprocessing="caffe")
    images = keras.Input((8, 8, 3))
    features = keras.Model(images, keras.layers.Conv2D(4, 3)(images))
    with pytest.raises(ValueError, match="include_top=True"):
        Ensemble([features])
