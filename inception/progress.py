"""Progress of a long job, in the form that fits where the output goes.

* a terminal: a live bar (``\\r`` updates) with the count, the rate and the ETA;
* a file or a pipe (a log): a plain line every ``every`` seconds (30 by default) and one at the
  end; no ``\\r``, no escape codes;
* ``quiet``: nothing.

Rates and ETAs are measured from the first update on (the first step's graph tracing and
compilation is left out), so the first ETA is not inflated by start-up. A caller that measures
its own rate (``inception eval``: images/s after the first forward pass, the number of its final
table) passes it to ``update``/``close``, so the progress shows the same measure.
"""

from __future__ import annotations

import sys
import time

LOG_EVERY_S = 30.0


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """``update(done)`` as work completes, ``close()`` at the end.

    Args:
        total: units of work in all (``None`` if unknown: no ETA).
        unit: what is counted ("images", "steps").
        label: a word or two in front of each line ("eval").
        stream: where to write (default ``sys.stderr``).
        mode: ``"bar"``, ``"lines"`` or ``"none"``; default ``"bar"`` on a terminal, else
            ``"lines"``.
        every: seconds between lines in ``"lines"`` mode.
    """

    def __init__(self, total=None, unit="images", *, label="", stream=None, mode=None,
                 every=LOG_EVERY_S):  # fmt: skip
        self.stream = stream or sys.stderr
        if mode is None:
            isatty = getattr(self.stream, "isatty", lambda: False)
            mode = "bar" if isatty() else "lines"
        if mode not in ("bar", "lines", "none"):
            raise ValueError(f"progress mode must be bar, lines or none; got {mode!r}.")
        self.total, self.unit, self.label, self.mode, self.every = total, unit, label, mode, every
        self.start = time.perf_counter()
        self._first = None  # (time, done) at the first update: the steady-state origin
        self._last_line = self.start
        self._rate = None  # the caller's own measure, if it passes one
        self.done = 0

    def rate(self) -> float:
        """The rate last passed to ``update``/``close``; else units per second since the first
        update, when that covers most of the run, else since the start (a run whose work all
        completed at once has no steady state)."""
        if self._rate is not None:
            return self._rate
        now = time.perf_counter()
        overall = self.done / max(now - self.start, 1e-9)
        if self._first is None or self.done <= self._first[1]:
            return overall
        t0, n0 = self._first
        if now - t0 < 0.25 * (now - self.start):
            return overall
        return (self.done - n0) / max(now - t0, 1e-9)

    def text(self, extra: str = "") -> str:
        rate = self.rate()
        count = f"{self.done}/{self.total}" if self.total else f"{self.done}"
        parts = [f"{count} {self.unit}", f"{rate:.1f} {self.unit}/s"]
        if self.total and rate > 0 and self._first is not None:
            parts.append(f"ETA {_duration((self.total - self.done) / rate)}")
        parts.append(f"elapsed {_duration(time.perf_counter() - self.start)}")
        head = f"{self.label}: " if self.label else ""
        return head + ", ".join(parts) + (f", {extra}" if extra else "")

    def update(self, done: int, extra: str = "", rate: float | None = None) -> None:
        """``done`` units so far; ``rate``: the caller's units per second (default: measured
        here)."""
        self.done = int(done)
        self._rate = rate
        now = time.perf_counter()
        if self._first is None:
            self._first = (now, self.done)
        if self.mode == "bar":
            self._draw(extra)
        elif self.mode == "lines" and now - self._last_line >= self.every:
            self._last_line = now
            self.stream.write(self.text(extra) + "\n")
            self.stream.flush()

    def _draw(self, extra: str) -> None:
        width = 24
        filled = int(width * self.done / self.total) if self.total else 0
        bar = f"[{'=' * filled}{'.' * (width - filled)}] " if self.total else ""
        self.stream.write(f"\r{bar}{self.text(extra)}   ")
        self.stream.flush()

    def close(self, extra: str = "", rate: float | None = None) -> None:
        """Ends the output; ``rate``: the caller's final units per second (the bar is redrawn
        with it)."""
        if rate is not None:
            self._rate = rate
        if self.mode == "bar":
            if rate is not None and self.done:
                self._draw(extra)
            self.stream.write("\n")
        elif self.mode == "lines" and self.done:
            self.stream.write(self.text(extra) + " (done)\n")
        if self.mode != "none":
            self.stream.flush()
