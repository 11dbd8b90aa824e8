"""Checkpoints: Keras' own ``.weights.h5`` files, one per saved step, on both backends.

``checkpoints/ckpt-<step>.weights.h5`` is ``model.save_weights`` of the compiled model, which
holds the layers' weights (BN moving statistics included) and the optimizer's variables: step
counter, RMSProp slots, moving averages of the weights (and the loss scale under float16). A
checkpoint is written under a temporary name, flushed to disk and renamed, so a crash or
``kill -9`` leaves either the previous checkpoint or the new one, never half a file. The newest
``keep`` checkpoints are kept.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import h5py
import keras

from inception.errors import UsageError

_NAME = re.compile(r"^ckpt-(\d+)\.weights\.h5$")


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

    def save(self, model, step: int) -> Path | None:
        """Writes ``model`` (with its optimizer) as the checkpoint of ``step``."""
        if not self.writer:
            return None
        self.folder.mkdir(parents=True, exist_ok=True)
        final = self.path(step)
        partial = self.folder / f"partial-{os.getpid()}.weights.h5"
        model.save_weights(partial)
        with h5py.File(partial, "a") as f:
            f.attrs["step"] = int(step)
        with open(partial, "rb") as f:
            os.fsync(f.fileno())
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
                "--model, --mixed-precision, recipe or data set: use a new --model-dir, or the "
                "options of the run that wrote it."
            ) from None
        return int(keras.ops.convert_to_numpy(optimizer.iterations))

    def clean_partial(self) -> None:
        """Removes what a killed run left half-written."""
        if self.writer and self.folder.is_dir():
            for partial in self.folder.glob("partial-*.weights.h5"):
                partial.unlink(missing_ok=True)
