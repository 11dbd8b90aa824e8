"""``inception export``: layout, signatures (checked with saved_model_cli), numerical agreement
with the Keras model, the decompression-bomb guard in the graph, and bad input."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
from helpers import png_header, randomize_batchnorm  # noqa: E402
from PIL import Image  # noqa: E402

import inception  # noqa: E402
import inception.serving.export  # noqa: E402
from inception.cli import main as cli  # noqa: E402
from inception.preprocessing import crops as crop_lib  # noqa: E402
from inception.serving import graph  # noqa: E402

SIZE, CLASSES = 75, 5
LABELS = ["cat", "dog", "fish", "bird", "horse"]
CLI = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")


def encode(pixels: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buf.getvalue()


def image(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth colour image (small when encoded, and decoded identically everywhere)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    a, b, c = rng.uniform(0.5, 3.0, 3)
    rgb = np.stack([np.sin(a * xx + b * yy), np.cos(b * xx - c * yy), np.sin(c * (xx + yy))], -1)
    return ((rgb + 1) * 127.5).astype(np.uint8)


def reference(model, data: bytes, size=SIZE, crop=0.875) -> np.ndarray:
    """What ``inception eval``/``predict`` compute for encoded ``data``: TensorFlow's decoder
    (Pillow's JPEG decoder rounds differently), the central crop of ``crop`` of each side,
    bilinear resize, [-1, 1] scaling, then the Keras model."""
    pixels = tf.io.decode_image(data, channels=3, expand_animations=False)
    prep = inception.Preprocessing(input_size=size, crop_fraction=crop)
    x = crop_lib.extract(pixels, 1, prep)
    return model.predict(x.numpy(), verbose=0)[0]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A 5-class Inception-ResNet-v1 at 75 px, exported through the CLI from a .weights.h5."""
    root = tmp_path_factory.mktemp("export")
    model = inception.build("inception_resnet_v1", input_shape=(SIZE, SIZE, 3), classes=CLASSES)
    weights = root / "small.weights.h5"
    model.save_weights(weights)
    labels = root / "labels.txt"
    labels.write_text("\n".join(LABELS) + "\n")
    argv = [
        "export",
        "--model",
        "inception_resnet_v1",
        "--weights",
        str(weights),
        "--image-size",
        str(SIZE),
        "--classes",
        str(CLASSES),
        "--labels",
        str(labels),
        "--name",
        "small",
        "--version",
        "1",
        "--out",
        str(root / "models"),
        "--top-k",
        "3",
        "--precision",
        "float32",  # exact comparisons with the Keras model below (auto: bfloat16 on this CPU)
    ]
    assert cli(argv) == 0
    return {"model": model, "root": root, "dir": root / "models" / "small" / "1", "argv": argv}


@pytest.fixture(scope="module")
def loaded(exported):
    return tf.saved_model.load(str(exported["dir"]))


def test_layout_for_model_server(exported):
    d = exported["dir"]
    assert (d / "saved_model.pb").is_file()
    assert any((d / "variables").glob("variables.data-*"))
    assert (d / "assets.extra" / "tf_serving_warmup_requests").is_file()
    # No staging folder left behind next to the version.
    assert sorted(p.name for p in d.parent.iterdir()) == ["1"]


def test_refuses_to_overwrite_a_version(exported, capsys):
    before = (exported["dir"] / "saved_model.pb").stat().st_mtime_ns
    assert cli(exported["argv"]) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--overwrite" in err
    assert (exported["dir"] / "saved_model.pb").stat().st_mtime_ns == before


def _literal(data: bytes) -> str:
    # Every byte escaped: saved_model_cli splits --input_exprs on ';'.
    return "b'" + "".join(f"\\x{c:02x}" for c in data) + "'"


def test_saved_model_cli_show_and_run(exported, tmp_path):
    """``saved_model_cli show --all`` lists the three signatures; ``saved_model_cli run`` of
    ``serving_default`` on a JPEG matches the Keras model (both CLIs run side by side)."""
    jpeg = encode(image(40, 52, 0), "JPEG")
    out = tmp_path / "out"
    d = str(exported["dir"])
    show = subprocess.Popen(
        [CLI, "show", "--dir", d, "--all"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    run = subprocess.run(
        [
            CLI,
            "run",
            "--dir",
            d,
            "--tag_set",
            "serve",
            "--signature_def",
            "serving_default",
            "--input_exprs",
            f"images=[{_literal(jpeg)}]",
            "--outdir",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    text = show.communicate(timeout=300)[0]
    assert show.returncode == 0 and run.returncode == 0, run.stderr[-2000:]

    for name in ("serving_default", "predict_pixels", "classify"):
        assert f"signature_def['{name}']" in text
    sections = {s.split("'")[0]: s for s in text.split("signature_def['")[1:]}
    assert "tensorflow/serving/classify" in sections["classify"]
    assert "tensorflow/serving/predict" in sections["serving_default"]
    default = sections["serving_default"]
    assert "inputs['images']" in default and "dtype: DT_STRING" in default
    for output in ("classes", "class_ids", "scores", "probabilities"):
        assert f"outputs['{output}']" in default
    assert "shape: (-1, 75, 75, 3)" in sections["predict_pixels"]

    probs = np.load(out / "probabilities.npy")
    np.testing.assert_allclose(probs[0], reference(exported["model"], jpeg), atol=2e-4)
    classes = np.load(out / "classes.npy", allow_pickle=True)
    assert [c.decode() for c in classes[0]] == [LABELS[i] for i in np.argsort(-probs[0])[:3]]


def test_signatures_in_process_match_keras(exported, loaded):
    model = exported["model"]
    images = [
        encode(image(64, 48, 2), "PNG"),
        encode(image(30, 90, 3), "JPEG"),
        encode(image(75, 75, 4), "BMP"),
        encode(image(80, 60, 5), "GIF"),
    ]
    out = loaded.signatures["serving_default"](images=tf.constant(images))
    for i, data in enumerate(images[:3]):  # GIF is palette-quantised: checked for shape only
        np.testing.assert_allclose(out["probabilities"][i], reference(model, data), atol=2e-4)
    assert out["probabilities"].shape == (4, CLASSES)
    np.testing.assert_allclose(tf.reduce_sum(out["probabilities"], -1), 1.0, atol=1e-5)
    assert out["scores"].shape == out["class_ids"].shape == (4, 3)

    pixels = np.random.default_rng(1).uniform(0, 255, (2, SIZE, SIZE, 3)).astype("f4")
    got = loaded.signatures["predict_pixels"](pixels=tf.constant(pixels))["probabilities"]
    want = model.predict(inception.preprocess_input(pixels), verbose=0)
    np.testing.assert_allclose(got, want, atol=2e-4)

    example = tf.train.Example()
    example.features.feature["image/encoded"].bytes_list.value.append(images[0])
    cls = loaded.signatures["classify"](inputs=tf.constant([example.SerializeToString()]))
    np.testing.assert_allclose(cls["scores"][0], out["scores"][0], atol=1e-6)
    assert [c.decode() for c in cls["classes"].numpy()[0]] == [
        LABELS[i] for i in out["class_ids"].numpy()[0]
    ]


def test_declared_size_is_read_from_headers():
    for fmt in ("JPEG", "PNG", "GIF", "BMP"):
        data = encode(image(37, 53, 6), fmt)
        assert int(graph.declared_pixels(tf.constant(data))) == 37 * 53, fmt
    assert int(graph.declared_pixels(tf.constant(png_header(30000, 30000)))) == 900_000_000
    assert int(graph.declared_pixels(tf.constant(b"not an image at all"))) == 0


def test_graph_refuses_decompression_bombs(loaded):
    with pytest.raises(tf.errors.InvalidArgumentError, match="image too large"):
        loaded.signatures["serving_default"](images=tf.constant([png_header(30000, 30000)]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="send JPEG, PNG, GIF or BMP"):
        loaded.signatures["serving_default"](images=tf.constant([b"plain text, not an image"]))


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--model", "inception_v5"], "unknown model"),
        (["--version", "0"], "positive integers"),
        (["--name", "a/b"], "invalid model name"),
        (["--labels", "/nonexistent/labels.txt"], "no such labels file"),
        (["--model", "missing.keras"], "model file 'missing.keras' does not exist"),
        (["--image-size", "60"], "below"),
        (["--weights", "none,none"], "2 --weights values for 1 models"),
    ],
)
def test_bad_arguments_get_one_clear_error(tmp_path, capsys, extra, message):
    argv = [
        "export",
        "--model",
        "inception_resnet_v1",
        "--weights",
        "none",
        "--image-size",
        "75",
        "--classes",
        "5",
        "--name",
        "m",
        "--version",
        "1",
        "--out",
        str(tmp_path),
    ]
    for i in range(0, len(extra), 2):  # replace or add each flag
        if extra[i] in argv:
            argv[argv.index(extra[i]) + 1] = extra[i + 1]
        else:
            argv += extra[i : i + 2]
    assert cli(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "m" / "1").exists()


def test_class_names_are_required_beyond_imagenet(tmp_path, capsys):
    argv = [
        "export",
        "--model",
        "inception_resnet_v1",
        "--weights",
        "none",
        "--image-size",
        "75",
        "--classes",
        "5",
        "--name",
        "m",
        "--version",
        "1",
        "--out",
        str(tmp_path),
    ]
    assert cli(argv) == 2
    assert "--class-names" in capsys.readouterr().err
    labels = tmp_path / "three.txt"
    labels.write_text("a\nb\nc\n")
    assert cli([*argv, "--labels", str(labels)]) == 2
    assert "3 names but the model predicts 5" in capsys.readouterr().err
    shutil.rmtree(tmp_path / "m", ignore_errors=True)


def test_each_weight_is_stored_once(exported):
    stored = sum(p.stat().st_size for p in (exported["dir"] / "variables").glob("variables.data-*"))
    weights = sum(np.asarray(w).nbytes for w in exported["model"].weights)
    assert 0.9 * weights < stored < 1.1 * weights  # folded BatchNorm: a little smaller


def test_a_trained_model_exports_without_flags(tmp_path, capsys):
    """A .keras file with its record (class names, 75 px) needs no --classes/--labels/--image-size,
    and the export answers as ``inception predict`` does."""
    model = inception.build("inception_resnet_v1", input_shape=(SIZE, SIZE, 3), classes=3)
    info = inception.model_info(model).replace(class_names=("cat", "dog", "n01440764"))
    path = inception.save_model(model, tmp_path / "run.keras", info)
    argv = ["export", "--model", str(path), "--name", "m", "--version", "1", "--quiet"]
    assert cli([*argv, "--out", str(tmp_path / "out"), "--precision", "float32"]) == 0
    loaded = tf.saved_model.load(str(tmp_path / "out" / "m" / "1"))
    jpeg = encode(image(40, 52, 7), "JPEG")
    out = loaded.signatures["serving_default"](images=tf.constant([jpeg]))
    (tmp_path / "x.jpg").write_bytes(jpeg)
    from inception.evaluation.predict import predict

    (pred,) = predict([tmp_path / "x.jpg"], str(path), top=3)
    assert [c.decode() for c in out["classes"].numpy()[0]] == [
        p["class"] for p in pred["predictions"]
    ]
    assert {p["class"] for p in pred["predictions"]} == {"cat", "dog", "tench"}
    np.testing.assert_allclose(
        out["scores"].numpy()[0], [p["probability"] for p in pred["predictions"]], atol=1e-5
    )


def test_export_without_weights_is_not_random(tmp_path, capsys):
    """Like eval and predict, export defaults to the pretrained weights: a model without any
    refuses rather than exporting random weights."""
    argv = ["export", "--model", "inception_resnet_v1", "--name", "m", "--version", "1"]
    assert cli([*argv, "--out", str(tmp_path)]) == 2
    assert "no public ImageNet checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "m" / "1").exists()


def test_bfloat16_export_agrees_with_float32(tmp_path):
    """The same model (random, non-trivial BatchNorm statistics) exported in float32 and in
    bfloat16: same signatures and dtypes, probabilities close, the same top-1 on nearly all
    images."""
    model = randomize_batchnorm(
        inception.build("inception_resnet_v1", input_shape=(SIZE, SIZE, 3), classes=CLASSES)
    )
    images = [encode(image(60 + 3 * i, 80 - 2 * i, 20 + i), "JPEG") for i in range(16)]
    outputs = {}
    for precision in ("float32", "bfloat16"):
        path = inception.serving.export.export_saved_model(
            [model], tmp_path, precision, 1, LABELS, precision=precision
        )
        loaded = tf.saved_model.load(str(path))
        out = loaded.signatures["serving_default"](images=tf.constant(images))
        assert out["probabilities"].dtype == tf.float32
        outputs[precision] = out["probabilities"].numpy()
    f32, bf16 = outputs["float32"], outputs["bfloat16"]
    assert np.abs(bf16 - f32).max() < 0.05
    assert (bf16.argmax(axis=1) == f32.argmax(axis=1)).sum() >= 14
    # A random network favours one class for every image; what tells the images apart is the
    # part of the log-probabilities that varies across the batch: it must survive bfloat16.
    centred = {k: np.log(v) - np.log(v).mean(axis=0) for k, v in outputs.items()}
    tops = {k: v.argmax(axis=1) for k, v in centred.items()}
    assert len(set(tops["float32"])) >= 3 and (tops["float32"] == tops["bfloat16"]).sum() >= 12
