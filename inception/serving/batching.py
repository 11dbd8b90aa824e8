"""Dynamic batching across concurrent requests, with TensorFlow Serving's parameters.

Requests for one (model version, signature) wait in a bounded queue. A batch is formed when one
of the ``num_batch_threads`` model threads is free: it takes queued requests in arrival order up
to ``max_batch_size`` rows, waiting at most ``batch_timeout_micros`` after the oldest request for
the batch to fill. Under load the threads are busy, requests accumulate and batches grow on
their own; an idle server runs a lone request at once (with the default timeout of 0), so
batching costs no latency at concurrency 1. A full queue (``max_enqueued_batches`` batches of
rows) answers UNAVAILABLE ("overloaded") instead of growing without bound.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from .errors import from_tensorflow, unavailable


@dataclass
class BatchingParameters:
    """The fields of TF-Serving's ``--batching_parameters_file`` that apply here."""

    max_batch_size: int = 16
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 16
    num_batch_threads: int = 1
    allowed_batch_sizes: list[int] = field(default_factory=list)

    def __post_init__(self):
        if self.max_batch_size < 1 or self.num_batch_threads < 1 or self.max_enqueued_batches < 1:
            raise ValueError(
                "batching parameters max_batch_size, num_batch_threads and max_enqueued_batches "
                "must be at least 1."
            )
        if self.batch_timeout_micros < 0:
            raise ValueError("batching parameter batch_timeout_micros must be >= 0.")
        sizes = self.allowed_batch_sizes
        if sizes and (sorted(sizes) != sizes or sizes[-1] != self.max_batch_size):
            raise ValueError(
                "allowed_batch_sizes must increase and end with max_batch_size "
                f"({self.max_batch_size}); got {sizes}."
            )

    @classmethod
    def parse(cls, text: str) -> BatchingParameters:
        """Parses TF-Serving's text format: ``max_batch_size { value: 16 }`` and repeated
        ``allowed_batch_sizes: 8`` lines; fields it does not use here are accepted and ignored
        (``pad_variable_length_inputs``, ``thread_pool_name``, ...)."""
        text = re.sub(r"#.*", "", text)
        values = {k: int(v) for k, v in re.findall(r"(\w+)\s*\{\s*value\s*:\s*(-?\d+)\s*\}", text)}
        allowed = [int(v) for v in re.findall(r"allowed_batch_sizes\s*:\s*(\d+)", text)]
        known = {
            "max_batch_size",
            "batch_timeout_micros",
            "max_enqueued_batches",
            "num_batch_threads",
        }
        kwargs = {k: v for k, v in values.items() if k in known}
        return cls(**kwargs, allowed_batch_sizes=allowed)

    @classmethod
    def from_file(cls, path: str) -> BatchingParameters:
        with open(path) as f:
            return cls.parse(f.read())

    @property
    def max_queued_rows(self) -> int:
        return self.max_batch_size * self.max_enqueued_batches


@dataclass
class _Item:
    inputs: dict[str, np.ndarray]
    rows: int
    key: tuple
    future: asyncio.Future
    enqueued: float


def _key(inputs: dict[str, np.ndarray]) -> tuple:
    """Requests batch together when every input agrees on dtype and non-batch shape."""
    return tuple(sorted((k, v.dtype.str, v.shape[1:]) for k, v in inputs.items()))


class Batcher:
    """Merges concurrent calls of one signature: ``await submit(inputs, rows)`` -> outputs.

    ``run(inputs) -> outputs`` (NumPy in, NumPy out) runs on ``executor``; ``slots`` is an
    ``asyncio.Semaphore`` shared by every batcher, one permit per model thread.
    """

    def __init__(
        self,
        run,
        params: BatchingParameters,
        executor: Executor,
        slots: asyncio.Semaphore,
        *,
        name: str = "",
        on_batch=None,
        on_queue=None,
    ):
        self._run = run
        self.params = params
        self._executor = executor
        self._slots = slots
        self.name = name
        self._on_batch = on_batch or (lambda size: None)
        self._on_queue = on_queue or (lambda rows: None)
        self._queue: deque[_Item] = deque()
        self._queued_rows = 0
        self._wakeup = asyncio.Event()
        self._closed = False
        self._running = 0
        self._workers = [
            asyncio.ensure_future(self._worker()) for _ in range(params.num_batch_threads)
        ]

    @property
    def queued_rows(self) -> int:
        return self._queued_rows

    async def submit(self, inputs: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
        if self._closed:
            raise unavailable(f"{self.name} is shutting down; retry on another replica.")
        if self._queued_rows and self._queued_rows + rows > self.params.max_queued_rows:
            raise unavailable(
                f"server overloaded: the batch queue of {self.name} is full "
                f"({self._queued_rows} rows waiting, limit {self.params.max_queued_rows}); "
                "retry later."
            )
        item = _Item(
            inputs, rows, _key(inputs), asyncio.get_running_loop().create_future(), time.monotonic()
        )
        self._queue.append(item)
        self._queued_rows += rows
        self._on_queue(self._queued_rows)
        self._wakeup.set()
        return await item.future

    def _take(self) -> list[_Item]:
        """Queued items for one batch: the oldest, then later ones with the same key, in order,
        up to ``max_batch_size`` rows (a request larger than that runs alone)."""
        first = self._queue.popleft()
        batch, rows, rest = [first], first.rows, deque()
        while self._queue:
            item = self._queue.popleft()
            if item.key == first.key and rows + item.rows <= self.params.max_batch_size:
                batch.append(item)
                rows += item.rows
            else:
                rest.append(item)
                if rows >= self.params.max_batch_size:
                    break
        rest.extend(self._queue)
        self._queue = rest
        self._queued_rows -= rows
        self._on_queue(self._queued_rows)
        return batch

    async def _fill(self):
        """With a batch timeout, waits (from the oldest request) for the batch to fill."""
        timeout = self.params.batch_timeout_micros / 1e6
        if timeout <= 0:
            return
        deadline = self._queue[0].enqueued + timeout
        while self._queued_rows < self.params.max_batch_size and not self._closed:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), left)
            except asyncio.TimeoutError:
                return

    async def _worker(self):
        while True:
            while not self._queue:
                if self._closed:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
            async with self._slots:
                if not self._queue:
                    continue
                await self._fill()
                if not self._queue:
                    continue
                batch = self._take()
                self._running += 1
                try:
                    await self._execute(batch)
                finally:
                    self._running -= 1

    async def _execute(self, batch: list[_Item]):
        loop = asyncio.get_running_loop()
        rows = sum(item.rows for item in batch)
        try:
            outputs = await loop.run_in_executor(self._executor, self._run_merged, batch, rows)
        except Exception as exc:  # every error goes back to its request
            error = from_tensorflow(exc)
            if len(batch) > 1 and error.code.name == "INVALID_ARGUMENT":
                # One bad request must not fail the others: retry each on its own.
                for item in batch:
                    await self._execute([item])
                return
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(error)
            return
        start = 0
        for item in batch:
            if not item.future.done():
                item.future.set_result(
                    {k: v[start : start + item.rows] for k, v in outputs.items()}
                )
            start += item.rows

    def _padded_size(self, rows: int) -> int:
        for size in self.params.allowed_batch_sizes:
            if size >= rows:
                return size
        return rows

    def _run_merged(self, batch: list[_Item], rows: int) -> dict[str, np.ndarray]:
        if len(batch) == 1:
            inputs = batch[0].inputs
        else:
            inputs = {
                k: np.concatenate([item.inputs[k] for item in batch]) for k in batch[0].inputs
            }
        padded = self._padded_size(rows)
        if padded > rows:  # TF-Serving pads to an allowed size by repeating the last row
            inputs = {
                k: np.concatenate([v, np.repeat(v[-1:], padded - rows, axis=0)])
                for k, v in inputs.items()
            }
        self._on_batch(rows)
        outputs = self._run(inputs)
        return {k: v[:rows] for k, v in outputs.items()}

    async def close(self):
        """Stops taking requests and finishes every queued and running one."""
        self._closed = True
        self._wakeup.set()
        await asyncio.gather(*self._workers, return_exceptions=True)

    def __repr__(self):
        return f"Batcher({self.name!r}, queued_rows={self._queued_rows})"
