"""Data sources: image folders (with corrupt files), tfds' real imagenet2012 builder on miniature
ILSVRC tars, and clear errors for bad input."""

from __future__ import annotations

import pytest
import tensorflow as tf
from helpers import png_bytes
from helpers import write_class_folder as write_folder
from ilsvrc import imagenet_synsets

from inception.data import load_source
from inception.errors import UsageError


def test_folder_labels_in_sorted_class_order(tmp_path):
    write_folder(tmp_path, classes=("zebra", "ant", "moth"), per_class=2)
    (tmp_path / "moth" / "nested").mkdir()
    (tmp_path / "moth" / "nested" / "x.png").write_bytes(png_bytes())
    source = load_source(tmp_path, "train")
    assert source.class_names == ["ant", "moth", "zebra"]
    assert (source.num_classes, source.num_examples, source.skipped) == (3, 7, 0)
    pairs = list(source.dataset.as_numpy_iterator())
    assert [int(label) for _, label in pairs] == [0, 0, 1, 1, 1, 2, 2]
    assert source.dataset.element_spec == (
        tf.TensorSpec((), tf.string),
        tf.TensorSpec((), tf.int32),
    )
    image = tf.io.decode_image(pairs[0][0])
    assert image.shape == (48, 64, 3)


def test_folder_skips_and_counts_corrupt_files(tmp_path):
    write_folder(tmp_path, per_class=2)
    good = (tmp_path / "cat" / "0.jpg").read_bytes()
    (tmp_path / "cat" / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    (tmp_path / "dog" / "empty.jpg").write_bytes(b"")
    (tmp_path / "eel" / "gray.png").write_bytes(png_bytes(mode="L"))
    source = load_source(tmp_path, "train")
    assert source.skipped == 3
    assert sorted(p.rsplit("/", 1)[-1] for p in source.skipped_files) == [
        "empty.jpg",
        "notes.txt",
        "truncated.jpg",
    ]
    assert source.num_examples == 7
    assert len(list(source.dataset)) == 7
    # Without the decode check, only the signature check runs: the truncated JPEG stays listed.
    assert load_source(tmp_path, "train", verify=False).skipped == 2


def test_folder_split_subfolders_and_labels_file(tmp_path):
    write_folder(tmp_path / "train", per_class=2)
    write_folder(tmp_path / "val", classes=("dog",), per_class=1)
    labels = tmp_path / "classes.txt"
    labels.write_text("# name per line\ncat\ta cat\ndog  # a dog\neel\n")
    val = load_source(tmp_path, "validation", labels_file=labels)
    assert val.class_names == ["cat", "dog", "eel"]
    assert [int(label) for _, label in val.dataset] == [1]
    assert load_source(tmp_path, "train").num_examples == 6


def test_folder_with_imagenet_synsets_keeps_imagenet_labels(tmp_path):
    synsets = imagenet_synsets()
    write_folder(tmp_path, classes=(synsets[7], synsets[998]), per_class=1)
    labels = tmp_path.parent / "synsets.txt"
    labels.write_text("\n".join(synsets))
    source = load_source(tmp_path, "train", labels_file=labels)
    assert source.num_classes == 1000
    assert [int(label) for _, label in source.dataset] == [7, 998]


def test_folder_sharding_and_shuffling(tmp_path):
    write_folder(tmp_path, per_class=4)
    source = load_source(tmp_path, "train")
    context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=1)
    shard = [bytes(b) for b, _ in source.read(input_context=context).as_numpy_iterator()]
    everything = list(source.dataset.as_numpy_iterator())
    assert shard == [bytes(b) for b, _ in everything][1::2]
    first = [bytes(b) for b, _ in source.read(shuffle_files=True, seed=3).as_numpy_iterator()]
    again = [bytes(b) for b, _ in source.read(shuffle_files=True, seed=3).as_numpy_iterator()]
    assert first == again and sorted(first) == sorted(bytes(b) for b, _ in everything)
    assert first != [bytes(b) for b, _ in everything]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p / "nope", "neither a folder nor a known data set"),
        (lambda p: p, "no class sub-folders"),
        (lambda p: (p / "a").mkdir() or p, "no readable images"),
        (lambda p: (p / "f.txt").write_text("x") and p / "f.txt", "is a file"),
    ],
)
def test_folder_errors(tmp_path, make, message):
    with pytest.raises(UsageError, match=message):
        load_source(make(tmp_path), "train")


def test_folder_error_only_corrupt(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.jpg").write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(UsageError, match="1 unreadable files skipped"):
        load_source(tmp_path, "train")


def test_folder_error_bad_split_and_labels_file(tmp_path):
    write_folder(tmp_path, per_class=1)
    with pytest.raises(UsageError, match="unknown split 'holdout'"):
        load_source(tmp_path, "holdout")
    with pytest.raises(UsageError, match="does not exist"):
        load_source(tmp_path, "train", labels_file=tmp_path / "missing.txt")
    (tmp_path.parent / "two.txt").write_text("cat\ndog\n")
    with pytest.raises(UsageError, match=r"\['eel'\].*not in labels file"):
        load_source(tmp_path, "train", labels_file=tmp_path.parent / "two.txt")


def test_unknown_tfds_dataset(tmp_path):
    with pytest.raises(UsageError, match="unknown tfds data set 'no_such_set_xyz'"):
        load_source("tfds:no_such_set_xyz", "train", data_dir=tmp_path)


def test_imagenet_missing_manual_dir_says_which_files(tmp_path):
    with pytest.raises(UsageError) as err:
        load_source("imagenet2012", "train", data_dir=tmp_path)
    text = str(err.value)
    assert "ILSVRC2012_img_train.tar" in text and "ILSVRC2012_img_val.tar" in text
    assert str(tmp_path / "downloads" / "manual") in text


def test_imagenet2012_builder_from_miniature_tars(imagenet2012_manual):
    data_dir, info = imagenet2012_manual
    train = load_source("imagenet2012", "train", data_dir=data_dir)
    assert train.name == "imagenet2012"
    assert (train.num_classes, train.num_examples) == (1000, info["num_train"])
    assert train.class_names == imagenet_synsets()
    labels = sorted(int(label) for _, label in train.dataset)
    expected = sorted(
        label
        for synset, label in info["train_labels"].items()
        for _ in range(info["train"][synset])
    )
    assert labels == expected
    val = load_source("tfds:imagenet2012", "validation", data_dir=data_dir)
    assert val.num_examples == info["num_val"]
    pairs = list(val.dataset.as_numpy_iterator())
    assert sorted(int(label) for _, label in pairs) == sorted(info["val_labels"])
    assert all(tf.io.is_jpeg(image) for image, _ in pairs)
    with pytest.raises(UsageError, match="no split 'test'"):
        load_source("imagenet2012", "test", data_dir=data_dir)
    with pytest.raises(UsageError, match="folder data sets only"):
        load_source("imagenet2012", "train", data_dir=data_dir, labels_file="x.txt")


def test_unreachable_tfds_download_fails_at_once():
    """tfds retries an unreachable download for minutes; the source fails at once instead."""
    import socket
    from types import SimpleNamespace

    from inception.data.sources import _check_reachable

    with socket.socket() as s:  # a port on 127.0.0.1 that nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    builder = SimpleNamespace(url_infos={f"http://127.0.0.1:{port}/data.tgz": None}, data_dir="/d")
    with pytest.raises(UsageError, match="download from 127.0.0.1 cannot be reached"):
        _check_reachable(builder, "nowhere")
