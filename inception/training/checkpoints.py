"""Checkpoints: Keras' own ``.weights.h5`` files, one per saved step, on both backends.

``checkpoints/ckpt-<step>.weights.h5`` is ``model.save_weights`` of the compiled model, which
holds the layers' weights (BN moving statistics included) and the optimizer's variables: step
counter, RMSProp slots, moving averages of the weights (and the loss scale under float16). A
checkpoint is written under a temporary name, flushed to disk and renamed, so a crash or
``kill -9`` leaves either the previous checkpoint or the new one, never half a file. The newest
``keep`` checkpoints are kept.

A full disk: h5py cannot be trusted to fail cleanly when a write runs out of space (it may crash
the process after the error), so the free space is checked against the size the file will have
before anything is written, and a write that fails anyway (``OSError``) has its partial file
removed; both end in one :class:`DiskFullError` that names the folder, the step and the last
good checkpoint. :func:`guarded_write` does the same for the final ``model.keras``.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import h5py
import keras
import numpy as np

from ..errors import UsageError

_NAME = re.compile(r"^ckpt-(\d+)\.weights\.h5$")
MIB = 1 << 20
SLACK = 1.1  # file size over the raw bytes of the variables (HDF5 / zip metadata)
MARGIN = 16 * MIB  # left free besides


class DiskFullError(RuntimeError):
    """A checkpoint or the trained model could not be written (no space, or a write error);
    the partial file is removed and the last good checkpoint left as it was."""


def variables_bytes(variables) -> int:
    """Bytes of the values of ``variables`` (what a ``.weights.h5`` / ``.keras`` file holds,
    without its metadata)."""
    total = 0
    for v in variables:
        count = 1
        for dim in v.shape:
            count *= int(dim)
        total += count * _itemsize(v.dtype)
    return total


def _itemsize(dtype) -> int:
    name = keras.backend.standardize_dtype(dtype)
    return 2 if name == "bfloat16" else np.dtype(name).itemsize


def _is_disk_full(exc: BaseException) -> bool:
    text = str(exc)
    return getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or any(
        m in text for m in ("No space left", "errno = 28", "Disk quota exceeded")
    )


def guarded_write(
    path, write: Callable[[], object], needed: int, what: str, latest: Path | None
) -> None:
    """Runs ``write()`` (which writes ``path``) if the folder of ``path`` has ``needed`` bytes
    free (with some slack); removes ``path`` if the write fails. Raises :class:`DiskFullError`
    naming ``what`` (e.g. "the checkpoint of step 20") and the ``latest`` good checkpoint."""
    path = Path(path)
    folder = path.parent
    last = f"the last good checkpoint is {latest}" if latest else "no checkpoint was saved yet"
    want = int(needed * SLACK) + MARGIN
    free = shutil.disk_usage(folder).free
    if free < want:
        raise DiskFullError(
            f"not enough free space in {folder} to write {what} (about {_mib(want)} needed, "
            f"{_mib(free)} free); nothing was written and {last}: free some space (or keep fewer "
            "checkpoints with --keep-checkpoints N, or use a --model-dir on another disk), then "
            "rerun the same command to resume."
        )
    try:
        write()
    except OSError as exc:
        path.unlink(missing_ok=True)
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        cause = "the disk is full" if _is_disk_full(exc) else f"the write failed ({first})"
        raise DiskFullError(
            f"could not write {what} to {folder}: {cause}; the partial file was removed and "
            f"{last}: free some space (or keep fewer checkpoints with --keep-checkpoints N, or "
            "use a --model-dir on another disk), then rerun the same command to resume."
        ) from None
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def _mib(n: int) -> str:
    return f"{n / MIB:.0f} MiB" if n >= 10 * MIB else f"{n / MIB:.1f} MiB"


class Checkpoints:
    """The checkpoints of one run in ``folder``; only a ``writer`` writes (the chief)."""

    def __init__(self, folder, keep: int = 5, writer: bool = True):
        self.folder = Path(folder)
        self.keep = max(1, int(keep))
        self.writer = writer

    def steps(self) -> list[int]:
        if not self.folder.is_dir():
            return []
        found = (_NAME.match(p.name) for p in self.folder.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def path(self, step: int) -> Path:
        return self.folder / f"ckpt-{int(step)}.weights.h5"

    def latest(self) -> Path | None:
        steps = self.steps()
        return self.path(steps[-1]) if steps else None

    def size_estimate(self, model) -> int:
        """Bytes a checkpoint of ``model`` takes: the newest checkpoint's size, or the bytes of
        the model's and the optimizer's variables when there is none yet."""
        optimizer = getattr(model, "optimizer", None)
        variables = list(model.weights) + (list(optimizer.variables) if optimizer else [])
        latest = self.latest()
        previous = latest.stat().st_size if latest is not None and latest.exists() else 0
        return max(previous, variables_bytes(variables))

    def save(self, model, step: int) -> Path | None:
        """Writes ``model`` (with its optimizer) as the checkpoint of ``step``; raises
        :class:`DiskFullError` (nothing left behind) when the disk cannot hold it."""
        if not self.writer:
            return None
        self.folder.mkdir(parents=True, exist_ok=True)
        final = self.path(step)
        partial = self.folder / f"partial-{os.getpid()}.weights.h5"

        def write():
            model.save_weights(partial)
            with h5py.File(partial, "a") as f:
                f.attrs["step"] = int(step)
            with open(partial, "rb") as f:
                os.fsync(f.fileno())

        guarded_write(partial, write, self.size_estimate(model),
                      f"the checkpoint of step {int(step)}", self.latest())  # fmt: skip
        os.replace(partial, final)
        for old in self.steps()[: -self.keep]:
            self.path(old).unlink(missing_ok=True)
        return final

    def restore(self, model, path: Path) -> int:
        """Loads checkpoint ``path`` into the compiled ``model`` (its optimizer built first);
        returns the step it was saved at."""
        optimizer = model.optimizer
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
        try:
            with h5py.File(path, "r") as f:  # Keras only warns when these differ
                saved = len(f["optimizer/vars"]) if "optimizer/vars" in f else 0
            if saved != len(optimizer.variables):
                raise ValueError(f"{saved} optimizer variables, this run has "
                                 f"{len(optimizer.variables)}")  # fmt: skip
            model.load_weights(path)
        except (ValueError, OSError, KeyError) as exc:
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            raise UsageError(
                f"checkpoint {path} does not fit this run ({first}); it was written with another "
                "--model, --precision, recipe or data set: use a new --model-dir, or the "
                "options of the run that wrote it."
            ) from None
        return int(keras.ops.convert_to_numpy(optimizer.iterations))

    def clean_partial(self) -> None:
        """Removes what a killed run left half-written."""
        if self.writer and self.folder.is_dir():
            for partial in self.folder.glob("partial-*.weights.h5"):
                partial.unlink(missing_ok=True)
