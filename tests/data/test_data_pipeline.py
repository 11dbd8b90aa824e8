"""Inception preprocessing and the tf.data pipeline."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from helpers import png_bytes
from helpers import write_class_folder as write_folder
from ilsvrc import synthetic_jpeg

import inception
from inception.data import load_source, pipeline
from inception.preprocessing import augment
from inception.preprocessing.crops import extract


@pytest.fixture(scope="module")
def jpeg():
    return tf.constant(synthetic_jpeg(3, np.random.default_rng(0), size=(60, 90)))


def test_fused_decode_and_crop_equals_decode_then_crop(jpeg):
    window = tf.constant([5, 7, 30, 40])
    fused = augment.decode_crop(jpeg, window)
    whole = tf.io.decode_jpeg(jpeg, channels=3)[5:35, 7:47]
    assert fused.shape == (30, 40, 3)
    # decode_and_crop_jpeg may decode the window with a different IDCT alignment: near-equal.
    assert np.abs(fused.numpy().astype(int) - whole.numpy().astype(int)).mean() < 2.0
    png = tf.constant(png_bytes())
    assert augment.decode_crop(png, window - [5, 7, 20, 30]).shape == (10, 10, 3)


def test_distorted_window_follows_slim_ranges(jpeg):
    shape = augment.image_shape(jpeg)
    assert shape.numpy().tolist() == [60, 90, 3]
    areas, aspects = [], []
    for i in range(200):
        y, x, h, w = augment.distorted_window(shape, tf.constant([0, i])).numpy()
        assert 0 <= y and 0 <= x and y + h <= 60 and x + w <= 90
        areas.append(h * w / (60 * 90))
        aspects.append(w / h)
    assert min(areas) >= 0.05 - 0.02 and max(areas) <= 1.0
    assert len({round(a, 2) for a in areas}) > 20  # really random
    full = [a for a in areas if a < 0.99]
    aspects = [r for a, r in zip(areas, aspects) if a < 0.99]
    assert full and min(aspects) >= 0.75 - 0.1 and max(aspects) <= 4 / 3 + 0.1


def test_train_and_eval_image_range_shape_and_determinism(jpeg):
    a = augment.train_image(jpeg, 40, tf.constant([1, 2]), colour_distortion=True)
    b = augment.train_image(jpeg, 40, tf.constant([1, 2]), colour_distortion=True)
    c = augment.train_image(jpeg, 40, tf.constant([1, 3]))
    assert a.shape == (40, 40, 3) and a.dtype == tf.float32
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert -1.0 <= float(tf.reduce_min(a)) and float(tf.reduce_max(a)) <= 1.0
    e = augment.eval_image(jpeg, 33)
    assert e.shape == (33, 33, 3) and -1.0 <= float(tf.reduce_min(e))
    # Evaluation: exactly the single crop of `inception eval` (central 87.5%, bilinear resize,
    # scaled to [-1, 1]), close to slim's central_crop + resize.
    whole = tf.io.decode_jpeg(jpeg, channels=3)
    same = extract(whole, 1, inception.Preprocessing(input_size=33))[0]
    np.testing.assert_array_equal(e.numpy(), same.numpy())
    slim = tf.image.resize(tf.image.central_crop(whole, 0.875), [33, 33]) / 127.5 - 1
    assert np.abs(e.numpy() - slim.numpy()).mean() < 0.05


def test_train_dataset_batches_deterministic_and_resumable(tmp_path):
    write_folder(tmp_path, per_class=4)
    (tmp_path / "cat" / "bad.jpg").write_bytes(b"\xff\xd8\xff broken")
    source = load_source(tmp_path, "train", verify=False)  # the pipeline must drop bad.jpg
    assert source.num_examples == 13

    def batches(start_step=0, n=5):
        ds = pipeline.train_dataset(
            source, 32, 3, seed=7, deterministic=True, start_step=start_step
        )
        return [(x.numpy(), y.numpy()) for x, y in ds.take(n)]

    first, again = batches(), batches()
    assert all(x.shape == (3, 32, 32, 3) and y.dtype == np.int32 for x, y in first)
    for (x1, y1), (x2, y2) in zip(first, again):
        assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    # Resuming at step 2 gives exactly the batches 2..4 of an uninterrupted stream. (Checked
    # without the corrupt file: resuming skips files unread, so a corrupt file before the resume
    # point shifts the stream by one example, and where the seeded shuffle puts it depends on
    # TensorFlow's global seed, which earlier tests in the same process may have set.)
    (tmp_path / "cat" / "bad.jpg").unlink()
    source = load_source(tmp_path, "train", verify=False)
    first, resumed = batches(), batches(start_step=2, n=3)
    for (x1, y1), (x2, y2) in zip(first[2:], resumed):
        assert np.array_equal(x1, x2) and np.array_equal(y1, y2)


def test_eval_dataset_single_ordered_pass(tmp_path):
    write_folder(tmp_path, per_class=3)
    source = load_source(tmp_path, "validation")
    labels = np.concatenate([y.numpy() for _, y in pipeline.eval_dataset(source, 32, 4)])
    assert labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_distribute_splits_global_batch(tmp_path):
    write_folder(tmp_path, per_class=2)
    source = load_source(tmp_path, "train")
    strategy = tf.distribute.get_strategy()
    ds = pipeline.distribute(
        strategy, 4, lambda **kw: pipeline.train_dataset(source, 24, seed=1, **kw)
    )
    images, labels = next(iter(ds))
    assert images.shape == (4, 24, 24, 3) and labels.shape == (4,)
