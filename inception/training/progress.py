"""Progress that suits where it goes: a live bar on a terminal, plain lines in a log file.

Both count the GLOBAL step against the run's total: ``fit`` runs in periods of
``checkpoint_every`` steps (its "epochs"), and Keras' own progress bar would start again at every
period and show itself full at the end of the first one; a resumed run starts at its step. The bar
is drawn in plain characters (``[#####.....]``), so it reads the same without colours.

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

from .callbacks import StepCallback, plain_metrics

WARMUP_STEPS = 2
BAR_WIDTH = 30
REDRAW_S = 0.1  # the live bar is redrawn at most this often (and at the last step)


def bar(step: int, total: int, width: int = BAR_WIDTH) -> str:
    """``[#####.........]``: ``step`` of ``total`` in ``width`` characters."""
    filled = min(width, width * max(step, 0) // max(total, 1))
    return "[" + "#" * filled + "." * (width - filled) + "]"


def duration(seconds: float) -> str:
    seconds = int(round(max(seconds, 0)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class Progress(StepCallback):
    """Prints the progress of ``fit`` from step ``start`` to ``total``."""

    def __init__(self, start, total, global_batch, stream=None, live=None, interval=20.0,
                 quiet_after=30.0, redraw=REDRAW_S):  # fmt: skip
        super().__init__(start)
        self.start, self.total, self.global_batch = int(start), int(total), int(global_batch)
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty() if live is None else bool(live)
        self.interval, self.quiet_after = float(interval), float(quiet_after)
        self.redraw = float(redraw)
        self.frame = ""  # the live bar as last drawn
        self.drawn = -float("inf")
        self.lock = threading.Lock()
        self.phase = "compiling the training step"
        self.printed = self.began = self.steady = None
        self.done = threading.Event()

    def say(self, text: str) -> None:
        with self.lock:
            if self.live and self.frame:  # over the bar, which is drawn again below
                text = "\r" + " " * len(self.frame) + "\r" + text + "\n" + self.frame
            else:
                text += "\n"
            self.stream.write(text)
            self.stream.flush()
            self.printed = time.monotonic()

    def draw(self, frame: str) -> None:
        """Replaces the live bar's line with ``frame``."""
        with self.lock:
            pad = " " * max(0, len(self.frame) - len(frame))
            self.stream.write("\r" + frame + pad)
            self.stream.flush()
            self.frame, self.drawn = frame, time.monotonic()

    def on_train_begin(self, logs=None):
        self.began = self.printed = time.monotonic()
        self.say(f"training from step {self.start} to {self.total} ({self.phase} first)")
        if not self.live:
            threading.Thread(target=self._heartbeat, daemon=True).start()

    def on_train_end(self, logs=None):
        self.done.set()
        if self.live and self.frame:
            with self.lock:
                self.stream.write("\n")
                self.stream.flush()
                self.frame = ""

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
            if now - self.drawn >= self.redraw or step >= self.total:
                self.draw(self._frame(step, now, plain_metrics(logs)))  # only now: reading waits
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

    def _frame(self, step, now, values):
        """The live bar: ``step 10/60 [#####.........]  17%  loss ...  ETA ...``."""
        head = f"step {step}/{self.total} {bar(step, self.total)} {100 * step // self.total:3d}%"
        return head + "  " + self._line(step, now, values).split("  ", 1)[1]

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
