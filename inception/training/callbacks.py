"""The callbacks ``train()`` gives ``model.fit``: stop at the exact last step, stop on divergence,
checkpoint at the end of every period, and write ``metrics.jsonl``.

``fit`` runs in periods: its "epochs" are ``checkpoint_every`` steps long, so that at their end
the weights are where a checkpoint can read them (on JAX ``fit`` keeps them inside the jitted
step until then) and validation can run. Each callback counts the global step itself, from the
step the run resumed at.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import keras
import numpy as np

from .checkpoints import Checkpoints

AUX_OUTPUT = "AuxLogits"  # the auxiliary head's layers (TF-slim's names)


class TrainingDivergedError(RuntimeError):
    """The loss or the weights became NaN or Inf; the last good checkpoint is left as it was."""


def plain_metrics(logs: dict) -> dict:
    """``loss``, ``top1``, ``top5`` and, with the auxiliary head, ``aux_loss`` (the head's own
    loss, before its weight), and their ``val_`` forms, from Keras' logs, whose names carry the
    output's name (``Logits.Logits_top1``, ``AuxLogits.Logits_loss``) when the model has two."""
    out = {}
    for key, value in (logs or {}).items():
        prefix = "val_" if key.startswith("val_") else ""
        if key.startswith(prefix + AUX_OUTPUT) and key.endswith("_loss"):
            out[prefix + "aux_loss"] = float(value)
        for name in ("loss", "top1", "top5"):
            if key == prefix + name or (name != "loss" and key.endswith("_" + name)):
                out[prefix + name] = float(value)
    return out


class StepCallback(keras.callbacks.Callback):
    """A callback that knows the global step: ``start`` plus the training steps run since."""

    def __init__(self, start: int = 0):
        super().__init__()
        self.step = int(start)

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        self.on_step_end(self.step, logs or {})

    def on_step_end(self, step: int, logs: dict) -> None:
        pass


class StopAtStep(StepCallback):
    """Ends ``fit`` after step ``total`` (periods need not divide the run)."""

    def __init__(self, start: int, total: int):
        super().__init__(start)
        self.total = int(total)

    def on_step_end(self, step, logs):
        if step >= self.total:
            self.model.stop_training = True


class StopOnDivergence(StepCallback):
    """Raises :class:`TrainingDivergedError` when the loss is NaN or Inf, before anything of
    that step is saved: checked every ``every`` steps (reading the loss waits for the step to
    finish, which an accelerator would rather not do every step) and at the end of every period,
    before its checkpoint."""

    def __init__(self, start: int, checkpoints: Checkpoints, every: int = 1):
        super().__init__(start)
        self.checkpoints, self.every = checkpoints, max(1, int(every))

    def on_step_end(self, step, logs):
        if step % self.every == 0:
            self.check(logs)

    def on_epoch_end(self, epoch, logs=None):
        self.check(logs or {})

    def check(self, logs):
        loss = float(logs.get("loss", 0.0))
        if not math.isfinite(loss):
            raise diverged(f"loss became {loss}", self.step, self.checkpoints)


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) during a run; its message says the step reached and the step a rerun
    resumes from (the newest checkpoint's)."""

    def __init__(self, step: int | None, checkpoints: Checkpoints):
        saved = checkpoints.steps()
        resume = saved[-1] if saved else 0
        step = resume if step is None else int(step)  # None: before the run got to its start
        note = "" if saved else " (no checkpoint was saved yet)"
        super().__init__(
            f"interrupted at step {step}; rerun the same command to resume from step {resume}{note}"
        )
        self.step, self.resume_step = step, resume


def diverged(what: str, step: int, checkpoints: Checkpoints) -> TrainingDivergedError:
    latest = checkpoints.latest()
    return TrainingDivergedError(
        f"{what} at step {step}; stopped without saving. The last good checkpoint is "
        f"{latest or '(none yet)'}: lower the learning rate (--recipe) or check the data, then "
        "rerun to resume."
    )


class PeriodCheckpoint(StepCallback):
    """Saves a checkpoint at the end of every period (and of the run), if the weights are
    finite: a step whose gradient was NaN leaves a finite loss but NaN weights."""

    def __init__(self, start: int, checkpoints: Checkpoints):
        super().__init__(start)
        self.checkpoints = checkpoints
        self.saved = int(start)

    def on_epoch_end(self, epoch, logs=None):
        if self.step == self.saved:
            return
        if not all(np.isfinite(keras.ops.convert_to_numpy(w)).all() for w in self.model.weights):
            raise diverged("the weights became NaN or Inf", self.step, self.checkpoints)
        self.checkpoints.save(self.model, self.step)
        self.saved = self.step


class MetricsLog(StepCallback):
    """Appends one JSON record per ``every`` steps to ``metrics.jsonl``: ``step``, ``loss``,
    ``top1``, ``top5`` (percent), ``aux_loss`` with the auxiliary head (means over the current
    period as Keras reports them), ``lr``,
    ``images_per_sec`` (since the previous record; a run's first record includes compiling),
    ``time``; and one validation record per validation: ``step``, ``val_loss``, ``val_top1``,
    ``val_top5``, ``time``."""

    def __init__(self, path, start, total, global_batch, learning_rate, every=1):
        super().__init__(start)
        self.path, self.total, self.every = Path(path), int(total), max(1, int(every))
        self.global_batch, self.learning_rate = int(global_batch), learning_rate
        self.last = None
        self.record = {}

    def on_train_begin(self, logs=None):
        self.last = (self.step, time.perf_counter())

    def on_step_end(self, step, logs):
        if step % self.every and step != self.total:
            return
        now = time.perf_counter()
        done, then = self.last
        self.last = (step, now)
        self.record = {
            "step": step,
            **plain_metrics(logs),
            "lr": float(keras.ops.convert_to_numpy(self.learning_rate(step - 1))),
            "images_per_sec": (step - done) * self.global_batch / max(now - then, 1e-9),
            "time": time.time(),
        }
        self._write(self.record)

    def on_epoch_end(self, epoch, logs=None):
        values = {k: v for k, v in plain_metrics(logs).items() if k.startswith("val_")}
        if values:
            self._write({"step": self.step, **values, "time": time.time()})

    def _write(self, record: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


def truncate_metrics(path: Path, step: int) -> None:
    """Keeps the records of steps ``<= step`` (the checkpoint resumed from): the steps a killed
    run logged after its last checkpoint run again, and a line cut by the kill is dropped, so
    ``metrics.jsonl`` holds each step once."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line + "\n")
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(kept))
    os.replace(tmp, path)
