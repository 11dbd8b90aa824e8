"""Progress that suits where it goes: a live bar on a terminal (Keras' ``Progbar``), plain lines in
a log file.

In a log (stdout not a terminal) a line is printed every ``interval`` seconds: step/total,
images/s, loss, top-1, and the time left estimated from the speed since the second step (the
first step compiles). Validation results get a line of their own, and a background thread prints
what the run is busy with (compiling, validating) whenever nothing was printed for ``quiet_after``
seconds, so a log is never silent for long. No carriage returns, no terminal codes.
"""

from __future__ import annotations

import sys
import threading
import time

import keras

from .callbacks import StepCallback, plain_metrics

WARMUP_STEPS = 2


def duration(seconds: float) -> str:
    seconds = int(round(max(seconds, 0)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class Progress(StepCallback):
    """Prints the progress of ``fit`` from step ``start`` to ``total``."""

    def __init__(self, start, total, global_batch, stream=None, live=None, interval=20.0,
                 quiet_after=30.0):  # fmt: skip
        super().__init__(start)
        self.start, self.total, self.global_batch = int(start), int(total), int(global_batch)
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty() if live is None else bool(live)
        self.interval, self.quiet_after = float(interval), float(quiet_after)
        self.bar = None
        self.lock = threading.Lock()
        self.phase = "compiling the training step"
        self.printed = self.began = self.steady = None
        self.done = threading.Event()

    def say(self, text: str) -> None:
        with self.lock:
            if self.live and self.bar is not None:
                text = "\n" + text  # below the bar, which redraws on its next update
            self.stream.write(text + "\n")
            self.stream.flush()
            self.printed = time.monotonic()

    def on_train_begin(self, logs=None):
        self.began = self.printed = time.monotonic()
        self.say(f"training from step {self.start} to {self.total} ({self.phase} first)")
        if self.live:
            self.bar = keras.utils.Progbar(self.total, stateful_metrics=["loss", "top1", "img/s"])
        else:
            threading.Thread(target=self._heartbeat, daemon=True).start()

    def on_train_end(self, logs=None):
        self.done.set()

    def on_test_begin(self, logs=None):
        self.phase = "validating"

    def on_test_end(self, logs=None):
        self.phase = "training"

    def on_step_end(self, step, logs):
        now = time.monotonic()
        if step - self.start == WARMUP_STEPS:
            self.steady = (step, now)
        self.phase = "training"
        if self.live:
            values = plain_metrics(logs)
            shown = [(k, values[k]) for k in ("loss", "top1") if k in values]
            self.bar.update(step, shown + [("img/s", self._rate(step, now) or 0.0)])
        elif now - self.printed >= self.interval or step in (self.start + 1, self.total):
            self.say(self._line(step, now, plain_metrics(logs)))  # only now: reading waits

    def on_epoch_end(self, epoch, logs=None):
        values = plain_metrics(logs)
        if "val_top1" in values:
            self.say(
                f"step {self.step}: validation loss {values.get('val_loss', float('nan')):.4f}, "
                f"top-1 {values['val_top1']:.2f}%, top-5 {values.get('val_top5', 0.0):.2f}%"
            )

    def _rate(self, step, now):
        if self.steady is None or step <= self.steady[0]:
            return None
        return (step - self.steady[0]) * self.global_batch / (now - self.steady[1])

    def _line(self, step, now, values):
        rate = self._rate(step, now)
        eta = (
            f"ETA {duration((self.total - step) * self.global_batch / rate)}" if rate else "ETA --"
        )
        parts = [f"step {step}/{self.total}"]
        parts.append(f"{rate:.1f} images/s" if rate else "images/s --")
        if "loss" in values:
            parts.append(f"loss {values['loss']:.4f}")
        if "top1" in values:
            parts.append(f"top-1 {values['top1']:.1f}%")
        parts.append(f"{eta} (elapsed {duration(now - self.began)})")
        return "  ".join(parts)

    def _heartbeat(self):
        while not self.done.wait(1.0):
            if time.monotonic() - self.printed >= self.quiet_after:
                self.say(f"... {self.phase} (step {self.step}/{self.total}, "
                         f"elapsed {duration(time.monotonic() - self.began)})")  # fmt: skip
