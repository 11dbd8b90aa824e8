"""Crop geometry of the 1, 10, 12 and 144 crop schemes (asserted boxes) and batched extraction."""

import numpy as np
import pytest
import tensorflow as tf

from inception.preprocessing.crops import check_scheme, crop_boxes, extract_crops

C = 262.5  # 0.875 * 300: the 10-crop side in a 300-pixel shorter side


def boxes(crops, h, w, **kw):
    b, flips = crop_boxes(crops, h, w, **kw)
    tb, tflips = crop_boxes(crops, tf.constant(h), tf.constant(w), **kw)  # same in a tf.data map
    np.testing.assert_allclose(tb.numpy(), b, rtol=1e-6, atol=1e-4)
    np.testing.assert_array_equal(tflips, flips)
    return b, flips


def test_one_crop_is_slims_central_fraction():
    b, flips = boxes(1, 300, 400)
    np.testing.assert_allclose(b, [[18.75, 25.0, 281.25, 375.0]])
    assert flips.tolist() == [False]
    b, _ = boxes(1, 299, 299, crop_fraction=0.5)
    np.testing.assert_allclose(b, [[74.75, 74.75, 224.25, 224.25]])


@pytest.mark.parametrize("h,w", [(300, 400), (400, 300)])
def test_ten_crops_corners_centre_and_mirrors(h, w):
    b, flips = boxes(10, h, w)
    dy, dx = h - C, w - C
    five = [
        [0, 0, C, C],
        [0, dx, C, w],
        [dy, 0, h, C],
        [dy, dx, h, w],
        [dy / 2, dx / 2, dy / 2 + C, dx / 2 + C],
    ]
    np.testing.assert_allclose(b, five + five)
    assert flips.tolist() == [False] * 5 + [True] * 5
    if (h, w) == (300, 400):
        np.testing.assert_allclose(b[4], [18.75, 68.75, 281.25, 331.25])


def test_twelve_crops_add_the_whole_central_square():
    b, flips = boxes(12, 300, 400)
    ten, _ = crop_boxes(10, 300, 400)
    np.testing.assert_allclose(b[:5], ten[:5])
    np.testing.assert_allclose(b[5], [0, 50, 300, 350])
    np.testing.assert_allclose(b[6:], b[:6])
    assert flips.tolist() == [False] * 6 + [True] * 6


def test_144_crops_googlenet_scales_squares_and_mirrors():
    b, flips = boxes(144, 300, 400)
    assert b.shape == (144, 4) and flips.tolist() == [False] * 72 + [True] * 72
    np.testing.assert_allclose(b[72:], b[:72])
    # scale 0 (shorter side 256 * 299/224): crop side 300 * 224 / 256 = 262.5; left square
    np.testing.assert_allclose(
        b[:6],
        [
            [0, 0, C, C],
            [0, 37.5, C, 300],
            [37.5, 0, 300, C],
            [37.5, 37.5, 300, 300],
            [18.75, 18.75, 281.25, 281.25],
            [0, 0, 300, 300],
        ],
    )
    # the centre and right squares start at x = 50 and x = 100
    np.testing.assert_allclose(b[11], [0, 50, 300, 350])
    np.testing.assert_allclose(b[17], [0, 100, 300, 400])
    # scale 3 (352): side 300 * 224 / 352; right square, bottom-right corner
    c = 300 * 224 / 352
    np.testing.assert_allclose(b[3 * 18 + 2 * 6 + 3], [300 - c, 400 - c, 300, 400])
    # every scale is a smaller crop: sides 262.5, 233.3, 210, 190.9
    sides = b[[0, 18, 36, 54], 2] - b[[0, 18, 36, 54], 0]
    np.testing.assert_allclose(sides, [300 * 224 / s for s in (256, 288, 320, 352)])


def test_144_crops_portrait_squares_run_top_to_bottom():
    b, _ = boxes(144, 400, 300)
    np.testing.assert_allclose(b[5], [0, 0, 300, 300])
    np.testing.assert_allclose(b[11], [50, 0, 350, 300])
    np.testing.assert_allclose(b[17], [100, 0, 400, 300])


def test_extracted_crops_match_the_boxes_pixel_for_pixel():
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 255, (120, 100, 3)).astype(np.float32)
    out = extract_crops(image, 10, size=70, crop_fraction=0.7).numpy()  # side 70: no resampling
    assert out.shape == (10, 70, 70, 3)
    np.testing.assert_allclose(out[0], image[:70, :70], atol=1e-3)
    np.testing.assert_allclose(out[3], image[50:, 30:], atol=1e-3)
    np.testing.assert_allclose(out[4], image[25:95, 15:85], atol=1e-2)
    np.testing.assert_allclose(out[5], image[:70, :70][:, ::-1], atol=1e-3)  # mirrored
    whole = extract_crops(image[:99, :99], 12, size=99).numpy()
    np.testing.assert_allclose(whole[5], image[:99, :99], atol=1e-3)


def test_144_crops_of_one_image_in_one_batch():
    image = tf.cast(tf.random.uniform((200, 260, 3), 0, 255), tf.uint8)
    out = extract_crops(image, 144, size=75)
    assert out.shape == (144, 75, 75, 3) and out.dtype == tf.float32
    values = out.numpy()
    assert values.min() >= 0 and values.max() <= 255
    np.testing.assert_allclose(values[72:], values[:72, :, ::-1], atol=1e-4)


@pytest.mark.parametrize("bad", [0, 5, 100, "x", None])
def test_unknown_scheme_is_refused(bad):
    with pytest.raises(ValueError, match="crops must be one of 1, 10, 12, 144"):
        check_scheme(bad)
