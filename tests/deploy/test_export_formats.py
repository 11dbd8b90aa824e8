"""``inception export --format onnx|litert|openvino``: each file answers as the Keras model does
(float32: within 1e-4 in probability), carries its class names and preprocessing, and has
labels.txt beside it; ensembles export in every format; int8 files agree with float32."""

import json

import numpy as np
import pytest
from conftest import FORMATS, SIZE, run_cli
from PIL import Image

from inception.deploy import load_artifact
from inception.models.info import load_model


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_float32_export_answers_as_the_keras_model(fmt, exported, colour_keras, pixels):
    expected = load_model(colour_keras).predict_on_batch(pixels / 127.5 - 1)  # scaling outside
    artifact = load_artifact(exported[fmt])
    got = artifact(pixels)  # pixels 0..255: the scaling is inside
    assert got.shape == (len(pixels), 10) and got.dtype == np.float32
    assert np.abs(got - expected).max() <= 1e-4
    assert np.abs(artifact(pixels[:3]) - expected[:3]).max() <= 1e-4  # another batch size


def stored_record(fmt, path) -> dict:
    """The record as the format's own tools read it (not through inception.deploy)."""
    if fmt == "onnx":
        import onnx

        props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        assert props["labels"].splitlines() == [f"c{i}" for i in range(10)]
        return json.loads(props["inception"])
    if fmt == "openvino":
        import openvino

        model = openvino.Core().read_model(str(path))
        return json.loads(model.get_rt_info(["inception"]).astype(str))
    from tensorflow.lite.python import schema_py_generated as fb

    model = fb.Model.GetRootAs(path.read_bytes(), 0)
    entries = {model.Metadata(i).Name().decode(): model.Metadata(i).Buffer()
               for i in range(model.MetadataLength())}  # fmt: skip
    return json.loads(model.Buffers(entries["inception"]).DataAsNumpy().tobytes())


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_class_names_and_preprocessing_travel_inside_and_beside(fmt, exported):
    record = stored_record(fmt, exported[fmt])
    assert record["class_names"] == [f"c{i}" for i in range(10)]
    assert record["preprocessing"]["scale"] == "none"  # the scaling is inside: nothing twice
    assert record["preprocessing"]["input_size"] == SIZE
    labels = (exported[fmt].parent / "labels.txt").read_text().splitlines()
    assert labels == [f"c{i}" for i in range(10)]
    artifact = load_artifact(exported[fmt])
    assert artifact.class_names == labels and artifact.input_size == SIZE


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_ensemble_of_two_sizes_exports(fmt, colour_keras, tmp_path, pixels):
    from helpers import colour_model

    from inception.models.ensemble import Ensemble
    from inception.models.info import ModelInfo, save_model
    from inception.preprocessing import Preprocessing

    small = tmp_path / "small.keras"
    save_model(colour_model(32, name="small"), small,
               ModelInfo(class_names=[f"c{i}" for i in range(10)],
                         preprocessing=Preprocessing(input_size=32)))  # fmt: skip
    code, _, err = run_cli("export", "--format", fmt, "--model", f"{colour_keras},{small}",
                           "--ensemble-weights", "3,1", "--out", tmp_path / "out", "--name",
                           "pair", "--quiet")  # fmt: skip
    assert code == 0, err
    expected = Ensemble([load_model(colour_keras), load_model(small)], weights=[3, 1])(pixels)
    (path,) = [p for p in (tmp_path / "out").iterdir() if p.stem == "pair" and p.suffix != ".bin"]
    assert np.abs(load_artifact(path)(pixels) - np.asarray(expected)).max() <= 1e-4


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small conv net trained on generated images (5 classes by the red level, other channels
    noise), saved as .keras; a calibration folder of 120 images and 200 held-out images."""
    import keras

    from inception.models.info import ModelInfo, save_model
    from inception.preprocessing import Preprocessing

    rng = np.random.default_rng(1)

    def images(n):
        labels = rng.integers(0, 5, n)
        x = rng.normal(0, 8, (n, 32, 32, 3))
        x[..., 0] += (30 + 50 * labels + rng.uniform(-10, 10, n))[:, None, None]
        x[..., 1] += 90
        x[..., 2] += rng.uniform(0, 255, n)[:, None, None]
        return np.clip(x, 0, 255).astype(np.float32), labels

    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    h = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    h = keras.layers.GlobalAveragePooling2D()(h)
    model = keras.Model(inputs, keras.layers.Dense(5, activation="softmax")(h), name="red")
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    x, y = images(2000)
    model.fit(x / 127.5 - 1, y, epochs=8, batch_size=64, verbose=0)
    root = tmp_path_factory.mktemp("int8")
    path = root / "red.keras"
    save_model(model, path, ModelInfo(class_names=[f"r{i}" for i in range(5)],
               preprocessing=Preprocessing(input_size=32, crop_fraction=1.0)))  # fmt: skip
    calibration = root / "calibration"
    for i, image in enumerate(images(120)[0]):
        (calibration / f"r{i % 5}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.astype(np.uint8)).save(calibration / f"r{i % 5}" / f"{i}.png")
    (calibration / "notes.txt").write_text("not an image: skipped")
    held_out = images(200)[0]
    return path, calibration, held_out, model.predict_on_batch(held_out / 127.5 - 1)


@pytest.mark.parametrize("fmt", FORMATS)
def test_int8_agrees_with_float32_on_held_out_images(fmt, trained, tmp_path):
    path, calibration, held_out, expected = trained
    assert expected.max(1).mean() > 0.8  # a confident model: the classes mean something
    code, out, err = run_cli("export", "--format", fmt, "--model", path, "--out", tmp_path,
                             "--quantize", "int8", "--calibration-data", calibration,
                             "--quiet")  # fmt: skip
    assert code == 0, err
    assert "int8 against float32 on 120 calibration images: top-1 agreement" in out
    artifact = load_artifact(next(p for p in tmp_path.iterdir() if p.stem == "red"
                                  and p.suffix != ".bin"))  # fmt: skip
    got = artifact(held_out)
    assert (got.argmax(1) == expected.argmax(1)).mean() >= 0.95
    assert np.abs(got - expected).max() < 0.2


def test_a_real_network_exports_to_onnx(tmp_path):
    """Inception-ResNet-v1 at 75 px (random weights, BatchNorm statistics randomised so the
    graph's every part counts), through the command line, against Keras."""
    from helpers import randomize_batchnorm

    import inception
    from inception.models.info import save_model

    model = randomize_batchnorm(inception.build("inception_resnet_v1", weights=None, classes=5,
                                                input_shape=(75, 75, 3)))  # fmt: skip
    save_model(model, tmp_path / "irv1.keras")
    (tmp_path / "names.txt").write_text("a\nb\nc\nd\ne\n")
    code, _, err = run_cli("export", "--format", "onnx", "--model", tmp_path / "irv1.keras",
                           "--class-names", tmp_path / "names.txt", "--out", tmp_path / "out",
                           "--quiet")  # fmt: skip
    assert code == 0, err
    x = np.random.default_rng(2).uniform(0, 255, (4, 75, 75, 3)).astype(np.float32)
    artifact = load_artifact(tmp_path / "out" / "inception_resnet_v1.onnx")
    expected = model.predict_on_batch(x / 127.5 - 1)
    assert artifact.class_names == ["a", "b", "c", "d", "e"]
    assert np.abs(artifact(x) - expected).max() <= 1e-4
