"""Running resolved models on images, shared by ``evaluate`` and ``predict``.

* **Crops per preprocessing.** Members are grouped by their ``inception.Preprocessing`` (input
  size, crop fraction and mode, interpolation, scaling); the crops of an image are cut once per
  group, in the ``tf.data`` map, so each model sees exactly the input its weights expect.
* **Bounded memory.** The crops of all images form one stream of rows, cut into micro-batches of
  at most ``rows`` crops (default: 16 at 299 px, the ``INPUT_SIZE``, scaled with the input
  area); each member runs on
  one micro-batch at a time. Memory is bounded by the micro-batch, whatever the number of crops
  (1 to 144) or the images per step, and the per-crop rate is the same at 1 and 144 crops.
* **Every device.** With a ``devices.Placement`` over several devices, each micro-batch is split
  evenly across them (padded to a multiple of the device count, the padding rows dropped); the
  default micro-batch is then the one-device default per device.
* **Common classes.** Every member's output is mapped onto the common classes
  (``inception.models.labels``) as probabilities; an image's probabilities are the mean over its
  crops. The model path is Keras only (``predict_on_batch``), so it runs under TensorFlow and JAX.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import keras
import numpy as np
from keras import ops

from ..models import labels as lb
from ..models.combine import member_probabilities
from ..preprocessing import INPUT_SIZE
from ..preprocessing import crops as crop_lib
from .devices import Placement

ROWS_AT_INPUT_SIZE = 16  # crops per forward pass at INPUT_SIZE x INPUT_SIZE
MAX_ROWS = 256
# A tiny job runs eagerly (tracing a large graph costs seconds); anything bigger is compiled,
# which also holds far less memory: at most 16 crops of 128 x 128 pixels in all.
EAGER_MAX_PIXELS = 16 * 128 * 128


def default_rows(sizes) -> int:
    """Crops per forward pass: 16 at 299x299, more for smaller inputs (same activation memory)."""
    largest = max(int(s) for s in sizes)
    return max(1, min(MAX_ROWS, int(ROWS_AT_INPUT_SIZE * (INPUT_SIZE / largest) ** 2)))


def common_classes(members) -> list[str] | None:
    """The classes of the first member whose classes are known (``None``: none known)."""
    for m in members:
        known = lb.classes_of(m.info, m.num_classes)
        if known is not None:
            return known
    return None


class Runner:
    """Probabilities of each member over ``size`` common classes (``space``: their names, or
    ``None`` to match by position) for every image of a stream.

    Args:
        members: resolved ``inception.app.resolve.Member`` objects.
        crops: the crop scheme (1, 10, 12, 144).
        space, size: the common classes.
        rows: crops per forward pass (default ``default_rows`` per device).
        placement: the devices (``devices.placement``; default one device, nothing distributed).
    """

    def __init__(
        self, members, crops: int, space, size: int, rows=None, against="the others",
        placement: Placement | None = None,
    ):  # fmt: skip
        self.members = list(members)
        self.placement = placement or Placement(keras.backend.backend())
        self.crops = crop_lib.check_scheme(crops)
        self.size = int(size)
        preps = []
        for m in self.members:
            if m.info.preprocessing not in preps:
                preps.append(m.info.preprocessing)
        self.preps = preps
        self.group_of = [preps.index(m.info.preprocessing) for m in self.members]
        self.columns = [
            lb.columns(
                m.info, m.num_classes, space, self.size, f"model {m.name}", against
            )  # fmt: skip
            for m in self.members
        ]
        self.logits = [m.returns_logits for m in self.members]
        for m in self.members:
            self.placement.adopt(m.model)
        if rows is not None and int(rows) < 1:
            raise ValueError(f"--micro-batch must be at least 1; got {rows}.")
        per_device = default_rows(p.input_size for p in preps)
        self.rows = int(rows) if rows else per_device * self.placement.count
        self.n_crops = len(crop_lib.crop_boxes(self.crops, 10, 10)[1])
        self.steady_since = None  # when the first forward pass (which compiles) ended
        self.steady_rows = 0  # crops run since then

    def steady_rate(self) -> float | None:
        """Images per second after the first forward pass (``None`` before a second one): the
        throughput without compiling, counted in crops, so 1 and 144 crops compare fairly."""
        if not self.steady_rows:
            return None
        return self.steady_rows / self.n_crops / max(time.perf_counter() - self.steady_since, 1e-9)

    def eager_for(self, images: int) -> bool:
        """Whether ``images`` images are few and small enough to run without compiling (on one
        device only: a micro-batch split across several always runs compiled)."""
        largest = max(p.input_size for p in self.preps)
        return self.placement.count == 1 and images * self.n_crops * largest**2 <= EAGER_MAX_PIXELS

    def padded(self, count: int) -> int:
        """The rows a compiled forward pass of ``count`` crops runs: the next power of two (at
        most ``rows``), rounded up to a multiple of the device count."""
        devices = self.placement.count
        return -(-min(self.rows, 1 << max(count - 1, 0).bit_length()) // devices) * devices

    def crop(self, image):
        """``tf.data`` map function: one decoded image -> a tuple of ``(n, s, s, 3)`` batches,
        one per preprocessing group (scaled as the group's models expect)."""
        return tuple(crop_lib.extract(image, self.crops, p) for p in self.preps)

    def forward(self, batch, eager: bool = False) -> np.ndarray:
        """``(members, rows, classes)`` probabilities for one micro-batch (a tuple per group).

        A short (last) batch is padded to a power of two, so each model is traced or compiled
        for few shapes, and to a multiple of the device count; the padding rows are dropped."""
        count = len(batch[0])
        padded = count if eager else self.padded(count)
        out = []
        for m, group, cols, logits in zip(self.members, self.group_of, self.columns, self.logits):
            x = batch[group]
            if count < padded:
                x = np.concatenate([x, np.repeat(x[-1:], padded - count, axis=0)])
            y = self.placement.predict(m.model, x, eager)
            y = ops.convert_to_numpy(y[0] if isinstance(y, (list, tuple)) else y)[:count]
            p = ops.convert_to_numpy(member_probabilities(y, cols, logits))
            out.append(p.astype(np.float64))
        if self.steady_since is None:
            self.steady_since = time.perf_counter()
        else:
            self.steady_rows += count
        return np.stack(out)

    def stream(self, dataset, eager: bool = False) -> Iterator[tuple[np.ndarray, object]]:
        """Runs over ``dataset`` of ``(image uint8 (H, W, 3), label)`` pairs, in order; yields
        ``(probabilities (members, classes), label)`` per image (mean over its crops)."""
        import tensorflow as tf

        n = self.n_crops

        def cut(index, pair):
            image, label = pair
            groups = self.crop(image)
            return groups, tf.fill([n], index), tf.fill([n], tf.cast(label, tf.int64))

        # Multi-crop images are large (144 crops at 299 px: 154 MB): two in flight at most.
        parallel = tf.data.AUTOTUNE if n == 1 else 2
        rows = (
            dataset.enumerate()
            .map(cut, num_parallel_calls=parallel, deterministic=True)
            .unbatch()
            .batch(self.rows)
            .prefetch(2)
        )
        sums, labels, counts = {}, {}, {}
        for groups, index, label in rows.as_numpy_iterator():
            probs = self.forward(groups, eager)
            for i in np.unique(index):
                mask = index == i
                sums[i] = sums.get(i, 0.0) + probs[:, mask].sum(axis=1)
                counts[i] = counts.get(i, 0) + int(mask.sum())
                labels[i] = label[mask][0]
            for i in sorted(k for k in sums if counts[k] == n):
                yield sums.pop(i) / n, labels.pop(i)
                del counts[i]
