"""The serving graph: image decoding, the decompression-bomb guard, central crop, resize, the
forward pass, all inside the SavedModel.

Everything here is TensorFlow ops, so that ``tensorflow_model_server`` runs the same graph as
``inception serve``. Pixels between stages are RGB floats in [0, 255]; each member sees them
scaled to [-1, 1] (``inception.preprocess_input``).
"""

from __future__ import annotations

import tensorflow as tf

DEFAULT_MAX_IMAGE_PIXELS = 64_000_000  # 8000 x 8000; the declared size is checked before decoding


def _bytes_at(contents, pos, count):
    """``count`` bytes of ``contents`` from ``pos`` as int64 values (caller checks the length)."""
    raw = tf.strings.substr(contents, pos, count)
    return tf.cast(tf.io.decode_raw(raw, tf.uint8), tf.int64)


def _big_endian(b):
    return tf.reduce_sum(
        b
        * tf.bitwise.left_shift(
            tf.constant(1, tf.int64),
            8 * tf.range(tf.size(b, out_type=tf.int64) - 1, -1, -1, dtype=tf.int64),
        )
    )


def _little_endian(b):
    return _big_endian(tf.reverse(b, [0]))


def declared_pixels(contents):
    """Width x height that an encoded JPEG, PNG, GIF or BMP declares in its header (int64).

    Read from the header alone, before anything is allocated: a 30000 x 30000 image declared in
    a few hundred bytes is refused without decoding it. Returns 0 for other formats.
    """
    length = tf.strings.length(contents)
    head = tf.strings.substr(contents, 0, 4)
    zero = tf.constant(0, tf.int64)

    def jpeg():
        shape = tf.io.extract_jpeg_shape(contents, output_type=tf.int64)
        return shape[0] * shape[1]

    def png():
        return _big_endian(_bytes_at(contents, 16, 4)) * _big_endian(_bytes_at(contents, 20, 4))

    def gif():
        return _little_endian(_bytes_at(contents, 6, 2)) * _little_endian(_bytes_at(contents, 8, 2))

    def bmp():
        def dim(pos):  # signed 32-bit (a negative height means top-down rows)
            v = _little_endian(_bytes_at(contents, pos, 4))
            return tf.where(v >= 2**31, 2**32 - v, v)

        return dim(18) * dim(22)

    is_png = tf.logical_and(tf.equal(head, b"\x89PNG"), length >= 24)
    is_gif = tf.logical_and(tf.equal(tf.strings.substr(head, 0, 3), b"GIF"), length >= 10)
    is_bmp = tf.logical_and(tf.equal(tf.strings.substr(head, 0, 2), b"BM"), length >= 26)
    return tf.cond(
        tf.io.is_jpeg(contents),
        jpeg,
        lambda: tf.cond(
            is_png,
            png,
            lambda: tf.cond(is_gif, gif, lambda: tf.cond(is_bmp, bmp, lambda: zero)),
        ),
    )


def decode(contents, max_pixels: int):
    """Encoded bytes (JPEG/PNG/GIF/BMP, first frame of a GIF) -> uint8 RGB ``(h, w, 3)``.

    Other formats (which ``tf.io.decode_image`` might accept) are refused, since their
    declared size is not checked.
    """
    pixels = declared_pixels(contents)
    known = tf.debugging.assert_positive(
        pixels, message="unsupported or broken image: send JPEG, PNG, GIF or BMP bytes"
    )
    check = tf.debugging.assert_less_equal(
        pixels,
        tf.constant(max_pixels, tf.int64),
        message=f"image too large: its header declares more than {max_pixels} pixels "
        "(width x height); send a smaller image",
    )
    with tf.control_dependencies([known, check]):
        image = tf.io.decode_image(contents, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def crop_and_resize(image, size: int, crop_fraction: float):
    """uint8 or float ``(h, w, 3)`` -> float32 ``(size, size, 3)`` in [0, 255]: central crop of
    ``crop_fraction`` of each side (the paper's single-crop evaluation), bilinear resize."""
    image = tf.cast(image, tf.float32)
    if crop_fraction < 1.0:
        image = tf.image.central_crop(image, crop_fraction)
    return tf.image.resize(image, [size, size], method="bilinear")


def to_probabilities(model, pixels):
    """Runs one classifier on [0, 255] pixels (scaled to [-1, 1] here) -> probabilities.

    Models whose top layer has no softmax (logits) get one here; models with an auxiliary
    head contribute their main output.
    """
    out = model(pixels / 127.5 - 1.0, training=False)
    if isinstance(out, (list, tuple)):
        out = out[0]
    out = tf.cast(out, tf.float32)
    return out if _ends_in_softmax(model) else tf.nn.softmax(out, axis=-1)


def _ends_in_softmax(model) -> bool:
    layer = model.layers[-1]
    activation = getattr(layer, "activation", None)
    name = getattr(activation, "__name__", "") or type(layer).__name__
    return "softmax" in name.lower()
