"""Dynamic batching across concurrent requests, with TensorFlow Serving's parameters.

Requests for one (model version, signature) wait in a bounded queue. A batch is formed when one
of the ``num_batch_threads`` model threads is free: it takes queued requests in arrival order up
to the execution batch size, waiting at most ``batch_timeout_micros`` after the oldest request
for the batch to fill. Under load the threads are busy, requests accumulate and batches grow on
their own; an idle server runs a lone request at once (with the default timeout of 0), so
batching costs no latency at concurrency 1.

Limits, as TF Serving's: a request may carry at most ``max_batch_size`` rows. With
``enable_large_batch_splitting`` such a request is split into batches of
``max_execution_batch_size`` rows (which then bounds what the model runs at once); without it,
``max_batch_size`` is also the execution batch size. A full queue (``max_enqueued_batches``
execution batches of rows) answers UNAVAILABLE ("overloaded") instead of growing. On shutdown
the queue keeps running until a deadline, then answers the rest UNAVAILABLE.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from .codec import check_rows
from .errors import from_tensorflow, unavailable


@dataclass
class BatchingParameters:
    """The fields of TF-Serving's ``--batching_parameters_file`` that apply here."""

    max_batch_size: int = 16
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 16
    num_batch_threads: int = 1
    allowed_batch_sizes: list[int] = field(default_factory=list)
    enable_large_batch_splitting: bool = False
    max_execution_batch_size: int | None = None  # with splitting; default max_batch_size

    def __post_init__(self):
        if self.max_batch_size < 1 or self.num_batch_threads < 1 or self.max_enqueued_batches < 1:
            raise ValueError(
                "batching parameters max_batch_size, num_batch_threads and max_enqueued_batches "
                "must be at least 1."
            )
        if self.batch_timeout_micros < 0:
            raise ValueError("batching parameter batch_timeout_micros must be >= 0.")
        run = self.execution_batch_size
        if not 1 <= run <= self.max_batch_size:
            raise ValueError(
                f"max_execution_batch_size must be between 1 and max_batch_size "
                f"({self.max_batch_size}); got {run}."
            )
        sizes = self.allowed_batch_sizes
        if sizes and (sorted(sizes) != sizes or sizes[-1] != run):
            raise ValueError(
                "allowed_batch_sizes must increase and end with the execution batch size "
                f"({run}: max_execution_batch_size with splitting, else max_batch_size); "
                f"got {sizes}."
            )
        if self.max_batch_size > self.max_queued_rows:
            raise ValueError(
                f"a request of max_batch_size ({self.max_batch_size}) rows would not fit the "
                f"queue of max_enqueued_batches ({self.max_enqueued_batches}) x "
                f"max_execution_batch_size ({run}) rows; raise max_enqueued_batches."
            )

    @classmethod
    def parse(cls, text: str) -> BatchingParameters:
        """Parses TF-Serving's text format: ``max_batch_size { value: 16 }``,
        ``enable_large_batch_splitting { value: true }`` and repeated
        ``allowed_batch_sizes: 8`` lines; fields it does not use here are accepted and ignored
        (``pad_variable_length_inputs``, ``thread_pool_name``, ...)."""
        text = re.sub(r"#.*", "", text)
        pairs = re.findall(r"(\w+)\s*\{\s*value\s*:\s*(-?\d+|true|false|True|False)\s*\}", text)
        allowed = [int(v) for v in re.findall(r"allowed_batch_sizes\s*:\s*(\d+)", text)]
        ints = {
            "max_batch_size",
            "batch_timeout_micros",
            "max_enqueued_batches",
            "num_batch_threads",
            "max_execution_batch_size",
        }
        kwargs = {}
        for k, v in pairs:
            if k in ints:
                kwargs[k] = int(v)
            elif k == "enable_large_batch_splitting":
                kwargs[k] = v.lower() == "true"
        return cls(**kwargs, allowed_batch_sizes=allowed)

    @classmethod
    def from_file(cls, path: str) -> BatchingParameters:
        with open(path) as f:
            return cls.parse(f.read())

    @property
    def execution_batch_size(self) -> int:
        """The most rows the model runs at once."""
        if self.enable_large_batch_splitting and self.max_execution_batch_size:
            return self.max_execution_batch_size
        return self.max_batch_size

    @property
    def max_queued_rows(self) -> int:
        return self.execution_batch_size * self.max_enqueued_batches


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
    ``asyncio.Semaphore`` shared by every batcher, one permit per model thread. ``deadline``
    (``time.monotonic()``), when set, is when queued work stops being started.
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
        deadline: float | None = None,
    ):
        self._run = run
        self.params = params
        self._executor = executor
        self._slots = slots
        self.name = name
        self.deadline = deadline
        self._on_batch = on_batch or (lambda size: None)
        self._on_queue = on_queue or (lambda rows: None)
        self._queue: deque[_Item] = deque()
        self._queued_rows = 0
        self._wakeup = asyncio.Event()
        self._closed = False
        self._expired = False
        self._running = 0
        self._seconds = 0.0  # recent time per batch: what a batch started now needs
        self._workers = [
            asyncio.ensure_future(self._worker()) for _ in range(params.num_batch_threads)
        ]

    @property
    def queued_rows(self) -> int:
        return self._queued_rows

    def _shutting_down(self):
        return unavailable(
            f"the server is shutting down: {self.name} stopped taking work at the end of its "
            "grace period (--grace-seconds); retry on another replica."
        )

    async def submit(self, inputs: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
        if self._closed or self._expired:
            raise self._shutting_down()
        check_rows(rows, self.params.max_batch_size)
        limit = self.params.max_queued_rows
        if self._queued_rows and self._queued_rows + rows > limit:
            raise unavailable(
                f"server overloaded: the batch queue of {self.name} holds {self._queued_rows} "
                f"of its {limit} rows (max_enqueued_batches x execution batch size) and this "
                f"request needs {rows}; retry later."
            )
        step = self.params.execution_batch_size
        starts = range(0, rows, step) if rows > step else [0]
        loop, key, now = asyncio.get_running_loop(), _key(inputs), time.monotonic()
        items = []
        for start in starts:
            count = min(step, rows - start) if rows > step else rows
            part = (
                inputs
                if len(starts) == 1
                else {k: v[start : start + count] for k, v in inputs.items()}
            )
            items.append(_Item(part, count, key, loop.create_future(), now))
        self._queue.extend(items)
        self._queued_rows += rows
        self._on_queue(self._queued_rows)
        self._wakeup.set()
        try:
            if len(items) == 1:  # the usual case, without gather's extra future
                return await items[0].future
            results = await asyncio.gather(*(item.future for item in items))
        except BaseException:
            for item in items:  # the rest of a split request is not run
                item.future.cancel()
            raise
        return {k: np.concatenate([r[k] for r in results]) for k in results[0]}

    def _drop_abandoned(self) -> None:
        kept = deque(item for item in self._queue if not item.future.done())
        self._queued_rows -= sum(item.rows for item in self._queue) - sum(i.rows for i in kept)
        self._queue = kept

    def _take(self) -> list[_Item]:
        """Queued items for one batch: the oldest, then later ones with the same key, in order,
        up to the execution batch size."""
        size = self.params.execution_batch_size
        first = self._queue.popleft()
        batch, rows, rest = [first], first.rows, deque()
        while self._queue:
            item = self._queue.popleft()
            if item.key == first.key and rows + item.rows <= size:
                batch.append(item)
                rows += item.rows
            else:
                rest.append(item)
                if rows >= size:
                    break
        rest.extend(self._queue)
        self._queue = rest
        self._queued_rows -= rows
        self._on_queue(self._queued_rows)
        return batch

    def _expire(self) -> None:
        """Past the deadline: every queued request is answered UNAVAILABLE."""
        self._expired = True
        error = self._shutting_down()
        while self._queue:
            item = self._queue.popleft()
            if not item.future.done():
                item.future.set_exception(error)
        self._queued_rows = 0
        self._on_queue(0)

    def _past_deadline(self) -> bool:
        return self.deadline is not None and time.monotonic() + self._seconds > self.deadline

    async def _fill(self):
        """With a batch timeout, waits (from the oldest request) for the batch to fill."""
        timeout = self.params.batch_timeout_micros / 1e6
        if timeout <= 0:
            return
        deadline = self._queue[0].enqueued + timeout
        while self._queued_rows < self.params.execution_batch_size and not self._closed:
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
                self._drop_abandoned()
                if not self._queue:
                    continue
                await self._fill()
                self._drop_abandoned()
                if not self._queue:
                    continue
                if self._past_deadline():
                    self._expire()
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
        started = time.monotonic()
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
        finally:
            seconds = time.monotonic() - started
            self._seconds = seconds if not self._seconds else 0.5 * (self._seconds + seconds)
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
        """Stops taking requests and finishes the queued and running ones (those still queued
        at ``deadline`` are answered UNAVAILABLE)."""
        self._closed = True
        self._wakeup.set()
        await asyncio.gather(*self._workers, return_exceptions=True)

    def __repr__(self):
        return f"Batcher({self.name!r}, queued_rows={self._queued_rows})"
