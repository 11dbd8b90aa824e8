"""The ``ModelHandler`` through which Beam's ``RunInference`` runs the scorer.

``load_model`` resolves and builds the model once per worker process (``RunInference`` shares
it between the threads of a process); ``run_inference`` takes a shard, reads its images in
chunks of ``chunk`` (memory: one chunk of encoded images and one micro-batch of crops at most),
scores each chunk and returns the shard's rows as one ``PredictionResult``. The element is the
shard rather than the image so that a shard is scored and written by one worker in one step: its
file is complete as soon as it exists, and no shuffle of the rows stands between the model and
the output (with images as elements the rows of a shard would have to be regrouped, a barrier
behind which nothing is written before every image is scored).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice

from apache_beam.ml.inference import base
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from .scoring import ModelSpec, Scorer
from .shards import ShardJob
from .sources import read_items

NAMESPACE = "inception.batch_predict"

if getattr(base, "resource", True) is None:  # pragma: no cover  (depends on the platform)
    # Beam imports ``resource`` together with its model manager, which needs PyTorch; without
    # PyTorch its memory probe logs a warning at every model load. The module is there on POSIX.
    try:
        import resource

        base.resource = resource
    except ImportError:
        pass


def quiet_tensorflow_import() -> None:
    """A worker process imports TensorFlow with its start-up lines off stderr, as the command
    line does (``INCEPTION_VERBOSE=1`` shows them)."""
    if "tensorflow" in sys.modules or os.environ.get("INCEPTION_VERBOSE"):
        return
    from .._imports import stderr_silenced

    with stderr_silenced():
        import tensorflow  # noqa: F401


def chunks(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


class ShardModelHandler(ModelHandler[ShardJob, PredictionResult, Scorer]):
    """``RunInference`` over ``ShardJob`` elements, one shard per call."""

    def __init__(self, spec: ModelSpec, chunk: int = 64):
        super().__init__(min_batch_size=1, max_batch_size=1)  # batching: the chunks inside
        self.spec, self.chunk = spec, int(chunk)

    def load_model(self) -> Scorer:
        quiet_tensorflow_import()
        return Scorer(self.spec)

    def run_inference(
        self, batch: Sequence[ShardJob], model: Scorer, inference_args=None
    ) -> Iterable[PredictionResult]:
        for job in batch:
            rows = []
            for items in chunks(read_items(job), self.chunk):
                rows += model.score(items)
            yield PredictionResult(job, rows)

    def get_num_bytes(self, batch: Sequence[ShardJob]) -> int:
        return sum(len(job) for job in batch)  # images, not bytes: the data are read inside

    def get_metrics_namespace(self) -> str:
        return NAMESPACE
