"""Batch prediction on Apache Beam: ``inception batch-predict`` (docs/batch-prediction.md).

The same command scores a folder on this machine (Beam's local runner, one or several worker
processes) and millions of files on Dataflow, Flink or Spark. The pieces, one module each:

* ``sources``: what the input names (a folder, a glob, a list file of image paths, a tfds
  split) and how each shard's images are read;
* ``shards``: the fixed assignment of inputs to shards and the work unit, ``ShardJob``;
* ``scoring``: a ``Scorer`` that predicts as ``inception predict`` does (same model resolution,
  decoding, crops and runner), so a row's classes are those predict prints for the file;
* ``handler``: the ``ModelHandler`` through which Beam's ``RunInference`` loads the scorer once
  per worker and runs it;
* ``output``: the output folder (shards written under a temporary name and renamed, the record
  of finished shards, the manifest that makes a rerun resume and refuses another run's folder);
* ``writers``: JSON Lines and Parquet rows;
* ``pipeline``: the pipeline, its runner and its options, progress and the final counts.

Apache Beam is an optional extra (``pip install 'inception[beam]'``), imported only when the
command runs: ``import inception`` and ``import inception.batch`` never load it.
"""

from __future__ import annotations

import contextlib
import importlib
import logging

from ..errors import UsageError

BEAM_EXTRA = "pip install 'inception[beam]'"


@contextlib.contextmanager
def _root_warnings_off():
    """Beam's import logs a WARNING through the root logger when the Google Cloud clients are
    absent (they are needed on Dataflow only); it says nothing about a local run."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def require_beam():
    """``import apache_beam``, or one sentence naming the extra that installs it."""
    try:
        with _root_warnings_off():
            beam = importlib.import_module("apache_beam")
            importlib.import_module("apache_beam.io.filesystems")
    except ImportError:
        raise UsageError(
            f"inception batch-predict runs on Apache Beam, which is not installed: {BEAM_EXTRA}."
        ) from None
    return beam
