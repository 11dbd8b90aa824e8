"""An ``Ensemble`` scales each member's input once, inside itself: its record says it takes [0, 255]
pixels, in memory, in ``.keras`` files (also files written when it wrongly said [-1, 1]), and
so ``Ensemble([m, m])`` answers exactly as ``m`` through Python, predict, eval, export and serve;
``Ensemble([a, b])`` agrees with the list ``a,b`` for members of different scalings, sizes and
label spaces."""

from __future__ import annotations

import json
import urllib.request
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import CASES, NUM, colour_model, write_colour_folder

import inception
from inception.cli import main as cli
from inception.evaluation.predict import predict
from inception.models.info import ARCHIVE_MEMBER, ModelInfo, model_info, set_model_info

CLASSES = [f"c{i}" for i in range(NUM)]


def colour(size=48, scale="inception", name="colour", background=None):
    """The helpers' colour classifier with its record: class names and the given scaling. With
    ``scale="none"`` it takes [0, 255] pixels (a Rescaling inside)."""
    model = colour_model(size, background=background, name=f"{name}_core")
    if scale == "none":
        pixels = keras.Input((size, size, 3))
        model = keras.Model(pixels, model(keras.layers.Rescaling(1 / 127.5, -1)(pixels)), name=name)
    names = CLASSES if background is None else ["background", *CLASSES]
    info = ModelInfo(
        class_names=names,
        label_offset=0 if background is None else 1,
        preprocessing=inception.Preprocessing(input_size=size, scale=scale),
    )
    return set_model_info(model, info)


def stale_copy(path, out):
    """``path`` as an Ensemble file written before the fix: its record says [-1, 1] scaling."""
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == ARCHIVE_MEMBER:
                record = json.loads(data)
                record["preprocessing"]["scale"] = "inception"
                data = json.dumps(record).encode()
            dst.writestr(item, data)
    return out


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("ensemble_scaling")
    member = colour()
    inception.save_model(member, root / "member.keras")
    ensemble = inception.Ensemble([colour(), colour()])
    inception.save_model(ensemble, root / "ensemble.keras")
    stale_copy(root / "ensemble.keras", root / "stale.keras")
    images = write_colour_folder(root / "data")
    return {"root": root, "member": member, "data": images}


def probabilities(results):
    return {r["input"]: {p["class"]: p["probability"] for p in r["predictions"]} for r in results}


def test_an_ensemble_describes_its_own_input_as_raw_pixels():
    member = colour()
    ensemble = inception.Ensemble([member, member])
    prep = model_info(ensemble).preprocessing
    assert prep.scale == "none"
    assert (prep.input_size, prep.crop_fraction, prep.interpolation) == (48, 0.875, "bilinear")
    pixels = np.random.default_rng(0).uniform(0, 255, (6, 48, 48, 3)).astype("float32")
    np.testing.assert_allclose(
        ensemble.predict(pixels, verbose=0),
        member.predict(pixels / 127.5 - 1, verbose=0),
        rtol=0,
        atol=1e-6,
    )


@pytest.mark.parametrize("name", ["ensemble.keras", "stale.keras"])
def test_a_saved_ensemble_keeps_saying_raw_pixels(files, name):
    loaded = inception.load_model(files["root"] / name)
    assert isinstance(loaded, inception.Ensemble)
    assert model_info(loaded).preprocessing.scale == "none"
    assert list(model_info(loaded).class_names) == CLASSES


@pytest.mark.parametrize("name", ["ensemble.keras", "stale.keras"])
def test_predict_and_eval_of_ensemble_files_equal_the_member(files, name):
    root, data = files["root"], files["data"]
    one = predict([data], str(root / "member.keras"), top=NUM)
    two = predict([data], str(root / name), top=NUM)
    want, got = probabilities(one), probabilities(two)
    assert want.keys() == got.keys() and len(want) == len(CASES)
    for image, scores in want.items():
        assert got[image].keys() == scores.keys()
        for cls, p in scores.items():
            assert got[image][cls] == pytest.approx(p, abs=1e-6)
    # the classifier is right on 4 of the 10 images (tests/helpers.py), not at chance
    member = inception.evaluate(str(root / "member.keras"), str(data), progress=False)
    ensemble = inception.evaluate(str(root / name), str(data), progress=False)
    assert member["models"][0]["top1"] == pytest.approx(40.0)
    assert ensemble["models"][0]["top1"] == member["models"][0]["top1"]
    assert ensemble["models"][0]["top5"] == member["models"][0]["top5"]


def test_the_predict_command_on_an_ensemble_file(files, capsys):
    root, data = files["root"], files["data"]
    assert cli(["predict", "--model", str(root / "stale.keras"), "--json", str(data)]) == 0
    got = probabilities(json.loads(capsys.readouterr().out))
    want = probabilities(predict([data], str(root / "member.keras")))
    for image, scores in want.items():
        best = max(scores, key=scores.get)
        assert max(got[image], key=got[image].get) == best
        assert got[image][best] == pytest.approx(scores[best], abs=1e-6)


def test_export_and_serve_of_an_ensemble_file_equal_the_member(files):
    from inception.serving.batching import BatchingParameters
    from inception.serving.repository import ModelSpec
    from inception.serving.server import ModelServer, ServerThread

    root, out = files["root"], files["root"] / "exported"
    for name in ("member", "stale"):
        argv = ["export", "--model", str(root / f"{name}.keras"), "--name", name, "--out", str(out)]
        assert cli([*argv, "--version", "1", "--precision", "float32"]) == 0
    images = sorted(p.read_bytes() for p in files["data"].rglob("*.png"))
    answers = {}
    for name in ("member", "stale"):
        saved = tf.saved_model.load(str(out / name / "1"))
        answers[name] = saved.signatures["serving_default"](images=tf.constant(images))
    want = answers["member"]["probabilities"].numpy()
    np.testing.assert_allclose(answers["stale"]["probabilities"].numpy(), want, atol=1e-6)
    assert want.argmax(1).tolist() != [want.argmax(1)[0]] * len(images)  # not one answer for all

    specs = [ModelSpec(n, str(out / n)) for n in ("member", "stale")]
    server = ModelServer(specs, BatchingParameters(max_batch_size=16), host="127.0.0.1",
                         rest_port=0, grpc_port=0, poll_seconds=0.5)  # fmt: skip
    thread = ServerThread(server).start()
    try:
        import base64

        body = {"instances": [{"b64": base64.b64encode(d).decode()} for d in images]}
        served = {}
        for name in ("member", "stale"):
            request = urllib.request.Request(
                f"http://127.0.0.1:{server.rest_port}/v1/models/{name}:predict",
                data=json.dumps(body).encode(),
            )
            with urllib.request.urlopen(request, timeout=120) as r:
                served[name] = [p["probabilities"] for p in json.loads(r.read())["predictions"]]
    finally:
        thread.stop()
    np.testing.assert_allclose(served["stale"], served["member"], atol=1e-6)
    np.testing.assert_allclose(served["member"], want, atol=1e-6)


def test_an_ensemble_of_unlike_members_agrees_with_the_list(files):
    """Members of different scalings ([-1, 1] and [0, 255]), sizes (48, 64) and label spaces
    (10 classes; 11 with slim's background column in front): the Ensemble crops once at its
    input size (64) and resizes inside, the list crops per member at its own size, so the two
    agree within resizing differences (1e-2 on probabilities here), with the same top class."""
    a = colour(48, "inception", name="a")
    b = colour(64, "none", name="b", background=3.0)
    ensemble = inception.Ensemble([a, b])
    assert model_info(ensemble).preprocessing.scale == "none" and ensemble.image_size == (64, 64)
    data = files["data"]
    listed = probabilities(predict([data], [a, b], top=NUM))
    single = probabilities(predict([data], ensemble, top=NUM))
    for image, scores in listed.items():
        assert max(single[image], key=single[image].get) == max(scores, key=scores.get)
        for cls, p in scores.items():
            assert single[image][cls] == pytest.approx(p, abs=1e-2)
