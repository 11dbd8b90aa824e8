"""The fixed assignment of inputs to shards, and the unit of work: one shard.

A file belongs to shard ``crc32(path) % num_shards``: a stable hash of its full path, the same
in every run, on every worker and whatever the order in which files are listed, so a rerun
recomputes exactly the shards it did not finish. A tfds split is cut into contiguous ranges of
examples (shard ``i`` of ``n`` examples: ``[i * n // S, (i + 1) * n // S)``).

A shard is scored and written as a whole by one worker (``ShardJob``): its rows appear in the
output all at once or not at all, whatever happens to the other shards.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

FORMATS = {"jsonl": ".jsonl", "parquet": ".parquet"}
LOCAL_RUNNER = "DirectRunner"  # Beam's local engine, the FnApiRunner (see pipeline.py)
RUNNING_MODES = ("in_memory", "multi_threading", "multi_processing")  # its --direct_running_mode


def shard_of(path: str, num_shards: int) -> int:
    """The shard of a file: a stable hash of its path (not Python's ``hash``, which changes
    from process to process)."""
    return zlib.crc32(path.encode("utf-8")) % num_shards


def ranges(count: int, num_shards: int) -> list[tuple[int, int]]:
    """``num_shards`` contiguous ``[start, stop)`` ranges covering ``range(count)``."""
    return [(i * count // num_shards, (i + 1) * count // num_shards) for i in range(num_shards)]


def shard_name(shard: int, num_shards: int, fmt: str) -> str:
    """``part-00003-of-00016.jsonl``: the file a finished shard is written to."""
    return f"part-{shard:05d}-of-{num_shards:05d}{FORMATS[fmt]}"


@dataclass(frozen=True)
class TfdsRange:
    """Examples ``[start, stop)`` of a prepared tfds split."""

    name: str
    split: str
    data_dir: str | None
    start: int
    stop: int


@dataclass(frozen=True)
class ShardJob:
    """One shard to score: its files (sorted), or its range of a tfds split."""

    shard: int
    paths: tuple[str, ...] = ()
    tfds: TfdsRange | None = None

    def __len__(self) -> int:
        return self.tfds.stop - self.tfds.start if self.tfds else len(self.paths)


def job_of(grouped) -> ShardJob:
    """``(shard, paths)`` from a ``GroupByKey`` -> a ``ShardJob`` (``None`` entries mark a shard
    that must be written even when no file falls into it)."""
    shard, paths = grouped
    return ShardJob(int(shard), tuple(sorted(p for p in paths if p is not None)))
