"""``inception train`` on TensorFlow in this process: recipes, the runtime, bad input, the CLI's
flags, progress and metrics records, the no-validation-split notice, a few real steps on tfds'
imagenet2012 builder prepared from miniature ILSVRC tars, and a diverging run; the network is
the shallow Inception-ResNet-v1 of tests/shallow.py."""

from __future__ import annotations

import io
import json
import re
import time
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
from helpers import write_class_folder as write_folder
from shallow import MODEL, shallow_network  # noqa: F401  (autouse: the shallow network)

import inception
from inception.cli import main as cli_main
from inception.cli.train import parser
from inception.errors import UsageError
from inception.training import backend, load_recipe, recipe_names
from inception.training.callbacks import MetricsLog, TrainingDivergedError, plain_metrics
from inception.training.checkpoints import Checkpoints
from inception.training.plan import _held_out, _resolve
from inception.training.progress import Progress

DOCS = Path(__file__).resolve().parents[2] / "docs" / "training.md"


def test_paper_recipe_values():
    r = load_recipe("paper")
    assert (r.rmsprop_rho, r.rmsprop_momentum, r.rmsprop_epsilon) == (0.9, 0.9, 1.0)
    assert (r.base_learning_rate, r.lr_decay_rate, r.lr_decay_epochs) == (0.045, 0.94, 2.0)
    assert (r.label_smoothing, r.weight_decay, r.gradient_clip_norm) == (0.1, 4e-5, 2.0)
    assert (r.aux_loss_weight, r.dropout_rate, r.ema_decay) == (0.4, 0.2, 0.9999)
    assert r.learning_rate(256) == pytest.approx(0.045 * 8)
    assert {"paper", "demo"} <= set(recipe_names())
    demo = load_recipe("demo", batch_size=8)
    assert demo.batch_size == 8 and demo.rmsprop_epsilon == 1.0  # inherits from paper


def test_recipe_file_and_errors(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"base": "paper", "label_smoothing": 0.0}))
    assert load_recipe(str(path)).label_smoothing == 0.0
    path.write_text(json.dumps({"lerning_rate": 1}))
    with pytest.raises(UsageError, match="unknown recipe key.*lerning_rate"):
        load_recipe(str(path))
    path.write_text("{not json")
    with pytest.raises(UsageError, match="not valid JSON"):
        load_recipe(str(path))
    with pytest.raises(UsageError, match="unknown recipe 'nope'"):
        load_recipe("nope")


def test_runtime_and_precision_resolution(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    rt = backend.runtime("auto")
    assert (rt.backend, rt.replicas, rt.accelerator, rt.chief) == ("tensorflow", 1, "cpu", True)
    assert backend.precision_policy("auto", rt) == "float32"  # CPU
    assert backend.precision_policy("mixed_bfloat16", rt) == "mixed_bfloat16"
    gpu = backend.Runtime("tensorflow", "OneDeviceStrategy", 1, ["gpu:0"], "gpu", False)
    assert backend.precision_policy("auto", gpu) == "mixed_float16"  # before Ampere
    gpu.bfloat16 = True
    assert backend.precision_policy("auto", gpu) == "mixed_bfloat16"
    with pytest.raises(UsageError, match="unknown --strategy 'gpus'"):
        backend.runtime("gpus")
    with pytest.raises(UsageError, match="--strategy data_parallel is for KERAS_BACKEND=jax"):
        backend.runtime("data_parallel")
    with pytest.raises(UsageError, match="needs TF_CONFIG"):
        backend.runtime("multi_worker")
    with pytest.raises(UsageError, match="unknown --precision"):
        backend.precision_policy("fp8", rt)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_folder(tmp_path_factory.mktemp("folder"), per_class=2)


def run_cli(*args):
    return cli_main(["train", *map(str, args)])


def test_cli_bad_input_is_one_clear_line(folder, tmp_path, capsys):
    base = ["--model", MODEL, "--model-dir", tmp_path / "m", "--image-size", 75, "--steps", 1]
    cases = [
        (["--data", tmp_path / "missing"], "neither a folder nor a known data set"),
        (["--data", "tfds:not_a_dataset_xyz"], "unknown tfds data set"),
        (["--data", "imagenet2012", "--data-dir", tmp_path], "ILSVRC2012_img_train.tar"),
        (["--data", folder, "--image-size", 50], "--image-size 50 is too small"),
        (["--data", folder, "--recipe", "nope"], "unknown recipe"),
        (["--data", folder, "--batch-size", 0], "--batch-size must be positive"),
        (["--data", folder, "--checkpoint-every", 0], "--checkpoint-every must be positive"),
        (["--data", folder, "--strategy", "data_parallel"], "is for KERAS_BACKEND=jax"),
        (["--data", folder, "--model", "inception_v9"], "unknown model 'inception_v9'"),
    ]
    for extra, message in cases:
        assert run_cli(*base, *extra, "--quiet") == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and err.count("\n") == 1, err


def test_every_flag_has_help_and_is_documented(capsys):
    docs = DOCS.read_text()
    flags = [a for a in parser()._actions if a.option_strings and a.dest != "help"]
    flags = [a for a in flags if a.help != "==SUPPRESS=="]  # renamed flags' hidden old names
    assert len(flags) >= 19
    for action in flags:
        assert action.help, action.option_strings
        assert f"`{action.option_strings[0]}" in docs, f"{action.option_strings[0]} not documented"
    with pytest.raises(SystemExit):
        parser().parse_args(["--help"])
    assert "KERAS_BACKEND=jax" in capsys.readouterr().out


def test_batch_not_divisible_by_replicas():
    # (also end to end over 2 logical CPUs in test_train_distributed.py)
    with pytest.raises(UsageError, match="not divisible by the 2 replicas; use a multiple of 2"):
        _resolve(MODEL, "x", 75, 3, 2, load_recipe("paper"))
    assert _resolve(MODEL, "x", None, None, 2, load_recipe("paper")) == (299, 64)


def test_run_length_required(folder, tmp_path):
    with pytest.raises(UsageError, match="--epochs N or --steps N"):
        inception.train(MODEL, folder, tmp_path, image_size=75)


def test_folder_without_validation_split_says_so(folder, tmp_path, capsys):
    assert _held_out(str(folder), None, "validation", verbose=1) == (None, "train")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no validation/" in err and "TRAINING images" in err
    assert _held_out(str(folder), None, None, verbose=1) == (None, None)
    assert _held_out(str(folder), None, "validation", verbose=0) == (None, "train")
    assert capsys.readouterr().err == ""  # no final evaluation to warn about; quiet
    write_folder(tmp_path / "validation", per_class=1)
    write_folder(tmp_path / "train", per_class=1)
    validation, split = _held_out(str(tmp_path), None, "validation", verbose=1)
    assert split == "validation" and validation.num_examples == 3 and not validation.whole_folder


def test_progress_in_a_log_is_plain_periodic_lines():
    stream = io.StringIO()
    progress = Progress(0, 6, global_batch=8, stream=stream, live=False, interval=0.0,
                        quiet_after=0.3)  # fmt: skip
    progress.on_train_begin()
    deadline = time.monotonic() + 30  # compiling: the heartbeat speaks up
    while "... compiling" not in stream.getvalue() and time.monotonic() < deadline:
        time.sleep(0.05)
    logs = {"loss": 2.5, "Logits.Logits_top1": 40.0, "Logits.Logits_top5": 90.0}
    for batch in range(6):
        progress.on_train_batch_end(batch, logs)
        time.sleep(0.05)
    progress.on_epoch_end(0, {**logs, "val_loss": 1.5, "val_Logits.Logits_top1": 55.0})
    progress.on_train_end()
    text = stream.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert lines[0].startswith("training from step 0 to 6")
    assert any(line.startswith("... compiling the training step") for line in lines[1:3])
    steps = [line for line in lines if line.startswith("step ")]
    assert steps[0].startswith("step 1/6  images/s --  loss 2.5000  top-1 40.0%  ETA --")
    assert re.match(r"step 6/6  \d+\.\d images/s  loss 2\.5000  top-1 40\.0%  ETA 0m00s", steps[-2])
    assert steps[-1] == "step 6: validation loss 1.5000, top-1 55.00%, top-5 0.00%"


def test_metrics_log_records(tmp_path):
    path = tmp_path / "metrics.jsonl"
    log = MetricsLog(path, start=10, total=14, global_batch=4,
                     learning_rate=lambda step: 0.1 * (step + 1), every=2)  # fmt: skip
    log.on_train_begin()
    logs = {"loss": 1.25, "AuxLogits.Logits_loss": 9.0, "Logits.Logits_top1": 50.0,
            "Logits.Logits_top5": 100.0}  # fmt: skip
    for batch in range(4):
        log.on_train_batch_end(batch, logs)
    log.on_epoch_end(0, {**logs, "val_loss": 0.5, "val_Logits.Logits_top1": 75.0,
                         "val_Logits.Logits_top5": 100.0})  # fmt: skip
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["step"] for r in records] == [12, 14, 14]
    first = records[0]
    assert set(first) == {"step", "loss", "aux_loss", "top1", "top5", "lr", "images_per_sec",
                          "time"}  # fmt: skip
    assert (first["loss"], first["aux_loss"], first["top1"], first["top5"]) == (1.25, 9.0, 50.0,
                                                                                 100.0)  # fmt: skip
    assert first["lr"] == pytest.approx(1.2) and first["images_per_sec"] > 0
    assert records[2] == {"step": 14, "val_loss": 0.5, "val_top1": 75.0, "val_top5": 100.0,
                          "time": records[2]["time"]}  # fmt: skip
    assert plain_metrics({"loss": 1, "Logits.Logits_loss": 3}) == {"loss": 1.0}
    assert plain_metrics({"val_AuxLogits.Logits_loss": 2}) == {"val_aux_loss": 2.0}


@pytest.mark.slow
def test_train_on_imagenet2012_builder(imagenet2012_manual, tmp_path):  # noqa: F811
    """tfds' real builder prepared from miniature tars, then 2 training steps of a zoo model with
    validation after each, checkpoints, logs, and exports that carry their class names and
    evaluate through ``inception.evaluate`` to the numbers in eval.json."""
    data_dir, info = imagenet2012_manual
    result = inception.train(
        MODEL, "imagenet2012", tmp_path, data_dir=data_dir, image_size=107, batch_size=4,
        steps=2, seed=0, deterministic=True, verbose=0, checkpoint_every=1, validate_every=1,
    )  # fmt: skip
    assert result["steps"] == 2 and result["num_classes"] == 1000
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["num_examples"] == info["num_train"] and config["global_batch_size"] == 4
    assert config["learning_rate"] == pytest.approx(0.045 * 4 / 32)
    assert (config["backend"], config["replicas"], config["eval_held_out"]) == ("tensorflow", 1,
                                                                                 True)  # fmt: skip
    assert config["aux_logits"] is True  # 107 px: the auxiliary head trains too
    records = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if "loss" in r]
    assert [r["step"] for r in train] == [1, 2]
    assert all(np.isfinite(r["loss"]) and r["images_per_sec"] > 0 for r in train)
    assert all(0 <= r["top1"] <= r["top5"] <= 100 for r in train)
    # Label smoothing 0.1 over 1000 classes at initialisation: each head's loss is near
    # ln(1000) = 6.9, and the total is the main head's plus 0.4 x the auxiliary head's.
    assert 5.0 < train[0]["aux_loss"] < 12.0
    assert 1.4 * 5.0 < train[0]["loss"] < 1.4 * 12.0
    assert [r["step"] for r in records if "val_top1" in r] == [1, 2]
    assert Checkpoints(tmp_path / "checkpoints").steps() == [1, 2]
    with h5py.File(tmp_path / "checkpoints" / "ckpt-2.weights.h5") as f:
        assert f.attrs["step"] == 2 and "optimizer" in f
    assert list((tmp_path / "logs").rglob("events.out.tfevents.*"))
    metrics = json.loads((tmp_path / "eval.json").read_text())
    assert metrics == result["metrics"] and metrics["held_out"] is True
    assert metrics["split"] == "validation" and metrics["num_images"] == info["num_val"]
    reloaded = inception.load_model(result["keras_model"])
    assert inception.model_info(reloaded).class_names == tuple(result["class_names"])
    again = inception.evaluate(reloaded, "imagenet2012", data_dir=data_dir, batch_size=4,
                               progress=False)  # fmt: skip
    assert again["models"][0]["top1"] == metrics["top1"]
    net = inception.build(MODEL, input_shape=(107, 107, 3), classes=1000)
    net.load_weights(result["weights"])
    x = np.random.default_rng(0).uniform(-1, 1, (1, 107, 107, 3)).astype("float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(reloaded(x)), net(x), atol=1e-5)


def test_diverging_run_stops_and_keeps_last_good_checkpoint(folder, tmp_path, capsys):
    """A learning rate of 1e30 makes step 1's update explode the weights: step 2's loss is not
    finite, so the run stops there with a clear message and the checkpoint of step 1 stays the
    latest; the CLI prints the message as one line and exits 1."""
    recipe = tmp_path / "explode.json"
    recipe.write_text(json.dumps({"base": "paper", "base_learning_rate": 1e30, "dropout_rate": 0}))
    args = ["--model", MODEL, "--data", folder, "--model-dir", tmp_path / "m", "--image-size", 75,
            "--batch-size", 2, "--steps", 4, "--recipe", recipe, "--seed", 0, "--no-eval",
            "--checkpoint-every", 1, "--quiet"]  # fmt: skip
    assert run_cli(*args) == 1
    captured = capsys.readouterr()
    err = captured.err
    assert "at step 2; stopped without saving" in err and "ckpt-1.weights.h5" in err, err
    assert "Traceback" not in err and err.count("\n") == 1 and captured.out == ""
    assert Checkpoints(tmp_path / "m" / "checkpoints").steps() == [1]
    lines = (tmp_path / "m" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [1]
    assert issubclass(TrainingDivergedError, RuntimeError)
