"""Training hygiene (issue 17): validation classes matched to the training classes by name, a
one-class folder refused, skipped files named, ``--keep-checkpoints``, the imagenet2012 message
for evaluation without the train tar, a full disk during a checkpoint or the final save, the
progress bar counting the global step, Ctrl-C saying where to resume, and the demo recipe
learning three generated shape classes."""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
import shallow
from helpers import ROOT
from helpers import write_class_folder as write_folder
from PIL import Image, ImageDraw
from shallow import MODEL, shallow_network  # noqa: F401  (autouse: the shallow network)

import inception
from inception.cli import main as cli_main
from inception.cli.train import parser
from inception.data import load_source
from inception.errors import UsageError
from inception.training import backend, load_recipe, loop
from inception.training import checkpoints as checkpoints_module
from inception.training.checkpoints import Checkpoints, DiskFullError
from inception.training.plan import make_plan
from inception.training.progress import BAR_WIDTH, Progress

ENV = shallow.env(
    {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "CUDA_VISIBLE_DEVICES": "",
        "KERAS_BACKEND": "tensorflow",
        "PYTHONPATH": str(ROOT),
    }
)
SHAPES = ("circle", "square", "triangle")


def run_cli(*args):
    return cli_main(["train", *map(str, args)])


def run_small(root, model_dir, *extra):
    """``inception train`` of one step at 75 px on ``root``."""
    args = ("--model", MODEL, "--data", root, "--model-dir", model_dir, "--image-size", 75)
    return run_cli(*args, "--steps", 1, *extra)


def shape_png(kind: str, rng, size: int = 64) -> bytes:
    """A filled circle, square or triangle of a random colour at a random place, on a background
    of another random colour."""
    background = rng.integers(0, 256, 3)
    colour = (background + rng.integers(90, 166, 3)) % 256  # far from the background
    image = Image.new("RGB", (size, size), tuple(int(c) for c in background))
    draw = ImageDraw.Draw(image)
    r = int(rng.integers(size // 4, size * 3 // 8))
    x, y = (int(v) for v in rng.integers(r + 2, size - r - 2, 2))
    fill = tuple(int(c) for c in colour)
    if kind == "circle":
        draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)
    elif kind == "square":
        draw.rectangle((x - r, y - r, x + r, y + r), fill=fill)
    else:
        draw.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], fill=fill)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def write_shapes(root: Path, splits=(("train", SHAPES, 20), ("validation", SHAPES, 10)), seed=0):
    """``root/<split>/<shape>/<n>.png``."""
    rng = np.random.default_rng(seed)
    for split, kinds, count in splits:
        for kind in kinds:
            folder = root / split / kind
            folder.mkdir(parents=True, exist_ok=True)
            for n in range(count):
                (folder / f"{n}.png").write_bytes(shape_png(kind, rng))
    return root


def options(**overrides):
    values = dict(
        image_size=75,
        batch_size=2,
        epochs=None,
        steps=2,
        precision="auto",
        seed=0,
        deterministic=False,
        data_dir=None,
        eval_split="validation",
        variant=None,
        checkpoint_every=None,
        validate_every=None,
        log_every=None,
        verbose=0,
    )
    return {**values, **overrides}


# ------------------------------------------------------------------------ classes of the data


def test_validation_subset_is_labelled_with_the_training_indices(tmp_path):
    """train = {circle, square, triangle}, validation = {circle, triangle}: triangles are
    labelled 2 (the training index), not 1 (their index in the validation folder)."""
    root = write_shapes(
        tmp_path / "data", splits=(("train", SHAPES, 1), ("validation", ("circle", "triangle"), 2))
    )
    plan = make_plan(
        MODEL, str(root), tmp_path / "m", load_recipe("paper"), backend.runtime("auto"), options()
    )
    assert plan.validation.class_names == list(SHAPES) and plan.validation.num_classes == 3
    kind_of = {
        (root / "validation" / kind / name).read_bytes(): kind
        for kind in ("circle", "triangle")
        for name in ("0.png", "1.png")
    }
    labels = {
        kind_of[image]: int(label) for image, label in plan.validation.dataset.as_numpy_iterator()
    }
    assert labels == {"circle": 0, "triangle": 2}
    # The final evaluation reads the same relabelled source.
    assert plan.eval_split == "validation"


def test_validation_class_that_training_lacks_is_refused_before_anything(tmp_path, capsys):
    root = write_shapes(
        tmp_path / "data", splits=(("train", SHAPES, 1), ("validation", ("circle", "hexagon"), 1))
    )
    model_dir = tmp_path / "m"
    start = time.monotonic()
    code = run_cli(
        "--model",
        MODEL,
        "--data",
        root,
        "--model-dir",
        model_dir,
        "--image-size",
        75,
        "--steps",
        1,
        "--quiet",
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert "hexagon" in err and "training data lacks" in err and "train/" in err, err
    assert not model_dir.exists()  # refused before the model was built or anything written
    assert time.monotonic() - start < 60


def test_one_class_is_refused_before_anything(tmp_path, capsys):
    root = write_folder(tmp_path / "data", classes=("cat",), per_class=2)
    with pytest.raises(UsageError, match=r"only one class \(cat\).*at least two"):
        inception.train(MODEL, root, tmp_path / "m", image_size=75, steps=1, verbose=0)
    assert run_small(root, tmp_path / "m", "--quiet") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "only one class" in err, err
    assert not (tmp_path / "m").exists()


def test_skipped_files_are_named_in_the_log(tmp_path, caplog):
    write_folder(tmp_path, per_class=1)
    bad = [f"bad{i}.jpg" for i in range(7)]
    for name in bad:
        (tmp_path / "cat" / name).write_text("not an image")
    with caplog.at_level(logging.WARNING, logger="inception.data.sources"):
        source = load_source(tmp_path, "train")
    assert sorted(Path(p).name for p in source.skipped_files) == bad
    [message] = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert "skipped 7 file(s)" in message and "and 2 more" in message and "\n" not in message
    assert sum(name in message for name in bad) == 5


def test_imagenet2012_without_the_train_tar_points_to_a_synset_folder(tmp_path):
    manual = tmp_path / "downloads" / "manual"
    manual.mkdir(parents=True)
    (manual / "ILSVRC2012_img_val.tar").write_bytes(b"")
    with pytest.raises(UsageError) as info:
        load_source("imagenet2012", "validation", data_dir=tmp_path)
    message = str(info.value)
    assert "ILSVRC2012_img_train.tar not found" in message and "\n" not in message
    assert "even to evaluate" in message
    assert "validation images only" in message and "named by synset" in message
    assert "--data DIR" in message


def test_keep_checkpoints_flag(tmp_path, capsys):
    action = next(a for a in parser()._actions if "--keep-checkpoints" in a.option_strings)
    assert action.help and "`--keep-checkpoints" in (ROOT / "docs" / "training.md").read_text()
    assert (
        parser()
        .parse_args(
            [
                "--model",
                "m",
                "--data",
                "d",
                "--model-dir",
                "o",
                "--steps",
                "1",
                "--keep-checkpoints",
                "2",
            ]
        )
        .keep_checkpoints
        == 2
    )
    root = write_folder(tmp_path / "data", per_class=1)
    assert run_small(root, tmp_path / "m", "--keep-checkpoints", 0, "--quiet") == 2
    assert "--keep-checkpoints must be at least 1" in capsys.readouterr().err


# ----------------------------------------------------------------------------------- disk full


def small_model():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(optimizer="rmsprop", loss="mse")
    model.optimizer.build(model.trainable_variables)
    return model


def test_checkpoint_on_a_full_disk(tmp_path, monkeypatch):
    """Too little free space: refused before writing; a write that fails with ENOSPC anyway:
    its partial file removed. Both: one line naming the folder, the step and the last good
    checkpoint, which survives."""
    model = small_model()
    checkpoints = Checkpoints(tmp_path / "checkpoints")
    first = checkpoints.save(model, 10)
    good = first.read_bytes()
    assert checkpoints.size_estimate(model) >= first.stat().st_size

    usage = checkpoints_module.shutil.disk_usage(tmp_path)
    monkeypatch.setattr(
        checkpoints_module.shutil, "disk_usage", lambda path: usage._replace(free=1 << 20)
    )
    with pytest.raises(DiskFullError) as info:
        checkpoints.save(model, 20)
    message = str(info.value)
    assert "\n" not in message and str(checkpoints.folder) in message, message
    assert "step 20" in message and "ckpt-10.weights.h5" in message and "MiB free" in message
    assert sorted(p.name for p in checkpoints.folder.iterdir()) == ["ckpt-10.weights.h5"]
    monkeypatch.undo()

    def fills_the_disk(path, *args, **kwargs):
        Path(path).write_bytes(b"\0" * 4096)  # half a file, then the device is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(model, "save_weights", fills_the_disk)
    with pytest.raises(
        DiskFullError,
        match=r"could not write the checkpoint of step 20 to .*: "
        r"the disk is full; the partial file was removed "
        r"and the last good checkpoint is .*ckpt-10",
    ):
        checkpoints.save(model, 20)
    assert sorted(p.name for p in checkpoints.folder.iterdir()) == ["ckpt-10.weights.h5"]
    assert first.read_bytes() == good and checkpoints.latest() == first
    with h5py.File(first) as f:
        assert f.attrs["step"] == 10


def test_final_model_on_a_full_disk(tmp_path, monkeypatch, capsys):
    model = small_model()
    checkpoints = Checkpoints(tmp_path / "checkpoints")
    checkpoints.save(model, 60)
    old = tmp_path / "model.keras"
    loop._save(model, old, "the trained model model.keras (step 60)", checkpoints)
    before = old.read_bytes()
    usage = checkpoints_module.shutil.disk_usage(tmp_path)
    monkeypatch.setattr(
        checkpoints_module.shutil, "disk_usage", lambda path: usage._replace(free=0)
    )
    with pytest.raises(
        DiskFullError,
        match=r"to write the trained model model\.keras \(step 60\)"
        r".*the last good checkpoint is .*ckpt-60",
    ):
        loop._save(model, old, "the trained model model.keras (step 60)", checkpoints)
    monkeypatch.undo()

    def fills_the_disk(model, path):
        Path(path).write_bytes(b"PK")  # half a file, then the device is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(loop, "save_model", fills_the_disk)
    with pytest.raises(DiskFullError, match="the disk is full; the partial file was removed"):
        loop._save(model, tmp_path / "model.weights.h5", "the trained model", checkpoints)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoints", "model.keras"]
    assert old.read_bytes() == before  # the previous model.keras is left as it was

    # The command prints the error as one line and exits 1.
    def full(*args, **kwargs):
        raise DiskFullError("not enough free space in /x to write the checkpoint of step 3")

    monkeypatch.setattr(loop, "train", full)
    assert run_cli("--model", MODEL, "--data", tmp_path, "--model-dir", tmp_path, "--steps", 3) == 1
    captured = capsys.readouterr()
    assert (
        captured.err
        == "inception train: not enough free space in /x to write the checkpoint of step 3\n"
        and captured.out == ""
    )


# ------------------------------------------------------------------------------------ progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def frames(text: str) -> list[tuple[int, int, int]]:
    """``(step, total, filled)`` of every live bar drawn in ``text``."""
    found = re.findall(r"step (\d+)/(\d+) \[(#*)\.*\]", text)
    return [(int(step), int(total), len(filled)) for step, total, filled in found]


def test_live_bar_counts_the_global_step_across_periods():
    """fit restarts its batch count every period (every checkpoint); the bar does not: at step
    10 of 60 it is a sixth full, and a run resumed at 30 starts half full."""
    for start in (0, 30):
        stream = Terminal()
        progress = Progress(start, 60, global_batch=8, stream=stream, redraw=0.0)
        assert progress.live
        progress.on_train_begin()
        for period in range(start // 10, 6):
            progress.on_epoch_begin(period)
            for batch in range(10):  # Keras' batch index, from 0 in every period
                progress.on_train_batch_end(batch, {"loss": 1.0, "top1": 50.0})
            progress.on_epoch_end(period, {"loss": 1.0, "val_loss": 0.9, "val_top1": 60.0})
        progress.on_train_end()
        text = stream.getvalue()
        assert "\x1b" not in text
        drawn = frames(text)  # the bar is drawn again under each validation line
        steps = [s for s, _, _ in drawn]
        assert steps == sorted(steps) and sorted(set(steps)) == list(range(start + 1, 61))
        assert all(
            total == 60 and filled == BAR_WIDTH * step // 60 for step, total, filled in drawn
        )
        assert (10, 60, BAR_WIDTH // 6) in drawn or start
        assert "step 60: validation loss 0.9000, top-1 60.00%" in text and text.endswith("\n")


# ------------------------------------------------------------------------------ Ctrl-C, skipped


def test_ctrl_c_says_where_to_resume_and_skipped_files_are_listed(tmp_path):
    """SIGINT once training runs: exit 130 and one line naming the step reached and the step
    a rerun resumes from (the newest checkpoint); the unreadable file of the data is named in
    the log and listed in skipped_files.txt."""
    root = write_folder(tmp_path / "data", per_class=2)
    (root / "dog" / "broken.jpg").write_text("not a JPEG")
    model_dir = tmp_path / "run"
    cmd = shallow.cli(
        "train",
        "--model",
        MODEL,
        "--data",
        str(root),
        "--model-dir",
        str(model_dir),
        "--image-size",
        "75",
        "--batch-size",
        "2",
        "--steps",
        "1000",
        "--checkpoint-every",
        "1",
        "--validate-every",
        "0",
        "--no-eval",
    )

    # Ctrl-C as in a terminal: SIGINT at its default even where this suite runs with it ignored
    # (a background job of a non-interactive shell inherits SIGINT ignored, and so would the run)
    def default_sigint():
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint)  # fmt: skip
    first, deadline = model_dir / "checkpoints" / "ckpt-1.weights.h5", time.monotonic() + 600
    try:
        while not first.exists():
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "no checkpoint within 600 s"
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err[-3000:]
    match = re.search(
        r"inception train: interrupted at step (\d+); rerun the same command to "
        r"resume from step (\d+)\n",
        err,
    )
    assert match, err[-3000:]
    saved = Checkpoints(model_dir / "checkpoints").steps()
    assert int(match.group(2)) == saved[-1] and int(match.group(1)) >= saved[-1] >= 1
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-3000:]
    assert "broken.jpg" in err  # the log names it
    listed = (model_dir / "skipped_files.txt").read_text().splitlines()
    assert [Path(p).name for p in listed] == ["broken.jpg"]
    assert not list((model_dir / "checkpoints").glob("partial-*"))


# ---------------------------------------------------------------------------------- the demo


def test_demo_recipe_learns_three_shapes(tmp_path, monkeypatch):
    """``--recipe demo`` at batch 8 on three generated shape classes: 60 steps lower the
    training loss and validate above chance; meanwhile the live bar counts the global step over
    the periods and --keep-checkpoints 2 keeps the newest two checkpoints."""
    root = write_shapes(tmp_path / "shapes")
    model_dir = tmp_path / "run"
    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    code = run_cli(
        "--model",
        MODEL,
        "--data",
        root,
        "--model-dir",
        model_dir,
        "--image-size",
        75,
        "--batch-size",
        8,
        "--steps",
        60,
        "--recipe",
        "demo",
        "--seed",
        0,
        "--deterministic",
        "--checkpoint-every",
        20,
        "--keep-checkpoints",
        2,
        "--no-eval",
    )
    monkeypatch.undo()
    assert code == 0, terminal.getvalue()[-3000:]
    records = [json.loads(x) for x in (model_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert len(losses) == 60 and all(np.isfinite(losses))
    assert np.mean(losses[-10:]) < np.mean(losses[:10]), losses
    validations = [r for r in records if "val_top1" in r]
    assert [r["step"] for r in validations] == [20, 40, 60]
    assert validations[-1]["val_top1"] > 100 / 3, validations
    assert Checkpoints(model_dir / "checkpoints").steps() == [40, 60]
    drawn = frames(terminal.getvalue())
    assert drawn[-1] == (60, 60, BAR_WIDTH)
    steps = [s for s, _, _ in drawn]
    assert steps == sorted(steps) and any(s > 20 for s in steps[:-1])
    assert all(total == 60 and filled == BAR_WIDTH * s // 60 for s, total, filled in drawn)
