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


_GIF_SKIP = 64  # full 255-byte sub-blocks stepped over at once while walking a GIF
GIF_MAX_STEPS = 10_000  # + 1 per KiB: blocks and short sub-blocks a GIF may have


def _gif_frames(contents):
    """Walks the blocks of a GIF: ``(widest frame, tallest frame, sum of frame areas)``, int64.

    TensorFlow's GIF decoder buffers every frame (one byte per frame pixel) and allocates its
    output at the largest frame width x the largest frame height, whatever the canvas size in
    the header says, so every image descriptor is read. The loop steps over runs of full
    255-byte data sub-blocks ``_GIF_SKIP`` at a time; nothing is decompressed. A GIF that needs
    more than ``GIF_MAX_STEPS`` + 1 per KiB steps (encoders write 255-byte sub-blocks; a file of
    tiny ones only costs time) counts as 2**62 pixels, which no limit admits.
    """
    data = tf.io.decode_raw(contents, tf.uint8)
    n = tf.size(data, out_type=tf.int64)

    def byte(i):
        i = tf.clip_by_value(tf.cast(i, tf.int64), 0, n - 1)
        return tf.cast(tf.gather(data, i), tf.int64)

    def u16(i):
        return byte(i) + 256 * byte(i + 1)

    def table(flags):  # size of a colour table announced by a descriptor's flags
        return tf.where(
            flags >= 128, 3 * tf.bitwise.left_shift(tf.constant(2, tf.int64), flags % 8), 0
        )

    steps = tf.range(_GIF_SKIP, dtype=tf.int64) * 256
    zero = tf.constant(0, tf.int64)

    def body(pos, in_data, done, width, height, area):
        # Inside a run of data sub-blocks: step over the leading full ones at once.
        at = pos + steps
        full = tf.logical_and(at < n, tf.equal(tf.gather(data, tf.minimum(at, n - 1)), 255))
        lead = tf.reduce_sum(tf.math.cumprod(tf.cast(full, tf.int64)))
        size = byte(pos)
        data_pos = tf.where(lead > 0, pos + 256 * lead, pos + 1 + size)
        data_end = tf.logical_and(tf.equal(lead, 0), tf.equal(size, 0))
        # Between blocks: an image descriptor, an extension or the trailer.
        w, h = u16(pos + 5), u16(pos + 7)
        is_image = tf.equal(size, 0x2C)
        is_extension = tf.equal(size, 0x21)
        block_pos = tf.where(is_image, pos + 11 + table(byte(pos + 9)), pos + 2)
        frame = tf.logical_and(tf.logical_not(in_data), is_image)
        return (
            tf.where(in_data, data_pos, block_pos),
            tf.where(in_data, tf.logical_not(data_end), tf.logical_or(is_image, is_extension)),
            tf.logical_and(
                tf.logical_not(in_data), tf.logical_not(tf.logical_or(is_image, is_extension))
            ),
            tf.where(frame, tf.maximum(width, w), width),
            tf.where(frame, tf.maximum(height, h), height),
            tf.where(frame, area + w * h, area),
        )

    start = tf.constant(13, tf.int64) + table(byte(10))
    pos, _, done, width, height, area = tf.while_loop(
        lambda pos, in_data, done, *_: tf.logical_and(tf.logical_not(done), pos < n),
        body,
        (start, tf.constant(False), tf.constant(False), zero, zero, zero),
        parallel_iterations=1,
        maximum_iterations=tf.cast(GIF_MAX_STEPS + n // 1024, tf.int32),
    )
    walked = tf.logical_or(done, pos >= n)
    return width, height, tf.where(walked, area, tf.constant(2**62, tf.int64))


def declared_pixels(contents):
    """Pixels an encoded JPEG, PNG, GIF or BMP makes the decoder allocate, from its headers
    (int64), before anything is decoded: a 30000 x 30000 image declared in a few hundred bytes
    is refused without decoding it. Returns 0 for other formats and for a PNG without its IHDR.

    JPEG, PNG and BMP: width x height. GIF: the largest of the canvas, the widest frame x the
    tallest frame, and a quarter of all frame areas together (the decoder buffers every frame
    at one byte per pixel, a quarter of what one decoded RGB float pixel costs).
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
        canvas = _little_endian(_bytes_at(contents, 6, 2)) * _little_endian(
            _bytes_at(contents, 8, 2)
        )
        width, height, area = _gif_frames(contents)
        pixels = tf.reduce_max(tf.stack([canvas, width * height, (area + 3) // 4]))
        return tf.where(area >= 2**62, area, pixels)

    def bmp():
        def dim(pos):  # signed 32-bit (a negative height means top-down rows)
            v = _little_endian(_bytes_at(contents, pos, 4))
            return tf.where(v >= 2**31, 2**32 - v, v)

        return dim(18) * dim(22)

    is_png = tf.logical_and(
        tf.equal(head, b"\x89PNG"),
        tf.logical_and(length >= 24, tf.equal(tf.strings.substr(contents, 12, 4), b"IHDR")),
    )
    is_gif = tf.logical_and(tf.equal(tf.strings.substr(head, 0, 3), b"GIF"), length >= 13)
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
        message=f"image too large: it declares more than {max_pixels} pixels (width x height; "
        "for a GIF, of its largest frame); send a smaller image",
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
