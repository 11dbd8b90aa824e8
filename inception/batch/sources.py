"""What ``inception batch-predict`` reads, and how a shard's images are read.

The input is one of

* a folder (local, or a prefix on any filesystem Beam reads: ``gs://``, ``s3://``, ``hdfs://``):
  every file below it, hidden files and folders (a name starting with ``.``) left out, as
  ``inception predict`` walks a folder;
* a glob (``photos/*/*.jpg``, ``gs://bucket/images/**.png``): the files it matches;
* a list file (``.txt`` or ``.lst``): one image path per line; blank lines and lines starting
  with ``#`` are skipped, and a relative path is relative to the list file's folder;
* ``tfds:NAME[:SPLIT]`` (``SPLIT`` default ``train``; ``NAME`` may carry a version, as
  ``tfds:mnist:3.0.1:test``): the images of a tfds split, prepared in ``--data-dir`` (which
  the workers must reach; on a cluster, a ``gs://`` folder).

Files are read with Beam's ``FileSystems``, so every filesystem Beam has a plugin for works on
every runner. Files under the output folder are never inputs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import UsageError
from ..evaluation.predict import Item  # name, bytes or error: predict's own input record
from .shards import ShardJob, TfdsRange, ranges

TFDS = "tfds:"
GLOB_CHARS = "*?["
LIST_SUFFIXES = (".txt", ".lst")
DEFAULT_SPLIT = "train"
CHECK_LIMIT = 1000  # files listed before the run to tell an empty input (hidden ones skipped)
_VERSION = re.compile(r"\d+(\.\d+)*")
INPUT_HELP = (
    "a folder (walked), a glob, a .txt/.lst file listing image paths, or tfds:NAME[:SPLIT]; "
    "local or on any filesystem Beam reads (gs://, s3://, hdfs://)"
)


def is_local(path: str) -> bool:
    return "://" not in path


def absolute(path: str) -> str:
    """A local path made absolute (workers may run elsewhere); others unchanged."""
    return os.path.abspath(os.path.expanduser(path)) if is_local(path) else path


@dataclass(frozen=True)
class InputSpec:
    """A parsed input: ``kind`` is ``folder``, ``glob``, ``list`` or ``tfds``; ``location`` the
    folder, pattern or list file (absolute when local), or the tfds name."""

    kind: str
    location: str
    split: str | None = None
    data_dir: str | None = None

    def describe(self) -> str:
        """The input as the manifest records it and messages name it."""
        if self.kind == "tfds":
            return f"{TFDS}{self.location}:{self.split}"
        return f"{self.kind} {self.location}"

    @property
    def pattern(self) -> str:
        """Folders and globs: what ``FileSystems.match`` lists."""
        if self.kind == "folder":
            return self.location.rstrip("/") + "/**"
        return self.location


def parse_input(text: str, data_dir: str | None = None) -> InputSpec:
    """Names the kind of ``text``; a local folder or list file must exist."""
    from apache_beam.io.filesystems import FileSystems

    text = os.fspath(text).strip()
    if text.startswith(TFDS):
        name, split = _tfds_name(text[len(TFDS) :])
        return InputSpec("tfds", name, split, data_dir and absolute(data_dir))
    location = absolute(text)
    if any(c in text for c in GLOB_CHARS):
        return InputSpec("glob", location)
    if text.lower().endswith(LIST_SUFFIXES):
        if not FileSystems.exists(location):
            raise UsageError(f"list file {text!r} does not exist.")
        return InputSpec("list", location)
    if is_local(location) and not os.path.isdir(location):
        what = "is a file, not a folder" if os.path.exists(location) else "does not exist"
        raise UsageError(
            f"input {text!r} {what}; give a folder, a glob, a .txt or .lst file listing image "
            "paths, or tfds:NAME[:SPLIT]."
        )
    return InputSpec("folder", location.rstrip("/") or "/")


def _tfds_name(rest: str) -> tuple[str, str]:
    """``NAME[:SPLIT]`` -> ``(name, split)``; a trailing ``:3.0.1`` is a version, not a split."""
    name, _, split = rest.rpartition(":")
    if not name or _VERSION.fullmatch(split):
        name, split = rest, DEFAULT_SPLIT
    if not name:
        raise UsageError("tfds: needs a data set name, as tfds:NAME or tfds:NAME:SPLIT.")
    return name, split


# --------------------------------------------------------------------------- listing files


def keep(path: str, spec: InputSpec, out: str) -> bool:
    """Whether a listed file is an input: not under the output folder, and (folders) not hidden
    below the folder."""
    if path == out or path.startswith(out.rstrip("/") + "/"):
        return False
    if spec.kind != "folder":
        return True
    relative = path[len(spec.location) :].lstrip("/")
    return not any(part.startswith(".") for part in relative.split("/"))


def list_entry(line: str, folder: str) -> str | None:
    """One line of a list file -> a path (``None``: blank or a comment); a relative path is
    taken relative to ``folder``, the list file's own."""
    line = line.strip()
    if not line or line.startswith("#"):
        return None
    if not is_local(line) or line.startswith("/"):
        return line
    if is_local(folder):
        return os.path.normpath(os.path.join(folder, os.path.expanduser(line)))
    return folder.rstrip("/") + "/" + line


def check_not_empty(spec: InputSpec, out: str) -> int | None:
    """Refuses an input with nothing to predict, before anything is written. Returns the number
    of examples of a tfds split (``None`` for files: they are counted by the pipeline)."""
    if spec.kind == "tfds":
        count = tfds_count(spec)
        if count == 0:
            raise UsageError(f"{spec.describe()} has no examples; nothing to predict.")
        return count
    if spec.kind == "list":
        if _first_entry(spec.location) is None:
            raise UsageError(
                f"list file {spec.location!r} names no image (one path per line; blank lines "
                "and # comments are skipped); nothing to predict."
            )
        return None
    from apache_beam.io.filesystems import FileSystems

    (found,) = FileSystems.match([spec.pattern], limits=[CHECK_LIMIT])
    if not any(keep(m.path, spec, out) for m in found.metadata_list):
        what = "matches no file" if spec.kind == "glob" else "holds no files (hidden ones skipped)"
        raise UsageError(f"input {spec.location!r} {what}; nothing to predict.")
    return None


def _first_entry(list_file: str) -> str | None:
    from apache_beam.io.filesystems import CompressionTypes, FileSystems

    folder = list_file.rsplit("/", 1)[0]
    with FileSystems.open(list_file, compression_type=CompressionTypes.AUTO) as f:
        for raw in f:
            entry = list_entry(raw.decode("utf-8", "replace"), folder)
            if entry is not None:
                return entry
    return None


def list_inputs(pipeline, spec: InputSpec, out: str):
    """The input files of ``spec`` (a folder, a glob or a list file) as a ``PCollection`` of
    paths, the output folder left out."""
    import apache_beam as beam
    from apache_beam.io import fileio
    from apache_beam.io.fileio import EmptyMatchTreatment

    if spec.kind == "list":
        folder = spec.location.rsplit("/", 1)[0]
        lines = pipeline | "ReadList" >> beam.io.ReadFromText(spec.location)
        paths = lines | "Entries" >> beam.Map(list_entry, folder)
        paths = paths | "SkipBlank" >> beam.Filter(lambda p: p is not None)
    else:
        matched = pipeline | "Match" >> fileio.MatchFiles(
            spec.pattern, empty_match_treatment=EmptyMatchTreatment.ALLOW
        )
        paths = matched | "Paths" >> beam.Map(lambda m: m.path)
    return paths | "Inputs" >> beam.Filter(keep, spec, out)


# ------------------------------------------------------------------------------- tfds


def _tfds_builder(spec: InputSpec):
    import tensorflow_datasets as tfds

    try:
        return tfds.builder(spec.location, data_dir=spec.data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise UsageError(
            f"unknown tfds data set {spec.location!r}; see https://www.tensorflow.org/datasets/"
            "catalog (or give a folder, a glob or a list file)."
        ) from None


def _prepare(spec: InputSpec, builder) -> None:
    """Prepares a tfds data set the way ``inception eval`` does (ImageNet's manual tars and an
    unreachable download are one sentence each)."""
    from ..data.sources import load_source

    try:
        load_source(f"{TFDS}{spec.location}", spec.split, data_dir=spec.data_dir)
    except UsageError:
        if not builder.is_prepared():
            raise
    # prepared; its labels (or their absence) do not matter here


def image_key(builder) -> str:
    """The image feature: the supervised keys' image, else the data set's only image."""
    import tensorflow_datasets as tfds

    info = builder.info
    if info.supervised_keys and isinstance(
        info.features[info.supervised_keys[0]], tfds.features.Image
    ):
        return info.supervised_keys[0]
    images = [k for k, f in info.features.items() if isinstance(f, tfds.features.Image)]
    if len(images) != 1:
        raise UsageError(
            f"tfds data set {builder.name!r} has {len(images) or 'no'} image features "
            f"({', '.join(images) or 'none'}); batch-predict needs exactly one."
        )
    return images[0]


def tfds_count(spec: InputSpec) -> int:
    """Examples in the split (the data set is prepared first if it is not)."""
    builder = _tfds_builder(spec)
    if not builder.is_prepared():
        _prepare(spec, builder)
        builder = _tfds_builder(spec)
    image_key(builder)
    try:
        return int(builder.info.splits[spec.split].num_examples)
    except (KeyError, ValueError):
        raise UsageError(
            f"tfds data set {spec.location!r} has no split {spec.split!r}; it has "
            f"{', '.join(builder.info.splits)}."
        ) from None


def tfds_jobs(spec: InputSpec, count: int, num_shards: int, todo) -> list[ShardJob]:
    """A job for each shard of ``todo``: its contiguous range of the ``count`` examples."""
    spans = ranges(count, num_shards)
    return [
        ShardJob(s, tfds=TfdsRange(spec.location, spec.split, spec.data_dir, *spans[s]))
        for s in todo
    ]


# ------------------------------------------------------------------------------- reading


def read_file(path: str) -> Item:
    """The bytes of one file (any filesystem Beam reads); a failure is the row's error."""
    from apache_beam.io.filesystems import CompressionTypes, FileSystems

    try:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            return Item(path, f.read())
    except Exception as exc:  # noqa: BLE001  (any read failure is reported on its row)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return Item(path, error=f"cannot read the file: {reason}")


def read_tfds(part: TfdsRange) -> Iterator[Item]:
    """The encoded images of a tfds range, in order, named ``tfds:NAME:SPLIT[INDEX]``."""
    import tensorflow_datasets as tfds

    spec = InputSpec("tfds", part.name, part.split, part.data_dir)
    builder = _tfds_builder(spec)
    key = image_key(builder)
    ds = builder.as_dataset(
        split=f"{part.split}[{part.start}:{part.stop}]",
        shuffle_files=False,
        decoders={key: tfds.decode.SkipDecoding()},
        read_config=tfds.ReadConfig(try_autocache=False),
    )
    for index, example in enumerate(ds.map(lambda ex: ex[key]).as_numpy_iterator()):
        yield Item(f"{TFDS}{part.name}:{part.split}[{part.start + index}]", bytes(example))


def read_items(job: ShardJob) -> Iterator[Item]:
    """The items of a shard, one at a time (memory: one chunk of images at most)."""
    if job.tfds is not None:
        yield from read_tfds(job.tfds)
    else:
        for path in job.paths:
            yield read_file(path)
