"""Miniature ILSVRC-2012 tar files in the official layout, for tfds' real ``imagenet2012`` builder.

The official ``ILSVRC2012_img_train.tar`` holds one tar per synset (``n01440764.tar``), each
holding ``n01440764_<N>.JPEG``; ``ILSVRC2012_img_val.tar`` holds 50,000 flat
``ILSVRC2012_val_%08d.JPEG`` files. tfds labels the validation images with the
``validation_labels.txt`` it ships (one synset per line, for the val images in sorted name
order), so a miniature val tar of ``ILSVRC2012_val_00000001..K`` gets the first ``K`` lines: the
helper draws each val image in the colour of that synset so labels stay learnable.

Use::

    from ilsvrc import write_ilsvrc2012, imagenet2012_manual  # noqa: F401  (the fixture)

    info = write_ilsvrc2012(tmp_path / "downloads" / "manual")
    source = load_source("imagenet2012", "train", data_dir=tmp_path)  # prepares with tfds

or request the ``imagenet2012_manual`` fixture (module scope), which yields
``(data_dir, info)`` with the tars written into ``data_dir/downloads/manual`` (not prepared).
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

VAL_NAME = "ILSVRC2012_val_{:08d}.JPEG"


def imagenet_synsets() -> list[str]:
    """The 1000 synsets in label order (sorted), as tfds' ``imagenet2012`` labels them."""
    from inception.preprocessing import imagenet_classes

    return [synset for synset, _ in imagenet_classes()]


def tfds_validation_synsets(count: int) -> list[str]:
    """The synsets tfds assigns to ``ILSVRC2012_val_00000001..count`` (its shipped labels)."""
    from tensorflow_datasets.datasets.imagenet2012 import imagenet_common

    path = imagenet_common.tfds.core.tfds_path(imagenet_common._VALIDATION_LABELS_FNAME)
    return Path(path).read_text().split()[:count]


def class_colour(label: int) -> np.ndarray:
    """A distinct RGB colour per label (hue wheel with 7 steps, brightness by label // 7)."""
    hue = (label % 7) / 7.0
    value = 1.0 - 0.35 * ((label // 7) % 3)
    rgb = np.array([np.cos(2 * np.pi * (hue - k / 3)) * 0.5 + 0.5 for k in range(3)])
    return (rgb * value * 255).astype(np.float32)


def synthetic_jpeg(label: int, rng: np.random.Generator, size=(48, 64), quality=90) -> bytes:
    """A JPEG whose dominant colour encodes ``label``, with noise and a random bright square."""
    h, w = size
    image = np.broadcast_to(class_colour(label), (h, w, 3)).copy()
    image += rng.normal(0, 20, size=(h, w, 3))
    y, x = rng.integers(0, h // 2), rng.integers(0, w // 2)
    image[y : y + h // 3, x : x + w // 3] += 60
    buffer = io.BytesIO()
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def _add(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
    member = tarfile.TarInfo(name)
    member.size = len(payload)
    tar.addfile(member, io.BytesIO(payload))


def write_ilsvrc2012(
    manual_dir, synsets=None, images_per_class: int = 3, num_val: int = 8, seed: int = 0
) -> dict:
    """Writes ``ILSVRC2012_img_train.tar`` and ``ILSVRC2012_img_val.tar`` into ``manual_dir``.

    Args:
        manual_dir: the tfds manual dir (``<data_dir>/downloads/manual``); created if missing.
        synsets: training synsets (default: the synsets of the first ``num_val`` val images plus
            ``n01440764``, so train and validation share classes).
        images_per_class: training images per synset (``<synset>_<N>.JPEG``, N from 1).
        num_val: validation images ``ILSVRC2012_val_00000001..num_val``.

    Returns:
        ``{"manual_dir", "train": {synset: count}, "val_synsets": [synset per val image],
        "train_labels": {synset: label}, "val_labels": [label per val image],
        "num_train", "num_val"}``, labels being indices in the sorted 1000 synsets.
    """
    manual_dir = Path(manual_dir)
    manual_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    all_synsets = imagenet_synsets()
    label_of = {s: i for i, s in enumerate(all_synsets)}
    val_synsets = tfds_validation_synsets(num_val)
    if synsets is None:
        synsets = sorted(set(val_synsets) | {all_synsets[0]})
    unknown = [s for s in synsets if s not in label_of]
    if unknown:
        raise ValueError(f"not ImageNet synsets: {unknown}")

    with tarfile.open(manual_dir / "ILSVRC2012_img_train.tar", "w") as train_tar:
        for synset in synsets:
            inner = io.BytesIO()
            with tarfile.open(fileobj=inner, mode="w") as synset_tar:
                for n in range(1, images_per_class + 1):
                    _add(synset_tar, f"{synset}_{n}.JPEG", synthetic_jpeg(label_of[synset], rng))
            _add(train_tar, f"{synset}.tar", inner.getvalue())
    with tarfile.open(manual_dir / "ILSVRC2012_img_val.tar", "w") as val_tar:
        for i, synset in enumerate(val_synsets, start=1):
            _add(val_tar, VAL_NAME.format(i), synthetic_jpeg(label_of[synset], rng))
    return {
        "manual_dir": manual_dir,
        "train": {s: images_per_class for s in synsets},
        "val_synsets": val_synsets,
        "train_labels": {s: label_of[s] for s in synsets},
        "val_labels": [label_of[s] for s in val_synsets],
        "num_train": images_per_class * len(synsets),
        "num_val": num_val,
    }


@pytest.fixture(scope="module")
def imagenet2012_manual(tmp_path_factory):
    """``(data_dir, info)``: a tfds data dir whose ``downloads/manual`` holds miniature tars."""
    data_dir = tmp_path_factory.mktemp("tfds")
    info = write_ilsvrc2012(data_dir / "downloads" / "manual")
    return data_dir, info
