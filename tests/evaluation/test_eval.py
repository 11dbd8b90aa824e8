"""``inception.evaluate`` / ``inception eval``: exact top-1/top-5 arithmetic, multi-crop,
ensembles, image folders and tfds' imagenet2012 (from miniature ILSVRC tars), bad input."""

import json

import keras
import numpy as np
import pytest
from helpers import CASES, NUM, colour_model, fake_runner_clock
from helpers import write_colour_folder as write_folder
from ilsvrc import write_ilsvrc2012
from PIL import Image

import inception
from inception import cli
from inception.evaluation.evaluator import format_table
from inception.evaluation.metrics import TopK, label_ranks


def test_label_ranks_and_topk_arithmetic():
    probs = np.array([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3], [0.2, 0.2, 0.6]])
    np.testing.assert_array_equal(label_ranks(probs, [1, 2, 1]), [0, 1, 1])
    acc = TopK(ks=(1, 2))
    acc.update(probs, [1, 2, 1])
    acc.update(probs[:1], [0])
    assert acc.count == 4 and acc.correct == {1: 1, 2: 3}
    assert acc.result() == {
        "num_images": 4, "top1": 25.0, "top1_error": 75.0, "top2": 75.0, "top2_error": 25.0,
    }  # fmt: skip
    with pytest.raises(ValueError, match="labels must lie in"):
        label_ranks(probs, [0, 1, 3])


@pytest.mark.parametrize("crops, micro_batch", [(1, None), (10, 7)])  # eager; compiled, 7 rows
def test_known_predictions_give_exact_top1_top5(tmp_path, crops, micro_batch):
    data = write_folder(tmp_path / "colours")
    result = inception.evaluate(
        colour_model(), str(data), crops=crops, batch_size=3, micro_batch=micro_batch
    )
    (model,) = result["models"]
    assert result["num_images"] == model["num_images"] == 10 and result["crops"] == crops
    assert model["top1"] == pytest.approx(40.0) and model["top5"] == pytest.approx(70.0)
    assert model["top1_error"] == pytest.approx(60.0) and model["top5_error"] == pytest.approx(30.0)
    assert result["ensemble"] is None


def test_throughput_leaves_out_the_first_forward_pass(tmp_path, monkeypatch):
    """images/s is counted in crops after the first micro-batch (which compiles): on a clock
    where the first pass takes 100 s and each other one 1 s, 10 images x 10 crops in passes of
    7 crops give 93 crops / 10 per image / 14 s."""

    fake_runner_clock(monkeypatch)
    data = write_folder(tmp_path / "colours")
    result = inception.evaluate(colour_model(), str(data), crops=10, micro_batch=7)
    assert result["num_images"] == 10
    assert result["images_per_second"] == pytest.approx(93 / 10 / 14)


def test_ensemble_of_a_1001_and_a_1000_class_model_144_crops(tmp_path):
    data = write_folder(tmp_path / "colours", CASES[:4] + CASES[6:8])  # 4 right, 1 top-5, 1 miss
    slim = colour_model(background=3.0, name="slim")
    other = colour_model(size=40, name="other")
    result = inception.evaluate(
        [slim, other], str(data), crops=144, batch_size=1, json_path=tmp_path / "r.json"
    )
    assert result["image_size"] == 48 and result["num_images"] == 6
    tops = [(m["top1"], m["top5"]) for m in result["models"]] + [
        (result["ensemble"]["top1"], result["ensemble"]["top5"])
    ]
    assert tops == [(pytest.approx(400 / 6), pytest.approx(500 / 6))] * 3
    assert json.loads((tmp_path / "r.json").read_text())["ensemble"]["members"] == ["slim", "other"]
    table = format_table(result)
    assert "ensemble (slim + other)" in table and "66.67%" in table


def test_eval_cli_on_an_image_folder(tmp_path, capsys):
    data = write_folder(tmp_path / "colours", CASES[:6])
    (data / "c3" / "notes.txt").write_text("not an image")
    out = tmp_path / "eval.json"
    argv = ["eval", "--model", "inception_resnet_v1", "--weights", "none", "--data", str(data)]
    argv += ["--image-size", "75", "--crops", "12", "--batch-size", "4", "--json", str(out)]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["num_images"] == 6 and result["skipped"] == 1 and result["crops"] == 12
    (model,) = result["models"]
    assert result["precision"] == "float32"  # folded BatchNorm, float32 arithmetic by default
    assert model["name"] == "inception_resnet_v1" and model["weights"] == "none"
    assert 0.0 <= model["top1"] <= model["top5"] <= 100.0
    assert "6 images, 12 crops at 75px" in printed and "inception_resnet_v1" in printed


@pytest.fixture(scope="module")
def ilsvrc(tmp_path_factory):
    """A tfds data dir whose downloads/manual holds miniature ILSVRC-2012 tars (not prepared)."""
    data_dir = tmp_path_factory.mktemp("tfds")
    return data_dir, write_ilsvrc2012(data_dir / "downloads" / "manual", num_val=6)


def test_eval_cli_on_tfds_imagenet2012_from_ilsvrc_tars(ilsvrc, tmp_path, capsys):
    data_dir, info = ilsvrc
    out = tmp_path / "eval.json"
    argv = ["eval", "--model", "inception_resnet_v1", "--weights", "none", "--data", "imagenet2012"]
    argv += ["--data-dir", str(data_dir), "--image-size", "75", "--limit", "5", "--json", str(out)]
    assert cli.main(argv) == 0
    result = json.loads(out.read_text())
    assert result["data"] == "imagenet2012" and result["split"] == "validation"
    assert result["num_images"] == 5 and info["num_val"] >= 5
    assert "imagenet2012 (validation), 5 images, 1 crop at 75px" in capsys.readouterr().out


def run_cli(argv, capsys):
    code = cli.main(argv)
    err = capsys.readouterr().err
    return code, err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--model", "inception_v5"], "unknown model 'inception_v5'; give a registered model"),
        (
            ["--model", "inception_v4,inception_resnet_v2", "--weights", "none,none,none"],
            "got 3 --weights values for 2 models",
        ),
        (["--model", "inception_v4", "--weights", "/nowhere/w.weights.h5"], "does not exist"),
        (["--model", "inception_v4", "--batch-size", "0"], "--batch-size must be at least 1"),
        (["--model", "inception_v4", "--micro-batch", "0"], "--micro-batch must be at least 1"),
    ],
)
def test_eval_cli_bad_arguments(tmp_path, capsys, extra, message):
    data = write_folder(tmp_path / "colours", CASES[:2])
    code, err = run_cli(["eval", "--data", str(data), *extra], capsys)
    assert code == 2 and message in err and "Traceback" not in err
    assert err.count("\n") == 1


def test_eval_bad_data(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, err = run_cli(
        ["eval", "--model", "inception_v4", "--data", str(tmp_path / "empty")], capsys
    )
    assert code == 2 and "has no class sub-folders" in err
    broken = tmp_path / "broken" / "cat"
    broken.mkdir(parents=True)
    (broken / "a.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    code, err = run_cli(["eval", "--model", "inception_v4", "--data", str(broken.parent)], capsys)
    assert code == 2 and "has no readable images" in err
    with pytest.raises(ValueError, match="model colour has 10 classes but the data has 3"):
        three = write_folder(tmp_path / "three", [(0, 0), (1, 1), (2, 2)])
        for extra in range(3, NUM):
            (three / f"c{extra}").rmdir()
        inception.evaluate(colour_model(), str(three))


def test_folder_of_synsets_keeps_imagenet_labels(tmp_path):
    from inception.preprocessing import imagenet_classes

    synsets = [imagenet_classes()[i][0] for i in (5, 7)]
    for synset in synsets:
        (tmp_path / synset).mkdir()
        for i in range(2):
            Image.fromarray(np.full((30, 30, 3), 99, np.uint8)).save(tmp_path / synset / f"{i}.png")
    bias = np.zeros(1000)
    bias[7], bias[5] = 5.0, 4.0  # always predicts class 7, then class 5
    images = keras.Input((32, 32, 3))
    dense = keras.layers.Dense(1000, activation="softmax")
    model = keras.Model(images, dense(keras.layers.GlobalAveragePooling2D()(images)))
    dense.set_weights([np.zeros((3, 1000), np.float32), bias.astype(np.float32)])
    (result,) = inception.evaluate(model, str(tmp_path))["models"]
    assert result["top1"] == pytest.approx(50.0) and result["top5"] == pytest.approx(100.0)


def test_eval_in_bfloat16_reports_its_precision(tmp_path, capsys):
    data = write_folder(tmp_path / "colours")
    argv = ["eval", "--model", "inception_resnet_v1", "--weights", "none", "--data", str(data)]
    argv += ["--image-size", "75", "--precision", "bfloat16", "--json", str(tmp_path / "r.json")]
    assert cli.main(argv) == 0
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["precision"] == "bfloat16" and result["num_images"] == 10
    assert "at 75px, bfloat16" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main([*argv[:-4], "--precision", "int8"])
    assert "invalid choice: 'int8'" in capsys.readouterr().err


@pytest.mark.slow  # Keras compiles the network under JAX
def test_eval_and_predict_run_under_jax(tmp_path):
    """The model path is Keras only: `inception eval` (compiled micro-batches, 10 crops) and
    `inception predict` run with KERAS_BACKEND=jax (tf.data still cuts the crops); the network is
    the shallow Inception-ResNet-v1 of tests/shallow.py."""
    import os
    import subprocess

    import shallow

    data = write_folder(tmp_path / "colours", CASES[:6])
    env = shallow.env({**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"})
    out = tmp_path / "eval.json"
    common = ["--model", "inception_resnet_v1", "--weights", "none", "--image-size", "75"]
    evaluation = subprocess.run(
        shallow.cli("eval", *common, "--data", str(data), "--crops", "10", "--json", str(out)),
        capture_output=True, text=True, timeout=900, env=env,
    )  # fmt: skip
    assert evaluation.returncode == 0, evaluation.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["num_images"] == 6 and result["crops"] == 10
    prediction = subprocess.run(
        shallow.cli("predict", str(data / "c3"), *common, "--classes", "4", "--json"),
        capture_output=True, text=True, timeout=900, env=env,
    )  # fmt: skip
    assert prediction.returncode == 0, prediction.stderr[-2000:]
    rows = json.loads(prediction.stdout)  # c3 holds two of the images
    assert len(rows) == 2 and all(len(r["predictions"]) == 4 for r in rows)
    assert rows[0]["predictions"][0]["class"].startswith("class_")
