"""Progress output: a bar on a terminal, plain periodic lines in a log, nothing when quiet."""

import io

import pytest

from inception import progress


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


class Tty(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(progress.time, "perf_counter", c)
    return c


def test_log_lines_every_period_with_steady_state_eta(clock):
    out = io.StringIO()
    bar = progress.Progress(100, "images", label="eval", stream=out, every=30)
    clock.now += 60.0  # the first step: graph tracing, 60 s
    bar.update(1)
    for done in range(2, 101):
        clock.now += 1.0  # then 1 image/s
        bar.update(done)
        if done == 31:
            line = out.getvalue().splitlines()[-1]
            assert line.startswith("eval: 31/100 images, 1.0 images/s, ETA 1:09")
    bar.close()
    text = out.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert len(lines) == 1 + 99 // 30 + 1  # the first update, one every 30 s, the last
    assert lines[-1].endswith("(done)") and "100/100 images" in lines[-1]


def test_bar_on_a_terminal_and_nothing_when_quiet(clock):
    tty = Tty()
    bar = progress.Progress(4, "steps", stream=tty)
    for done in range(1, 5):
        clock.now += 2.0
        bar.update(done, extra="loss 0.5")
    bar.close()
    assert tty.getvalue().count("\r") == 4 and "loss 0.5" in tty.getvalue()
    assert "[========================]" in tty.getvalue()
    quiet = io.StringIO()
    none = progress.Progress(4, stream=quiet, mode="none")
    none.update(4)
    none.close()
    assert quiet.getvalue() == ""
    with pytest.raises(ValueError, match="bar, lines or none"):
        progress.Progress(4, mode="fancy")


def test_work_completed_at_once_has_no_steady_state(clock):
    bar = progress.Progress(8, stream=io.StringIO())
    clock.now += 4.0
    for done in range(1, 9):  # eight images finished by one forward pass
        bar.update(done)
    assert bar.rate() == pytest.approx(2.0)
