"""Data sources: where labelled, still-encoded images come from.

``load_source(data, split)`` resolves one of three kinds of data set to a :class:`Source` whose
``dataset`` yields ``(encoded_image_bytes, label)`` pairs: a ``tf.string`` scalar (JPEG, PNG,
GIF or BMP bytes, not decoded) and a ``tf.int32`` scalar, the 0-based index of the class in
``class_names``. Decoding and augmentation belong to ``inception.data.pipeline``.

``data`` is one of:

* ``"imagenet2012"`` (or ``"tfds:imagenet2012"``): ILSVRC-2012 through tfds' own
  ``imagenet2012`` builder. 1000 classes, labels 0..999 in sorted synset order (``n01440764`` is
  0), the layout of ``inception.class_names(1000)``; a 1001-class model (slim's background at 0)
  needs ``label + 1``. The builder needs a manual download: put ``ILSVRC2012_img_train.tar`` and
  ``ILSVRC2012_img_val.tar`` (from https://image-net.org/download-images) in the manual dir,
  ``<data_dir>/downloads/manual/`` (``data_dir`` defaults to ``~/tensorflow_datasets``). The first
  call prepares the TFRecords (once; hours for the full set). Missing tar files raise a
  :class:`UsageError` that says exactly this.
* ``"tfds:NAME"`` (``NAME`` may carry a config/version, as ``tfds.builder`` accepts): any tfds
  data set with an image and a class label (its ``supervised_keys``), prepared (downloaded) on
  first use into ``data_dir``. Labels and class names are tfds' own.
* a folder path: one sub-folder per class, images anywhere below it. Class names are the
  sub-folder names in sorted order, labels their index, unless ``labels_file`` gives the class
  list (then sub-folders must be named after entries of that list, and labels are indices in
  it: e.g. a folder of a few ImageNet classes named by synset, with a file listing the 1000
  synsets, keeps ImageNet's labels). If the folder holds a sub-folder named after the split
  (``train``; ``validation`` also as ``val``/``valid``; ``test``), that sub-folder is used;
  otherwise the folder itself serves every split. Files are checked when the source is loaded:
  anything that is not a readable JPEG/PNG/GIF/BMP image is skipped, counted and named
  (``Source.skipped``, ``Source.skipped_files``; the log names the first few), never fatal; an
  empty folder is a :class:`UsageError`.

``split`` is ``"train"``, ``"validation"`` or ``"test"`` (tfds also accepts its slicing syntax,
e.g. ``"train[:1%]"``).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import tensorflow as tf

from inception.errors import UsageError, check_image_folder
from inception.models.labels import read_labels_file

log = logging.getLogger(__name__)

IMAGENET = "imagenet2012"
MANUAL_FILES = ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar")
SPLIT_ALIASES = {
    "train": ("train", "training"),
    "validation": ("validation", "val", "valid"),
    "test": ("test",),
}
# Magic numbers of the formats ``tf.io.decode_image`` reads (WebP is left out: not everywhere).
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")
VERIFY_AUTO_LIMIT = 20_000  # "auto": fully decode-check folders up to this many files


@dataclass
class Source:
    """A labelled image data set, not yet decoded.

    Attributes:
        name: ``"imagenet2012"``, ``"tfds:NAME"`` or the folder path.
        split: the split that was asked for.
        num_examples: number of examples ``dataset`` yields (one pass).
        num_classes: number of classes (``len(class_names)``).
        class_names: class names by label index (synsets for ImageNet).
        skipped: folder sources: files skipped as not images / unreadable (0 for tfds).
        skipped_files: their paths (folder sources).
        whole_folder: a folder source with no sub-folder for ``split``, so the whole folder
            serves it: its "validation" images are the training images (False for tfds).
    """

    name: str
    split: str
    num_examples: int
    class_names: list[str] = field(repr=False)
    reader: Callable[..., tf.data.Dataset] = field(repr=False)
    skipped: int = 0
    skipped_files: list[str] = field(default_factory=list, repr=False)
    whole_folder: bool = False

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def relabelled(self, class_names: list[str]) -> Source:
        """This source labelled by the index of each of its classes in ``class_names`` (e.g. a
        validation folder holding some of the training classes gets the training labels), with
        ``class_names`` as its class names. Every class of this source must be in the list."""
        class_names = list(class_names)
        if list(self.class_names) == class_names:
            return self
        index = {name: i for i, name in enumerate(class_names)}
        missing = [name for name in self.class_names if name not in index]
        if missing:
            raise UsageError(
                f"classes {missing[:5]} of {self.name} ({self.split}) are not among the "
                f"{len(class_names)} classes they should be labelled by."
            )
        mapping = [index[name] for name in self.class_names]
        reader = self.reader

        def remapped(**kwargs):
            table = tf.constant(mapping, tf.int32)
            return reader(**kwargs).map(
                lambda image, label: (image, tf.gather(table, label)),
                num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=True,
            )

        return dataclasses.replace(self, class_names=class_names, reader=remapped)

    @functools.cached_property
    def dataset(self) -> tf.data.Dataset:
        """``(encoded_bytes: tf.string scalar, label: tf.int32 scalar)`` in a fixed order."""
        return self.read()

    def read(
        self,
        *,
        shuffle_files: bool = False,
        seed: int | None = None,
        input_context: tf.distribute.InputContext | None = None,
    ) -> tf.data.Dataset:
        """A fresh ``(bytes, label)`` dataset.

        ``shuffle_files`` shuffles the order of files (folder) or record shards (tfds) each pass,
        reproducibly with ``seed``. ``input_context`` (from ``distribute_datasets_from_function``)
        keeps only this input pipeline's shard.
        """
        return self.reader(shuffle_files=shuffle_files, seed=seed, input_context=input_context)


def load_source(
    data: str,
    split: str = "train",
    *,
    data_dir: str | os.PathLike | None = None,
    labels_file: str | os.PathLike | None = None,
    manual_dir: str | os.PathLike | None = None,
    verify: bool | str = "auto",
) -> Source:
    """Resolves ``data`` (``"imagenet2012"``, ``"tfds:NAME"`` or a folder) to a :class:`Source`.

    Args:
        data: the data set, as described in this module's docstring.
        split: ``"train"``, ``"validation"`` or ``"test"`` (tfds: any split string).
        data_dir: tfds data directory (default ``~/tensorflow_datasets``); unused for folders.
        labels_file: folder sources only: a text file with one class name per line, in label
            order (``inception.models.labels.read_labels_file``: ``#`` comments, blank lines
            and anything after a tab ignored, so ``n01440764<TAB>tench`` lines work).
        manual_dir: imagenet2012 only: where the two ILSVRC tar files are (default
            ``<data_dir>/downloads/manual``).
        verify: folder sources: ``True`` decodes every file once at load time so corrupt ones
            are skipped and counted; ``False`` checks only the file signature (the input
            pipeline still drops files that fail to decode); ``"auto"``: ``True`` up to
            20,000 files.

    Raises:
        UsageError: unknown data set, missing folder, empty folder, missing ImageNet tar files,
            unknown split, or a folder class missing from ``labels_file``.
    """
    data = str(data)
    if data in (IMAGENET, f"tfds:{IMAGENET}"):
        return _tfds_source(IMAGENET, split, data_dir, manual_dir, labels_file)
    if data.startswith("tfds:"):
        return _tfds_source(data[len("tfds:") :], split, data_dir, manual_dir, labels_file)
    return _folder_source(Path(data).expanduser(), split, labels_file, verify)


# ----------------------------------------------------------------------------------- folders


def _split_folder(root: Path, split: str) -> Path:
    if split not in SPLIT_ALIASES:
        raise UsageError(
            f"unknown split {split!r} for a folder data set; use one of {', '.join(SPLIT_ALIASES)}."
        )
    for alias in SPLIT_ALIASES[split]:
        if (root / alias).is_dir():
            return root / alias
    return root


def _has_image_signature(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return False
    return any(head.startswith(m) for m in _MAGIC)


def _decodable(paths: list[str]) -> list[bool]:
    """Decodes every file once with TensorFlow's own decoders (in parallel); True if it decodes."""

    def check(index, path):
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        tf.debugging.assert_positive(tf.size(image))
        return index

    ds = tf.data.Dataset.from_tensor_slices((tf.range(len(paths)), paths))
    ds = ds.map(check, num_parallel_calls=tf.data.AUTOTUNE).ignore_errors()
    ok = [False] * len(paths)
    for index in ds.as_numpy_iterator():
        ok[int(index)] = True
    return ok


def _folder_source(root: Path, split: str, labels_file, verify) -> Source:
    check_image_folder(root)
    folder = _split_folder(root, split)
    class_dirs = sorted(
        p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")
    )
    if not class_dirs:
        raise UsageError(
            f"folder {str(folder)!r} has no class sub-folders; put each class's images in a "
            "sub-folder named after the class."
        )
    if labels_file is not None:
        class_names = read_labels_file(labels_file, distinct=True)
        index = {name: i for i, name in enumerate(class_names)}
        unknown = [d for d in class_dirs if d not in index]
        if unknown:
            raise UsageError(
                f"class folders {unknown[:5]} of {str(folder)!r} are not in labels file "
                f"{str(labels_file)!r}."
            )
    else:
        class_names = class_dirs
        index = {name: i for i, name in enumerate(class_names)}

    paths, labels, skipped = [], [], []
    for name in class_dirs:
        for dirpath, dirnames, filenames in os.walk(folder / name):
            dirnames.sort()
            for filename in sorted(filenames):
                path = os.path.join(dirpath, filename)
                if _has_image_signature(path):
                    paths.append(path)
                    labels.append(index[name])
                else:
                    skipped.append(path)
    if verify == "auto":
        verify = len(paths) <= VERIFY_AUTO_LIMIT
    if verify and paths:
        ok = _decodable(paths)
        skipped += [p for p, good in zip(paths, ok) if not good]
        labels = [label for label, good in zip(labels, ok) if good]
        paths = [p for p, good in zip(paths, ok) if good]
    if skipped:
        log.warning("%s", skipped_message(folder, skipped))
    if not paths:
        raise UsageError(
            f"folder {str(folder)!r} has no readable images (JPEG, PNG, GIF or BMP) in its class "
            f"sub-folders{f' ({len(skipped)} unreadable files skipped)' if skipped else ''}."
        )

    def reader(shuffle_files=False, seed=None, input_context=None):
        ds = tf.data.Dataset.from_tensor_slices((paths, tf.constant(labels, tf.int32)))
        if input_context is not None and input_context.num_input_pipelines > 1:
            ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
        if shuffle_files:
            ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
        return ds.map(
            lambda path, label: (tf.io.read_file(path), label),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )

    return Source(
        str(root), split, len(paths), list(class_names), reader, len(skipped), skipped,
        whole_folder=folder == root,
    )  # fmt: skip


SKIPPED_SHOWN = 5  # skipped files named in the log (all of them: ``Source.skipped_files``)


def skipped_message(folder, skipped: list[str]) -> str:
    """One line: how many files of ``folder`` were skipped, naming the first few."""
    shown = ", ".join(skipped[:SKIPPED_SHOWN])
    more = f" and {len(skipped) - SKIPPED_SHOWN} more" if len(skipped) > SKIPPED_SHOWN else ""
    return f"{folder}: skipped {len(skipped)} file(s) that are not readable images: {shown}{more}"


# -------------------------------------------------------------------------------------- tfds


def imagenet_manual_dir(data_dir=None, manual_dir=None) -> Path:
    """Where tfds looks for the two ILSVRC-2012 tar files."""
    if manual_dir is not None:
        return Path(manual_dir).expanduser()
    base = Path(data_dir).expanduser() if data_dir else Path("~/tensorflow_datasets").expanduser()
    return base / "downloads" / "manual"


def _check_reachable(builder, name, timeout: float = 5.0) -> None:
    """Fails at once, naming the host, when a download the data set needs cannot be reached
    (tfds itself retries for minutes when offline)."""
    import socket
    from urllib.parse import urlsplit

    try:
        urls = list(builder.url_infos or {})
    except Exception:  # noqa: BLE001 (no checksums recorded: nothing to check beforehand)
        return
    for host, port in sorted({(urlsplit(u).hostname, urlsplit(u).port or 443) for u in urls}):
        if not host:
            continue
        try:
            socket.create_connection((host, port), timeout=timeout).close()
        except OSError as exc:
            raise UsageError(
                f"tfds:{name} is not prepared in {builder.data_dir} and its download from {host} "
                f"cannot be reached ({exc}); prepare it where the internet is reachable "
                f"(`tfds build {name} --data_dir DIR`) and pass --data-dir DIR, or give a folder."
            ) from None


def _tfds_source(name, split, data_dir, manual_dir, labels_file) -> Source:
    import tensorflow_datasets as tfds

    if labels_file is not None:
        raise UsageError(
            "labels_file applies to folder data sets only; tfds data sets carry labels."
        )
    data_dir = os.fspath(Path(data_dir).expanduser()) if data_dir else None
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise UsageError(
            f"unknown tfds data set {name!r}; see `tfds.list_builders()` or "
            "https://www.tensorflow.org/datasets/catalog (or give a folder path)."
        ) from None
    if not builder.is_prepared():
        manual = imagenet_manual_dir(data_dir, manual_dir)
        if builder.name == IMAGENET:
            missing = [f for f in MANUAL_FILES if not (manual / f).is_file()]
            if missing:
                raise UsageError(
                    f"imagenet2012 is not prepared and {', '.join(missing)} not found in {manual}; "
                    f"tfds prepares both splits at once, so it needs {' and '.join(MANUAL_FILES)} "
                    "(from https://image-net.org/download-images, registration needed) in "
                    f"{manual} even to evaluate (or pass --data-dir/data_dir: a tfds data dir "
                    "whose downloads/manual holds them). To evaluate with the validation images "
                    "only, sort them into folders named by synset (DIR/n01440764/*.JPEG, ...) "
                    "and pass that folder as --data DIR."
                )
        else:
            _check_reachable(builder, name)
        log.info("preparing tfds data set %s in %s (first use)", name, builder.data_dir)
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=os.fspath(manual))
        )
    info = builder.info
    image_key, label_key = info.supervised_keys or (None, None)
    label_feature = info.features[label_key] if label_key else None
    if not isinstance(label_feature, tfds.features.ClassLabel) or not isinstance(
        info.features[image_key], tfds.features.Image
    ):
        raise UsageError(
            f"tfds data set {name!r} is not an image classification data set (it needs an "
            "Image and a ClassLabel as its supervised keys)."
        )
    try:
        num_examples = info.splits[split].num_examples
    except (KeyError, ValueError) as exc:
        raise UsageError(
            f"tfds data set {name!r} has no split {split!r}; it has {', '.join(info.splits)}."
        ) from exc

    def reader(shuffle_files=False, seed=None, input_context=None):
        def as_dataset(context):
            config = tfds.ReadConfig(shuffle_seed=seed, input_context=context, try_autocache=False)
            return builder.as_dataset(
                split=split,
                shuffle_files=shuffle_files,
                read_config=config,
                decoders={image_key: tfds.decode.SkipDecoding()},
            )

        sharded = input_context is not None and input_context.num_input_pipelines > 1
        try:  # shard by record files: each input pipeline reads only its own files
            ds = as_dataset(input_context if sharded else None)
        except ValueError:  # fewer record files than input pipelines: shard by example
            if not sharded:
                raise
            ds = as_dataset(None).shard(
                input_context.num_input_pipelines, input_context.input_pipeline_id
            )
        return ds.map(
            lambda ex: (ex[image_key], tf.cast(ex[label_key], tf.int32)),
            num_parallel_calls=tf.data.AUTOTUNE,
        )

    shown = IMAGENET if builder.name == IMAGENET else f"tfds:{name}"
    return Source(shown, split, int(num_examples), list(label_feature.names), reader)
