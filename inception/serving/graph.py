"""The serving graph's image decoding with the decompression-bomb guard, inside the SavedModel.

Everything here is TensorFlow ops, so that ``tensorflow_model_server`` runs the same graph as
``inception serve``. The header layouts and limits are ``codec``'s, whose reader checks the
same headers on the host before a request is batched.
"""

from __future__ import annotations

import tensorflow as tf

from .codec import BMP, GIF, GIF_MAX_STEPS, PNG
from .limits import DEFAULT_MAX_JPEG_SCANS


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


def _is(contents, layout, length):
    """Whether ``contents`` starts with ``layout``'s complete size header (``codec.Layout``)."""
    ok = tf.logical_and(
        tf.equal(tf.strings.substr(contents, 0, len(layout.magic)), layout.magic),
        length >= layout.min_length,
    )
    if layout.tag is not None:
        offset, tag = layout.tag
        ok = tf.logical_and(ok, tf.equal(tf.strings.substr(contents, offset, len(tag)), tag))
    return ok


def _pixels(contents, layout):
    """Width x height as ``layout``'s header declares them (int64)."""

    def read(offset, count):
        b = _bytes_at(contents, offset, count)
        v = _big_endian(b) if layout.byteorder == "big" else _little_endian(b)
        if layout.signed:
            v = tf.where(v >= 2 ** (8 * count - 1), 2 ** (8 * count) - v, v)
        return v

    return read(*layout.width) * read(*layout.height)


_GIF_SKIP = 64  # full 255-byte sub-blocks stepped over at once while walking a GIF


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
    zero = tf.constant(0, tf.int64)

    def jpeg():
        shape = tf.io.extract_jpeg_shape(contents, output_type=tf.int64)
        return shape[0] * shape[1]

    def gif():
        width, height, area = _gif_frames(contents)
        pixels = tf.reduce_max(tf.stack([_pixels(contents, GIF), width * height, (area + 3) // 4]))
        return tf.where(area >= 2**62, area, pixels)

    return tf.cond(
        tf.io.is_jpeg(contents),
        jpeg,
        lambda: tf.cond(
            _is(contents, PNG, length),
            lambda: _pixels(contents, PNG),
            lambda: tf.cond(
                _is(contents, GIF, length),
                gif,
                lambda: tf.cond(
                    _is(contents, BMP, length), lambda: _pixels(contents, BMP), lambda: zero
                ),
            ),
        ),
    )


def jpeg_scans(contents):
    """Scans of an encoded JPEG (int64; 0 for other formats): its ``FF DA`` markers, as
    ``codec.jpeg_scans`` counts them."""

    def count():
        data = tf.io.decode_raw(contents, tf.uint8)
        marker = tf.logical_and(tf.equal(data[:-1], 0xFF), tf.equal(data[1:], 0xDA))
        return tf.reduce_sum(tf.cast(marker, tf.int64))

    return tf.cond(tf.io.is_jpeg(contents), count, lambda: tf.constant(0, tf.int64))


def decode(contents, max_pixels: int, max_scans: int = DEFAULT_MAX_JPEG_SCANS):
    """Encoded bytes (JPEG/PNG/GIF/BMP, first frame of a GIF) -> uint8 RGB ``(h, w, 3)``.

    Other formats (which ``tf.io.decode_image`` might accept) are refused, since their
    declared size is not checked; so is a JPEG of more than ``max_scans`` scans (a progressive
    JPEG is decoded once per scan).
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
    scans = tf.debugging.assert_less_equal(
        jpeg_scans(contents),
        tf.constant(max_scans, tf.int64),
        message=f"JPEG of too many scans: it has more than {max_scans} (each scan is a pass "
        "over every pixel); re-encode it as a baseline JPEG or with a standard progressive script",
    )
    with tf.control_dependencies([known, check, scans]):
        image = tf.io.decode_image(contents, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image
