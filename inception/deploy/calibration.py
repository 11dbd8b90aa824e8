"""Calibration images for int8 quantization: a folder of images (walked, sorted), at most
``limit`` of them spread evenly over it, each cut and resized as the model's own preprocessing
says (one central crop), as float32 pixels in [0, 255] (the artifact contract)."""

from __future__ import annotations

import os

import numpy as np

from ..errors import UsageError

DEFAULT_LIMIT = 300


def image_files(folder) -> list[str]:
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise UsageError(
            f"--calibration-data {folder!r} is not a folder; give a folder of images (a few "
            "hundred, like the ones the model will see)."
        )
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [os.path.join(root, f) for f in sorted(files) if not f.startswith(".")]
    return found


def calibration_images(folder, prep, limit: int = DEFAULT_LIMIT) -> np.ndarray:
    """``(n, size, size, 3)`` float32 pixels of up to ``limit`` readable images of ``folder``,
    prepared by ``prep`` (an ``inception.Preprocessing``) without its scaling."""
    import tensorflow as tf

    from ..preprocessing import crops as crop_lib

    files = image_files(folder)
    if len(files) > limit:
        files = [files[i] for i in np.linspace(0, len(files) - 1, limit).round().astype(int)]
    prep = prep.replace(scale="none")
    rows = []
    for path in files:
        try:
            with open(path, "rb") as f:
                image = tf.io.decode_image(f.read(), channels=3, expand_animations=False)
        except (tf.errors.InvalidArgumentError, ValueError, OSError):
            continue
        if image.shape[0] and image.shape[1]:
            rows.append(np.asarray(crop_lib.extract(image, 1, prep), np.float32))
    if not rows:
        raise UsageError(
            f"--calibration-data {os.fspath(folder)!r} holds no readable image (JPEG, PNG, GIF "
            "or BMP); give a folder of images like the ones the model will see."
        )
    return np.concatenate(rows)
