"""``inception train``: recipes, bad input, and a few real steps on tfds' imagenet2012 builder
prepared from miniature ILSVRC tars."""

from __future__ import annotations

import json

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf
from ilsvrc import imagenet2012_manual  # noqa: F401
from test_data_sources import write_folder

import inception
from inception.cli import main as cli_main
from inception.errors import UsageError
from inception.training import load_recipe, recipe_names
from inception.training.loop import TrainingDivergedError, _resolve
from inception.training.strategy import make_strategy, precision_policy

MODEL = "inception_resnet_v1"


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


def test_strategy_and_precision_resolution(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    default = make_strategy("auto")
    assert default.num_replicas_in_sync == 1
    assert precision_policy("auto", default) == "float32"  # CPU
    assert precision_policy("mixed_bfloat16", default) == "mixed_bfloat16"
    with pytest.raises(UsageError, match="unknown strategy 'gpus'"):
        make_strategy("gpus")
    with pytest.raises(UsageError, match="needs TF_CONFIG"):
        make_strategy("multi_worker")
    with pytest.raises(UsageError, match="unknown mixed precision"):
        precision_policy("fp8", default)


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
        (["--data", folder, "--image-size", 50], "too small"),
        (["--data", folder, "--recipe", "nope"], "unknown recipe"),
    ]
    for extra, message in cases:
        assert run_cli(*base, *extra) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_batch_not_divisible_by_replicas():
    # (also end to end over 2 logical CPUs in test_train_distributed.py)
    with pytest.raises(UsageError, match="not divisible by the 2 replicas; use a multiple of 2"):
        _resolve(MODEL, "x", 75, 3, 2, load_recipe("paper"))
    assert _resolve(MODEL, "x", None, None, 2, load_recipe("paper")) == (299, 64)


def test_run_length_required(folder, tmp_path):
    with pytest.raises(UsageError, match="--epochs N or --steps N"):
        inception.train(MODEL, folder, tmp_path, image_size=75)


@pytest.mark.slow
def test_train_on_imagenet2012_builder(imagenet2012_manual, tmp_path):  # noqa: F811
    """tfds' real builder prepared from miniature tars, then 2 training steps of a zoo model,
    a checkpoint, the logs, and exports that load into ``inception.build``."""
    data_dir, info = imagenet2012_manual
    result = inception.train(
        MODEL, "imagenet2012", tmp_path, data_dir=data_dir, image_size=75, batch_size=4,
        steps=2, seed=0, deterministic=True, verbose=0, checkpoint_every=1,
    )  # fmt: skip
    assert result["steps"] == 2 and result["num_classes"] == 1000
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["num_examples"] == info["num_train"] and config["global_batch_size"] == 4
    assert config["learning_rate"] == pytest.approx(0.045 * 4 / 32)
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2]
    assert all(np.isfinite(x["loss"]) and x["images_per_sec"] > 0 for x in lines)
    # Label smoothing 0.1 over 1000 classes at initialisation: loss is near ln(1000) = 6.9.
    assert 5.0 < lines[0]["loss"] < 12.0
    ckpt = tf.train.latest_checkpoint(str(tmp_path / "checkpoints"))
    assert ckpt.endswith("ckpt-2")
    assert list((tmp_path / "logs").glob("events.out.tfevents.*"))
    metrics = result["metrics"]
    assert metrics["split"] == "validation" and metrics["examples"] == info["num_val"]
    net = inception.build(MODEL, input_shape=(75, 75, 3), classes=1000)
    net.load_weights(result["weights"])
    with h5py.File(result["weights"]) as f:
        assert len(f.keys()) > 0
    reloaded = keras.saving.load_model(result["keras_model"])
    x = np.random.default_rng(0).uniform(-1, 1, (1, 75, 75, 3)).astype("float32")
    np.testing.assert_allclose(reloaded(x), net(x), atol=1e-5)


def test_diverging_run_stops_and_keeps_last_good_checkpoint(folder, tmp_path, capsys):
    """A learning rate of 1e30 makes step 1's update explode the weights: step 2's loss (or its
    gradient) is not finite, so the run stops there with a clear message and the checkpoint of
    step 1 stays the latest; the CLI prints the message as one line and exits 1."""
    recipe = tmp_path / "explode.json"
    recipe.write_text(json.dumps({"base": "paper", "base_learning_rate": 1e30, "dropout_rate": 0}))
    args = ["--model", MODEL, "--data", folder, "--model-dir", tmp_path / "m", "--image-size", 75,
            "--batch-size", 2, "--steps", 4, "--recipe", recipe, "--seed", 0, "--no-eval",
            "--checkpoint-every", 1, "--quiet"]  # fmt: skip
    assert run_cli(*args) == 1
    err = capsys.readouterr().err
    assert "at step 2; stopped without saving" in err and "ckpt-1" in err, err
    assert "Traceback" not in err and err.count("\n") == 1
    ckpt = tf.train.latest_checkpoint(str(tmp_path / "m" / "checkpoints"))
    assert ckpt.endswith("ckpt-1")
    lines = (tmp_path / "m" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [1]
    assert issubclass(TrainingDivergedError, RuntimeError)
