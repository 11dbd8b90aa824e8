"""Edges of the command line (issue 17): quiet start-up, refusals before TensorFlow loads,
`inception models` from the architecture table, and numbers that say what they measure."""

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from helpers import colour_model, fake_runner_clock, write_colour_folder
from PIL import Image

import inception
from inception import cli, progress
from inception.evaluation.evaluator import format_table
from inception.evaluation.metrics import TopK
from inception.models import networks
from inception.models.summary import count_macs

README = Path(__file__).resolve().parents[2] / "README.md"

# --- A1: no TensorFlow ERROR lines (cuInit) without --verbose ----------------------------------


def test_quiet_raises_a_lower_tensorflow_log_level(monkeypatch):
    """``make`` exports TF_CPP_MIN_LOG_LEVEL=2, which lets ERROR lines through."""
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.delenv("ABSL_MIN_LOG_LEVEL", raising=False)
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))  # the import hook stays here
    cli.quiet_tensorflow()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3" == os.environ["ABSL_MIN_LOG_LEVEL"]


QUIET_SCRIPT = """
from inception.cli import quiet_tensorflow
quiet_tensorflow()
import tensorflow as tf
tf.config.list_physical_devices()  # probes CUDA: 'failed call to cuInit' where no driver is
print(tf.reduce_sum(tf.ones([2])).numpy())
"""


def test_quiet_start_up_prints_no_tensorflow_lines_at_log_level_2():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("ABSL_MIN_LOG_LEVEL", None)
    proc = subprocess.run([sys.executable, "-c", QUIET_SCRIPT], capture_output=True, text=True,
                          timeout=300, env=env)  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.strip() == "2.0", proc.stderr[-2000:]
    assert "cuInit" not in proc.stderr
    assert not re.search(r"^[IWEF]\d{4} ", proc.stderr, re.M), proc.stderr[-2000:]


# --- A2, A3: refusals and `inception models` before TensorFlow loads ----------------------------

REFUSALS_SCRIPT = """
import contextlib, io, json, sys
from inception import cli
results = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(argv)
    loaded = sorted(m for m in ("keras", "tensorflow", "jax") if m in sys.modules)
    results.append([code, err.getvalue(), loaded])
    if loaded:
        break
print(json.dumps(results))
"""


def test_bad_arguments_are_refused_before_tensorflow_loads(tmp_path):
    folder, image = tmp_path / "data", tmp_path / "a.png"
    (folder / "cat").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(image)
    missing, model_file = str(tmp_path / "missing"), str(tmp_path / "missing.keras")
    eval_ = ["eval", "--data", str(folder), "--model"]
    export = ["export", "--name", "m", "--version", "1", "--out", str(tmp_path / "out"), "--model"]
    train = ["train", "--model-dir", str(tmp_path / "run"), "--steps", "1", "--model"]
    cases = [
        ([*eval_, "inception_v5"], "unknown model 'inception_v5'"),
        ([*eval_, model_file], f"model file {model_file!r} does not exist"),
        ([*eval_, "inception_v4", "--image-size", "64"], "--image-size 64 is too small"),
        ([*eval_, "inception_v4", "--weights", f"{missing}.weights.h5"], "does not exist"),
        (["eval", "--model", "inception_v4", "--data", missing], "neither a folder nor"),
        (["predict", str(image), "--model", "inception_v5"], "unknown model 'inception_v5'"),
        (["predict", str(image), "--model", model_file], "does not exist"),
        (["predict", str(image), "--model", "inception_v4", "--image-size", "64"], "too small"),
        ([*export, "inception_v5"], "unknown model 'inception_v5'"),
        ([*export, model_file], "does not exist"),
        ([*export, "inception_v4", "--image-size", "64"], "--image-size 64 is too small"),
        ([*train, "inception_v9", "--data", str(folder)], "unknown model 'inception_v9'"),
        ([*train, "inception_v4", "--data", missing], "neither a folder nor a known data set"),
        ([*train, "inception_v4", "--data", str(folder), "--image-size", "64"], "too small"),
    ]
    argvs = [argv for argv, _ in cases] + [["models", "--all-variants"]]
    proc = subprocess.run([sys.executable, "-c", REFUSALS_SCRIPT, json.dumps(argvs)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(proc.stdout)
    for (argv, message), (code, err, loaded) in zip(cases, results):
        assert loaded == [], f"{argv} imported {loaded}"
        assert code == 2 and err.count("\n") == 1, (argv, err)
        assert err.startswith(f"inception {argv[0]}: error: ") and message in err, (argv, err)
    assert results[-1] == [0, "", []]  # `inception models` builds nothing
    assert len(results) == len(argvs)


@pytest.mark.parametrize("name, variant", list(networks.ARCHS))
def test_table_counts_equal_the_built_models(name, variant):
    """`inception models` reads parameters and GMACs off the architecture table: they are
    exactly those of the built network (299x299, 1000 classes)."""
    from inception.models.summary import table_counts

    model = inception.build(name, variant=variant)
    assert table_counts(name, variant) == (model.count_params(), count_macs(model))


# --- B4: predict says when its weights are random -----------------------------------------------


def test_predict_with_weights_none_says_the_weights_are_random(tmp_path, capsys):
    (tmp_path / "a.txt").write_text("not an image")
    argv = ["predict", str(tmp_path / "a.txt"), "--model", "inception_resnet_v1"]
    assert cli.main([*argv, "--weights", "none", "--image-size", "75"]) == 2
    first, second = capsys.readouterr().err.splitlines()
    assert first.startswith("inception predict: --weights none: predicting with RANDOM weights")
    assert "none of the inputs is a readable image" in second


# --- B5: no top-5 with 5 classes or fewer ------------------------------------------------------


def test_topk_of_every_class_is_not_reported():
    probs, labels = np.eye(5)[[0, 1, 2]], [0, 1, 3]
    few, many = TopK(classes=5), TopK(classes=6)
    for acc in (few, many):
        acc.update(probs, labels)
    assert few.result()["top5"] is None and few.result()["top5_error"] is None
    assert few.result()["top1"] == pytest.approx(200 / 3)
    assert many.result()["top5"] == pytest.approx(100.0)


def test_eval_of_three_classes_reports_no_top5(tmp_path):
    data = tmp_path / "three"
    for label in range(3):
        (data / f"c{label}").mkdir(parents=True)
        Image.new("RGB", (8, 8), (40 + 80 * label, 0, 0)).save(data / f"c{label}" / "0.png")
    images = keras.Input((16, 16, 3))
    dense = keras.layers.Dense(3, activation="softmax")
    model = keras.Model(images, dense(keras.layers.GlobalAveragePooling2D()(images)))
    result = inception.evaluate(model, str(data), json_path=tmp_path / "r.json", progress=False)
    (row,) = json.loads((tmp_path / "r.json").read_text())["models"]
    assert row["top5"] is None and row["top5_error"] is None and row["top1"] is not None
    header, columns, line, note = format_table(result).splitlines()
    name, top1, top5, top1_error, top5_error = line.split()
    assert (top5, top5_error) == ("-", "-") and top1.endswith("%") and top1_error.endswith("%")
    assert "top-5: not measured" in note


# --- B6: one images/s for one run ----------------------------------------------------------------


def test_eval_progress_and_table_give_the_same_images_per_second(tmp_path, monkeypatch, capsys):
    """The runner's clock (first pass 100 s, then 1 s per pass) is not the wall clock: the
    progress line must show the table's measure, not one of its own."""

    fake_runner_clock(monkeypatch)
    data = write_colour_folder(tmp_path / "colours")
    result = inception.evaluate(colour_model(), str(data), crops=10, micro_batch=7,
                                progress="lines")  # fmt: skip
    done = capsys.readouterr().err.strip().splitlines()[-1]
    assert done.endswith("(done)") and "0.7 images/s" in done, done
    assert "0.7 images/s" in format_table(result).splitlines()[0]


def test_a_bar_closed_with_the_callers_rate_shows_it():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty = Tty()
    bar = progress.Progress(4, "images", stream=tty)
    bar.update(4, rate=9.0)
    bar.close(rate=2.5)
    assert tty.getvalue().rsplit("\r", 1)[-1].startswith("[========================] 4/4 images")
    assert "2.5 images/s" in tty.getvalue().rsplit("\r", 1)[-1]


# --- B7: the README's features_only shapes ------------------------------------------------------


def test_readme_features_only_shapes_are_the_models():
    """The features_only example, in the README or in docs/ (wherever its section is now)."""
    pages = [README, *sorted((README.parent / "docs").glob("*.md"))]
    heading = re.compile(r"^#+ Backbones: `features_only`", re.M)
    text = next(t for t in (p.read_text() for p in pages) if heading.search(t))
    block = text[heading.search(text).start() :]
    size = int(re.search(r"input_shape=\((\d+), \1, 3\)", block).group(1))
    comment = re.search(r'levels = backbone\(images\) +# \{"(\w+)": (\([^)]*\))', block)
    name, shape = comment.groups()
    backbone = inception.build("inception_resnet_v2", features_only=True,
                               input_shape=(size, size, 3))  # fmt: skip
    levels = backbone(keras.Input((size, size, 3)))
    assert str(tuple(levels[name].shape)) == shape
