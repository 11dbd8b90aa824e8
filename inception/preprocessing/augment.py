"""Inception preprocessing, as TF-slim's ``inception_preprocessing``, on encoded image bytes.

Training (``train_image``): a distorted bounding-box crop (the crop covers at least 10% of the
image, aspect ratio 3/4..4/3, area 5%..100% of the image), resized to the model size, a random
left-right flip and, optionally, colour distortion (brightness, saturation, hue, contrast in a
random order). Evaluation (``eval_image``, the crop of ``inception eval``): the central 87.5% of
each side, resized to the model size. Both return float32 RGB scaled to [-1, 1].

In training, for JPEG the crop window is computed from the header alone and
``tf.io.decode_and_crop_jpeg`` decodes only that window (the fused decode-and-crop: a 5%-area
crop decodes a fraction of the pixels); PNG, GIF and BMP are decoded whole and cropped with the
same window.

Randomness is stateless: every random choice derives from ``seed``, a ``[2]`` int tensor, so an
image's augmentation is a pure function of (bytes, seed), independent of threads.
"""

from __future__ import annotations

import tensorflow as tf

from .config import CROP_FRACTION, Preprocessing, rescale
from .crops import extract

MIN_OBJECT_COVERED = 0.1
ASPECT_RATIO_RANGE = (3 / 4, 4 / 3)
AREA_RANGE = (0.05, 1.0)
MAX_ATTEMPTS = 100


def image_shape(image_bytes) -> tf.Tensor:
    """``[height, width, channels]`` of an encoded image; read from the header for JPEG."""
    return tf.cond(
        tf.io.is_jpeg(image_bytes),
        lambda: tf.io.extract_jpeg_shape(image_bytes),
        lambda: tf.shape(_decode_whole(image_bytes)),
    )


def _decode_whole(image_bytes) -> tf.Tensor:
    image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def decode_crop(image_bytes, window) -> tf.Tensor:
    """Decodes the ``[y, x, height, width]`` window of an image to uint8 RGB."""
    window = tf.cast(window, tf.int32)

    def jpeg():
        return tf.io.decode_and_crop_jpeg(image_bytes, window, channels=3)

    def other():
        y, x, h, w = tf.unstack(window)
        return tf.image.crop_to_bounding_box(_decode_whole(image_bytes), y, x, h, w)

    image = tf.cond(tf.io.is_jpeg(image_bytes), jpeg, other)
    image.set_shape([None, None, 3])
    return image


def distorted_window(shape, seed) -> tf.Tensor:
    """Samples slim's distorted bounding box for an image of ``shape``: ``[y, x, h, w]``."""
    whole = tf.constant([0.0, 0.0, 1.0, 1.0], tf.float32, [1, 1, 4])
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        shape,
        bounding_boxes=whole,
        seed=seed,
        min_object_covered=MIN_OBJECT_COVERED,
        aspect_ratio_range=ASPECT_RATIO_RANGE,
        area_range=AREA_RANGE,
        max_attempts=MAX_ATTEMPTS,
        use_image_if_no_bounding_boxes=True,
    )
    return tf.stack([begin[0], begin[1], size[0], size[1]])


def scale(image) -> tf.Tensor:
    """uint8 or float RGB in [0, 255] -> float32 in [-1, 1] (as ``inception.preprocess_input``)."""
    return rescale(tf.cast(image, tf.float32))


def _resize(image, size) -> tf.Tensor:
    image = tf.image.resize(image, [size, size], method="bilinear")  # float32
    return tf.clip_by_value(image, 0.0, 255.0)


def distort_colour(image, seed) -> tf.Tensor:
    """slim's colour distortion on float RGB in [0, 1], in one of two random orderings."""
    seeds = tf.random.experimental.stateless_split(seed, 5)

    def order_a():
        x = tf.image.stateless_random_brightness(image, 32.0 / 255.0, seeds[0])
        x = tf.image.stateless_random_saturation(x, 0.5, 1.5, seeds[1])
        x = tf.image.stateless_random_hue(x, 0.2, seeds[2])
        return tf.image.stateless_random_contrast(x, 0.5, 1.5, seeds[3])

    def order_b():
        x = tf.image.stateless_random_saturation(image, 0.5, 1.5, seeds[1])
        x = tf.image.stateless_random_brightness(x, 32.0 / 255.0, seeds[0])
        x = tf.image.stateless_random_contrast(x, 0.5, 1.5, seeds[3])
        return tf.image.stateless_random_hue(x, 0.2, seeds[2])

    coin = tf.random.stateless_uniform([], seeds[4]) < 0.5
    return tf.clip_by_value(tf.cond(coin, order_a, order_b), 0.0, 1.0)


def train_image(image_bytes, size: int, seed, colour_distortion: bool = False) -> tf.Tensor:
    """Training preprocessing of one encoded image -> ``[size, size, 3]`` float32 in [-1, 1].

    ``seed``: a ``[2]`` int32/int64 tensor (e.g. ``(global seed, example index)``).
    """
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 3)
    window = distorted_window(image_shape(image_bytes), seeds[0])
    image = _resize(decode_crop(image_bytes, window), size)
    image = tf.image.stateless_random_flip_left_right(image, seeds[1])
    if colour_distortion:
        image = distort_colour(image / 255.0, seeds[2]) * 255.0
    image = scale(image)
    image.set_shape([size, size, 3])
    return image


def eval_image(image_bytes, size: int, crop_fraction: float = CROP_FRACTION) -> tf.Tensor:
    """Evaluation preprocessing, the single crop of ``inception eval`` (``crops.extract``): the
    central ``crop_fraction`` of each side, bilinear resize to ``size`` x ``size``, scaled to
    [-1, 1]. Returns float32 ``[size, size, 3]``, so validation during training scores as
    ``inception eval`` does."""
    prep = Preprocessing(input_size=size, crop_fraction=crop_fraction)
    image = extract(_decode_whole(image_bytes), 1, prep)[0]
    image.set_shape([size, size, 3])
    return image
