"""``inception eval`` / ``predict`` on every local device: 2 logical CPU devices (TensorFlow's
``MirroredStrategy``, JAX's ``DataParallel``) give the results of 1 device, multi-crop and a
2-member ensemble included; a bad ``--devices`` is one sentence.

The devices must exist before the framework starts, so each backend runs in one subprocess that
does both the 1-device and the 2-device runs (``SCRIPT``)."""

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import keras
import numpy as np
import pytest
from helpers import CASES, ROOT, colour_model, randomize_batchnorm
from PIL import Image

from inception import cli
from inception.devices import choose, parse_count
from inception.errors import UsageError
from inception.evaluation.devices import placement
from inception.evaluation.runner import Runner

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "",
       "JAX_PLATFORMS": "cpu"}  # fmt: skip
BACKENDS = {
    "tensorflow": ({"KERAS_BACKEND": "tensorflow"}, "MirroredStrategy"),
    "jax": (
        {"KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"},
        "DataParallel",
    ),
}

# Runs 1 then 2 devices: eval through the command line (10 crops, micro-batches of 7 crops: the
# last one uneven), predict through the API (12 crops, the default micro-batch); then how one
# micro-batch splits, and the error for more devices than present.
SCRIPT = """
import contextlib, io, json, sys
import keras
if keras.backend.backend() == "tensorflow":
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import numpy as np
import inception
from inception.cli import main
from inception.errors import UsageError
from inception.evaluation.devices import placement
data, models, out = sys.argv[1], sys.argv[2], sys.argv[3]
found = {"eval": {}, "predict": {}}
for devices in ("1", "2"):
    path = f"{out}/eval{devices}.json"
    argv = ["eval", "--model", models, "--data", data, "--crops", "10", "--micro-batch", "7",
            "--devices", devices, "--json-file", path, "--quiet"]
    assert main(argv) == 0
    found["eval"][devices] = json.load(open(path))
    found["predict"][devices] = inception.predict(models.split(","), data, crops=12, top=5,
                                                  devices=int(devices))
place = placement("all")
x = np.random.default_rng(0).random((6, 40, 40, 3), np.float32)
with place.scope():
    model = keras.saving.load_model(models.split(",")[1])
    spread = place._spread(x)
    if keras.backend.backend() == "tensorflow":
        parts = place.distribution.experimental_local_results(spread)
    else:
        parts = [s.data for s in spread.addressable_shards]
    found["split"] = [int(p.shape[0]) for p in parts]
    found["rows"] = int(np.asarray(place.predict(model, x)).shape[0])
err = io.StringIO()
with contextlib.redirect_stderr(err):
    found["code"] = main(["eval", "--model", models, "--data", data, "--devices", "3"])
found["error"] = err.getvalue()
try:
    inception.predict(models.split(","), data, devices=3)
except UsageError as exc:
    found["api_error"] = str(exc)
print("FOUND", json.dumps(found))
"""


def conv_model(size=40):
    """A small convolutional classifier with random weights and BatchNorm statistics (each crop
    of a noisy image gives it another answer)."""
    keras.utils.set_random_seed(3)
    images = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(8, 3, strides=2)(images)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    return randomize_batchnorm(keras.Model(images, outputs, name="conv"))


def write_noisy_folder(root):
    """``colour_model``'s folder (its red levels: top-1 40%, top-5 70%) with noise in green and
    blue, so the crops of an image differ."""
    rng = np.random.default_rng(0)
    for i, (pred, label) in enumerate(CASES):
        (root / f"c{label}").mkdir(parents=True, exist_ok=True)
        image = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
        image[..., 0] = 20 + 20 * pred + 5
        Image.fromarray(image).save(root / f"c{label}" / f"{i}.png")
    for label in range(10):
        (root / f"c{label}").mkdir(exist_ok=True)
    return root


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """``(data folder, "colour.keras,conv.keras")``: a 2-member ensemble of two input sizes."""
    root = tmp_path_factory.mktemp("devices")
    paths = [str(root / "colour.keras"), str(root / "conv.keras")]
    colour_model().save(paths[0])
    conv_model().save(paths[1])
    return write_noisy_folder(root / "data"), ",".join(paths)


def run_both(backend, setup, tmp_path) -> dict:
    env, _ = BACKENDS[backend]
    data, models = setup
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(data), models, str(tmp_path)],
        capture_output=True, text=True, timeout=600, env={**ENV, **env}, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("FOUND "))
    return json.loads(line[len("FOUND ") :])


def scores(result) -> list:
    rows = result["models"] + [result["ensemble"]]
    return [(r["num_images"], r["top1"], r["top5"]) for r in rows]


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_two_devices_give_the_results_of_one(backend, setup, tmp_path):
    found = run_both(backend, setup, tmp_path)
    one, two = found["eval"]["1"], found["eval"]["2"]
    assert (one["backend"], one["strategy"], one["devices"]) == (backend, "none", 1)
    assert (two["backend"], two["strategy"], two["devices"]) == (backend, BACKENDS[backend][1], 2)
    assert scores(one) == scores(two)
    assert scores(one)[0] == (10, 40.0, 70.0)  # the colour model's known answers
    assert one["micro_batch"] == two["micro_batch"] == 7 and one["crops"] == 10

    rows = found["predict"]["1"], found["predict"]["2"]
    assert [r["input"] for r in rows[0]] == [r["input"] for r in rows[1]]
    assert len(rows[0]) == 10 and all("predictions" in r for r in rows[1])
    for a, b in zip(*rows):
        assert [p["label"] for p in a["predictions"]] == [p["label"] for p in b["predictions"]]
        probs = [[p["probability"] for p in r["predictions"]] for r in (a, b)]
        np.testing.assert_allclose(probs[0], probs[1], rtol=0, atol=1e-5)

    assert found["split"] == [3, 3] and found["rows"] == 6  # half the rows on each device
    assert found["code"] == 2 and found["error"].count("\n") == 1
    assert "--devices 3 asks for more devices than the 2 present" in found["error"]
    assert "or --devices all" in found["error"] and "Traceback" not in found["error"]
    names = "/device:CPU:0, /device:CPU:1" if backend == "tensorflow" else "cpu:0, cpu:1"
    assert names in found["error"] and names in found["api_error"]


@pytest.mark.parametrize("value", ["0", "two", "1.5", "-1"])
def test_bad_device_counts_are_refused_before_tensorflow(value, tmp_path, capsys):
    (tmp_path / "data" / "cat").mkdir(parents=True)
    argv = ["eval", "--model", "inception_v4", "--data", str(tmp_path / "data")]
    assert cli.main([*argv, "--devices", value]) == 2
    err = capsys.readouterr().err
    sentence = "--devices takes a count of devices (1, 2, ...) or 'all' (every local device)"
    assert f"{sentence}; got '{value}'." in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert cli.main(["predict", str(tmp_path), "--model", "inception_v4", "--devices", value]) == 2
    assert "--devices takes a count" in capsys.readouterr().err


def test_exported_models_run_on_one_device(tmp_path, capsys):
    artifact = tmp_path / "m.onnx"
    artifact.write_bytes(b"not read: refused before loading")
    (tmp_path / "data" / "cat").mkdir(parents=True)
    argv = ["eval", "--model", str(artifact), "--data", str(tmp_path / "data"), "--devices", "2"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "m.onnx runs in its own runtime on one device; drop --devices 2" in err
    assert err.count("\n") == 1
    assert placement("all", str(artifact)).record() == {
        "backend": keras.backend.backend(), "strategy": "none", "devices": 1,
    }  # fmt: skip
    assert placement(1).count == 1 and placement(1).distribution is None


def test_device_counts_and_padding_arithmetic():
    assert parse_count("all") is None and parse_count(None) is None and parse_count("3") == 3
    for bad in (0, True, 2.0, "x"):
        with pytest.raises(UsageError, match="--devices takes a count"):
            parse_count(bad)
    assert choose("all", ["a", "b"]) == ["a", "b"] and choose(1, ["a", "b"]) == ["a"]
    with pytest.raises(UsageError, match=r"than the 1 present \(a\); give --devices 1 or fewer"):
        choose(2, ["a"])
    runner = SimpleNamespace(rows=7, placement=SimpleNamespace(count=2))
    padded = [Runner.padded(runner, n) for n in range(1, 8)]
    assert padded == [2, 2, 4, 4, 8, 8, 8]  # a power of two (at most rows), a multiple of 2
    runner.placement.count = 1
    assert [Runner.padded(runner, n) for n in range(1, 8)] == [1, 2, 4, 4, 7, 7, 7]
