"""Resize and crop for every crop mode, and the crop schemes of evaluation: 1, 10, 12 and 144
crops per image, extracted in one batch.

Every scheme is a list of boxes ``(y0, x0, y1, x1)`` in pixel coordinates of the original image
(``y1``/``x1`` exclusive, floats allowed) plus a mirror flag. Each box is resized to
``size x size`` (the model's input, 299 for the released models); all crops of one image come
out of a single ``tf.image.crop_and_resize`` call, as one ``(crops, size, size, 3)`` batch.
``H x W`` is the image, ``s = min(H, W)`` its shorter side, ``f`` the central crop fraction
(``CROP_FRACTION`` by default).

* **1 crop**, ``crop="fraction"`` (TF-slim's evaluation): the central fraction ``f`` of each
  dimension, ``(H - fH)/2, (W - fW)/2`` to ``(H + fH)/2, (W + fW)/2``, resized (aspect not kept);
  ``crop="square"`` (timm's resize-and-center-crop): the central square of side ``f * s``.
* **10 crops** (Krizhevsky et al. 2012): as if the image were rescaled so that its shorter side
  is ``size / f`` (342 for 299) and ``size x size`` crops taken: in image pixels, squares of side
  ``c = f * s`` at the 4 corners of the whole image and at its centre, and their mirrors
  (order: top-left, top-right, bottom-left, bottom-right, centre; then the same mirrored).
* **12 crops**: the 10 crops plus the whole central ``s x s`` square resized, and its mirror.
  The paper (Table 3) reports "12 crops" without defining them; this is the GoogLeNet scheme
  below at one scale (``size / f``) and one (the central) square, and a superset of the 10.
* **144 crops** (Szegedy et al. 2014, GoogLeNet, Section 7): the image is rescaled to 4 scales
  whose shorter side is 256, 288, 320 and 352 pixels for a 224 network, here multiplied by
  ``size / 224`` (341.7, 384.4, 427.1, 469.8 for 299). At each scale three squares of side
  ``s`` are taken along the longer side (left/top, centre, right/bottom); in each square the 4
  corner and the centre ``size x size`` crops (side ``c_k = s * size / scale_k`` in image
  pixels) and the whole square resized, and the mirror of each: 4 x 3 x 6 x 2 = 144. Order:
  scale, square, then (top-left, top-right, bottom-left, bottom-right, centre, whole); all
  unmirrored crops come first, then the same 72 mirrored.

Functions take Python numbers (returning NumPy arrays) or scalar tensors inside a ``tf.data``
map (returning tensors), so the same code documents and runs the geometry. Which fraction,
crop and interpolation a model wants is its ``inception.Preprocessing`` (``extract``).
"""

from __future__ import annotations

import numpy as np

from .config import CROP_FRACTION, INPUT_SIZE, rescale

SCHEMES = (1, 10, 12, 144)
GOOGLENET_SCALES = (256, 288, 320, 352)  # shorter side, for a 224-pixel network
GOOGLENET_SIZE = 224


def check_scheme(crops) -> int:
    try:
        crops = int(crops)
    except (TypeError, ValueError):
        crops = None
    if crops not in SCHEMES:
        raise ValueError(f"crops must be one of {', '.join(map(str, SCHEMES))}; got {crops!r}.")
    return crops


def _five(y0, x0, side_y, side_x, c):
    """4 corners (tl, tr, bl, br) and the centre of side ``c`` in a region at (y0, x0)."""
    cy, cx = y0 + (side_y - c) / 2, x0 + (side_x - c) / 2
    starts = [
        (y0, x0),
        (y0, x0 + side_x - c),
        (y0 + side_y - c, x0),
        (y0 + side_y - c, x0 + side_x - c),
        (cy, cx),
    ]
    return [(y, x, y + c, x + c) for y, x in starts]


def _squares(height, width, s, portrait):
    """The left/centre/right (or top/centre/bottom for portrait) ``s x s`` squares."""
    if portrait:
        return [
            (0.0 * height, 0.0 * width),
            ((height - s) / 2, 0.0 * width),
            (height - s, 0.0 * width),
        ]
    return [(0.0 * height, 0.0 * width), (0.0 * height, (width - s) / 2), (0.0 * height, width - s)]


def crop_boxes(crops, height, width, size=INPUT_SIZE, crop_fraction=CROP_FRACTION, crop="fraction"):
    """Boxes ``[(y0, x0, y1, x1), ...]`` and mirror flags of one scheme for an ``H x W`` image.

    Returns ``(boxes, flips)``: ``boxes`` an ``(n, 4)`` float array (a float32 tensor when
    ``height``/``width`` are tensors), ``flips`` an ``(n,)`` bool NumPy array.
    """
    import tensorflow as tf

    crops = check_scheme(crops)
    symbolic = tf.is_tensor(height) or tf.is_tensor(width)
    if symbolic:
        height, width = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
        s = tf.minimum(height, width)
        portrait = height > width
    else:
        height, width = float(height), float(width)
        s = min(height, width)
        portrait = height > width
    f = crop_fraction
    if crops == 1 and crop == "square":
        c = f * s
        y0, x0 = (height - c) / 2, (width - c) / 2
        boxes = [(y0, x0, y0 + c, x0 + c)]
    elif crops == 1:
        dy, dx = height * (1 - f) / 2, width * (1 - f) / 2
        boxes = [(dy, dx, height - dy, width - dx)]
    elif crops in (10, 12):
        boxes = _five(0.0 * height, 0.0 * width, height, width, f * s)
        if crops == 12:
            y0, x0 = (height - s) / 2, (width - s) / 2
            boxes.append((y0, x0, y0 + s, x0 + s))
    else:
        boxes = []
        for scale in GOOGLENET_SCALES:
            c = s * GOOGLENET_SIZE / scale  # = s * size / (scale * size / 224)
            if symbolic:
                squares = [
                    tuple(tf.where(portrait, a, b) for a, b in zip(p, q))
                    for p, q in zip(
                        _squares(height, width, s, True), _squares(height, width, s, False)
                    )
                ]
            else:
                squares = _squares(height, width, s, portrait)
            for y0, x0 in squares:
                boxes += _five(y0, x0, s, s, c)
                boxes.append((y0, x0, y0 + s, x0 + s))
    n, mirror = len(boxes), crops != 1
    flips = np.array([False] * n + [True] * n if mirror else [False] * n)
    if symbolic:
        rows = tf.stack([tf.stack([tf.cast(v, tf.float32) for v in b]) for b in boxes])
        return (tf.concat([rows, rows], axis=0) if mirror else rows), flips
    rows = np.array(boxes, dtype=np.float64)
    return (np.concatenate([rows, rows]) if mirror else rows), flips


def extract_crops(
    image,
    crops,
    size=INPUT_SIZE,
    crop_fraction=CROP_FRACTION,
    crop="fraction",
    interpolation="bilinear",
):
    """All crops of one ``(H, W, 3)`` image as one ``(n, size, size, 3)`` float32 batch.

    Pixel values are kept (``[0, 255]`` in, ``[0, 255]`` out). Bilinear resizing samples the box
    with the first and last sample on the centres of its edge pixels (one
    ``tf.image.crop_and_resize`` for all crops); bicubic resizing crops each box to whole pixels
    and resizes it with an antialiased bicubic kernel.
    """
    import tensorflow as tf

    image = tf.cast(tf.convert_to_tensor(image), tf.float32)
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    boxes, flips = crop_boxes(crops, height, width, size, crop_fraction, crop)
    n = len(flips)
    if interpolation == "bicubic":
        out = tf.stack([_bicubic(image, boxes[i], size) for i in range(n)])
    else:
        h1 = tf.cast(tf.maximum(height - 1, 1), tf.float32)
        w1 = tf.cast(tf.maximum(width - 1, 1), tf.float32)
        # Normalised coordinates whose samples span the box's first to last pixel centre.
        norm = tf.stack(
            [boxes[:, 0] / h1, boxes[:, 1] / w1, (boxes[:, 2] - 1) / h1, (boxes[:, 3] - 1) / w1],
            axis=1,
        )
        out = tf.image.crop_and_resize(
            image[None], norm, tf.zeros([n], tf.int32), [size, size], method="bilinear"
        )
    if flips.any():
        mirrored = tf.reverse(out, axis=[2])
        out = tf.where(tf.constant(flips)[:, None, None, None], mirrored, out)
    return out


def _bicubic(image, box, size):
    import tensorflow as tf

    shape = tf.shape(image)
    y0 = tf.clip_by_value(tf.cast(tf.round(box[0]), tf.int32), 0, shape[0] - 1)
    x0 = tf.clip_by_value(tf.cast(tf.round(box[1]), tf.int32), 0, shape[1] - 1)
    y1 = tf.clip_by_value(tf.cast(tf.round(box[2]), tf.int32), y0 + 1, shape[0])
    x1 = tf.clip_by_value(tf.cast(tf.round(box[3]), tf.int32), x0 + 1, shape[1])
    region = image[y0:y1, x0:x1]
    out = tf.image.resize(region, [size, size], method="bicubic", antialias=True)
    return tf.clip_by_value(out, 0.0, 255.0)


def extract(image, crops, prep):
    """``extract_crops`` with a model's ``inception.Preprocessing`` (size, fraction, crop,
    interpolation), then its scaling: the batch a model of that preprocessing takes."""
    out = extract_crops(
        image, crops, prep.input_size, prep.crop_fraction, prep.crop, prep.interpolation
    )
    return rescale(out, prep.scale)
