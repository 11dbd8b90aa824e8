"""The output folder: shards, the record of finished shards, and the manifest.

::

    OUT/manifest.json                  the run: input, model, options, shard count, finished ids
    OUT/part-00003-of-00016.jsonl      a finished shard (or .parquet)
    OUT/_finished/part-00003-of-00016.json   its record: rows and errors, written after it
    OUT/_temporary/...                 shards being written (cleared when a run starts)

A shard is written under a temporary name and renamed when complete, then its record is
written: a shard without a record is unfinished, whatever files it left, and a rerun writes it
again under the same name (so no row ever appears twice). The manifest is written before the
pipeline starts; a rerun compares it with its own and resumes only when input, model and options
are the same. Everything goes through Beam's ``FileSystems``, so ``OUT`` may be a ``gs://``,
``s3://`` or ``hdfs://`` folder as well as a local one.
"""

from __future__ import annotations

import json
import re
import uuid

from ..errors import UsageError
from .shards import shard_name
from .writers import encode

MANIFEST = "manifest.json"
FINISHED = "_finished"
TEMPORARY = "_temporary"
PART = re.compile(r"part-\d{5}-of-\d{5}\.(jsonl|parquet)")
MANIFEST_VERSION = 1
SHOWN = 3  # foreign files named in a refusal
WORDS = {  # a manifest's keys as a refusal names them
    "models": "model", "top_k": "--top-k", "class_names": "class names (digest)",
    "num_classes": "--classes", "image_size": "--image-size", "num_shards": "--num-shards",
    "output_format": "--output-format",
}  # fmt: skip


def _fs():
    from apache_beam.io.filesystems import FileSystems

    return FileSystems


def _write(path: str, data: bytes) -> None:
    from apache_beam.io.filesystems import CompressionTypes

    with _fs().create(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        f.write(data)


def _read(path: str) -> bytes:
    from apache_beam.io.filesystems import CompressionTypes

    with _fs().open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        return f.read()


class Output:
    """The output folder ``root`` (absolute when local)."""

    def __init__(self, root: str):
        self.root = root.rstrip("/") or "/"

    def path(self, *parts: str) -> str:
        return _fs().join(self.root, *parts)

    # ------------------------------------------------------------------------- what is there

    def listing(self) -> list[str]:
        """Every file below the folder, relative to it (``[]``: none, or no folder)."""
        (found,) = _fs().match([self.path("**")])
        start = len(self.root.rstrip("/")) + 1
        return sorted(m.path[start:] for m in found.metadata_list)

    @staticmethod
    def ours(name: str) -> bool:
        """Whether a file below the folder is one batch-predict writes."""
        return (
            name == MANIFEST
            or PART.fullmatch(name) is not None
            or name.startswith((FINISHED + "/", TEMPORARY + "/"))
        )

    def manifest(self) -> dict | None:
        path = self.path(MANIFEST)
        if not _fs().exists(path):
            return None
        try:
            return json.loads(_read(path))
        except ValueError:
            raise UsageError(
                f"{path} is not readable JSON; pass --overwrite to replace that output, or give "
                "another --out."
            ) from None

    def finished(self) -> dict[int, dict]:
        """The records of the finished shards, by shard id (a broken record: unfinished)."""
        (found,) = _fs().match([self.path(FINISHED, "part-*.json")])
        records = {}
        for m in found.metadata_list:
            try:
                record = json.loads(_read(m.path))
                records[int(record["shard"])] = record
            except (ValueError, KeyError, TypeError, OSError):
                continue
        return records

    # --------------------------------------------------------------------- before the run

    def prepare(self, record: dict, overwrite: bool) -> dict[int, dict]:
        """Checks the folder against this run's ``record`` (input, model, options), writes the
        manifest and returns the shards already finished. Files batch-predict did not write are
        never replaced, even with ``overwrite``; another run's output is replaced only with it.
        """
        names = self.listing()
        foreign = [n for n in names if not self.ours(n)]
        if foreign:
            shown = ", ".join(foreign[:SHOWN]) + (" ..." if len(foreign) > SHOWN else "")
            raise UsageError(
                f"--out {self.root} already holds {len(foreign)} file(s) that batch-predict did "
                f"not write ({shown}); give a new or empty folder (they are never replaced, "
                "even with --overwrite)."
            )
        old = self.manifest() if names else None
        if names and not overwrite:
            difference = mismatch(old, record)
            if difference:
                raise UsageError(
                    f"--out {self.root} holds the predictions of another run ({difference}); "
                    "pass --overwrite to replace them, or give another --out."
                )
        elif names:
            self.remove_all(names)
        self._dirs()
        self.clear_temporary()
        done = {s: r for s, r in self.finished().items() if s < record["num_shards"]}
        self.write_manifest(record, done)
        return done

    def _dirs(self) -> None:
        for folder in (self.root, self.path(FINISHED), self.path(TEMPORARY)):
            if not _fs().exists(folder):
                _fs().mkdirs(folder)

    def clear_temporary(self) -> None:
        """Removes what a stopped run left half-written."""
        (found,) = _fs().match([self.path(TEMPORARY, "*")])
        if found.metadata_list:
            _fs().delete([m.path for m in found.metadata_list])

    def remove_all(self, names: list[str]) -> None:
        """``--overwrite``: removes another run's files (only those batch-predict writes)."""
        _fs().delete([self.path(n) for n in names if self.ours(n)])

    def write_manifest(self, record: dict, finished: dict[int, dict]) -> None:
        body = {
            **record,
            "finished": sorted(finished),
            "rows": sum(r["rows"] for r in finished.values()),
            "errors": sum(r["errors"] for r in finished.values()),
        }
        temporary = self.path(TEMPORARY, f"{MANIFEST}.{uuid.uuid4().hex}")
        _write(temporary, (json.dumps(body, indent=2) + "\n").encode())
        _fs().rename([temporary], [self.path(MANIFEST)])

    # ---------------------------------------------------------------------- on the workers

    def write_shard(self, shard: int, num_shards: int, fmt: str, rows: list[dict]) -> dict:
        """Writes a shard's file under a temporary name, renames it, then records it finished
        (in that order: a record always names a complete file). Returns the record."""
        name = shard_name(shard, num_shards, fmt)
        self._replace(self.path(name), encode(rows, fmt))
        errors = sum(r.get("error") is not None for r in rows)
        record = {"shard": shard, "file": name, "rows": len(rows), "errors": errors}
        marker = self.path(FINISHED, name.rsplit(".", 1)[0] + ".json")
        self._replace(marker, json.dumps(record).encode())
        return record

    def _replace(self, path: str, data: bytes) -> None:
        temporary = self.path(TEMPORARY, f"{path.rsplit('/', 1)[-1]}.{uuid.uuid4().hex}")
        _write(temporary, data)
        if "://" in path and _fs().exists(path):  # a shard rewritten; local renames replace
            _fs().delete([path])
        _fs().rename([temporary], [path])


def mismatch(old: dict | None, new: dict) -> str | None:
    """What differs between an earlier run's manifest and this run's record, in words (``None``:
    the same run)."""
    if old is None:
        return "its manifest.json is missing"
    if old.get("input") != new["input"]:
        return f"input {old.get('input')}, this run: {new['input']}"
    for key, value in new["model"].items():
        before = (old.get("model") or {}).get(key)
        if before != value:
            return f"{WORDS.get(key, key)} {before}, this run: {value}"
    for key in ("num_shards", "output_format"):
        if old.get(key) != new[key]:
            return f"{WORDS[key]} {old.get(key)}, this run: {new[key]}"
    return None
