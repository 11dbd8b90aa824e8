"""``inception serve`` against TF-Serving clients: plain HTTP in the documented JSON format and
the official ``tensorflow_serving.apis`` gRPC stubs, for a single model and an ensemble; bad
input; concurrency and batching; new and broken versions; the CLI with graceful shutdown.

Everything listens on 127.0.0.1 on ports chosen at run time; loops are bounded in count and time.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from helpers import free_port, png_header

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import grpc  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image  # noqa: E402
from tensorflow_serving.apis import (  # noqa: E402
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

import inception  # noqa: E402
from inception.preprocessing.crops import extract_crops  # noqa: E402
from inception.serving.batching import BatchingParameters  # noqa: E402
from inception.serving.export import export_saved_model  # noqa: E402
from inception.serving.repository import ModelSpec  # noqa: E402
from inception.serving.server import ModelServer, ServerThread  # noqa: E402

LABELS = ["cat", "dog", "fish", "bird", "horse"]
LIMIT = 2 * 1024 * 1024  # request size limit of the test server


def picture(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    a, b, c = rng.uniform(0.5, 3.0, 3)
    rgb = np.stack([np.sin(a * xx + b * yy), np.cos(b * xx - c * yy), np.sin(c * (xx + yy))], -1)
    return ((rgb + 1) * 127.5).astype(np.uint8)


def encode(pixels: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt)
    return buf.getvalue()


def crop_resize(data: bytes, size: int) -> np.ndarray:
    """TensorFlow's decoder, the central 0.875, bilinear resize: the crop of ``inception eval``,
    which the export runs in its graph."""
    pixels = tf.io.decode_image(data, channels=3, expand_animations=False)
    return extract_crops(pixels, 1, size, 0.875)[0].numpy()


def small_classifier(size: int, classes: int, seed: int):
    import keras

    keras.utils.set_random_seed(seed)
    x = inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(classes, activation="softmax")(x)
    return keras.Model(inputs, outputs)


IMAGES = [
    encode(picture(64, 48, 1), "JPEG"),
    encode(picture(90, 120, 2), "PNG"),
    encode(picture(75, 75, 3), "JPEG"),
    encode(picture(50, 70, 4), "BMP"),
]


def b64(data: bytes) -> dict:
    return {"b64": base64.b64encode(data).decode()}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    single = inception.build("inception_resnet_v1", input_shape=(75, 75, 3), classes=5)
    export_saved_model([single], root, "single", 1, LABELS, top_k=3)
    # Ensemble members: two small Keras classifiers (export and ensemble logic do not depend on
    # the network; a real Inception-ResNet-v1 is the single model) at different input sizes,
    # the second with a 6-class head whose first column is dropped as slim's "background".
    a, b = small_classifier(75, 5, seed=1), small_classifier(83, 6, seed=2)
    export_saved_model([a, b], root, "ensemble", 1, LABELS, top_k=3)

    def probabilities(model, size):  # each model on its own crops, at its own size
        x = inception.preprocess_input(np.stack([crop_resize(d, size) for d in IMAGES]))
        return model.predict(x, verbose=0)

    second = probabilities(b, 83)[:, 1:]  # background dropped, renormalised
    expected = {
        "single": probabilities(single, 75),
        "ensemble": (probabilities(a, 75) + second / second.sum(axis=1, keepdims=True)) / 2,
    }
    server = ModelServer(
        [ModelSpec("single", str(root / "single")), ModelSpec("ensemble", str(root / "ensemble"))],
        BatchingParameters(max_batch_size=8, num_batch_threads=1),
        host="127.0.0.1",
        rest_port=0,
        grpc_port=0,
        max_request_bytes=LIMIT,
        poll_seconds=0.5,
    )
    thread = ServerThread(server).start()
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    yield {
        "root": root,
        "server": server,
        "expected": expected,
        "single": single,
        "url": f"http://127.0.0.1:{server.rest_port}",
        "predict": prediction_service_pb2_grpc.PredictionServiceStub(channel),
        "models": model_service_pb2_grpc.ModelServiceStub(channel),
    }
    channel.close()
    thread.stop()


def http(served, path, body=None, method=None):
    data = None if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(served["url"] + path, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read()) if "json" in r.headers[
                "Content-Type"
            ] else r.read()
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def grpc_predict(served, name, images, signature="", version=None, outputs=()):
    req = predict_pb2.PredictRequest()
    req.model_spec.name = name
    req.model_spec.signature_name = signature
    if version is not None:
        req.model_spec.version.value = version
    req.inputs["images"].CopyFrom(tf.make_tensor_proto(images, dtype=tf.string))
    req.output_filter.extend(outputs)
    return served["predict"].Predict(req, timeout=60)


# ------------------------------------------------------------------------ correct predictions


def test_rest_predict_row_and_columnar_formats_match_keras(served):
    want = served["expected"]["single"]
    status, body = http(
        served, "/v1/models/single:predict", {"instances": [b64(d) for d in IMAGES]}
    )
    assert status == 200, body
    rows = body["predictions"]
    np.testing.assert_allclose([r["probabilities"] for r in rows], want, atol=2e-4)
    for row, p in zip(rows, want, strict=True):
        assert row["classes"] == [LABELS[i] for i in np.argsort(-p)[:3]]
        assert row["class_ids"] == np.argsort(-p)[:3].tolist()

    status, body = http(
        served,
        "/v1/models/single/versions/1:predict",
        {
            "signature_name": "serving_default",
            "inputs": {"images": [b64(IMAGES[1]), b64(IMAGES[2])]},
        },
    )
    assert status == 200, body
    np.testing.assert_allclose(body["outputs"]["probabilities"], want[1:3], atol=2e-4)

    pixels = np.stack([crop_resize(d, 75) for d in IMAGES[:2]])
    status, body = http(
        served,
        "/v1/models/single:predict",
        {"signature_name": "predict_pixels", "instances": pixels.tolist()},
    )
    assert status == 200, body
    np.testing.assert_allclose(
        [r["probabilities"] for r in body["predictions"]], want[:2], atol=2e-4
    )


def test_rest_classify_status_metadata_and_health(served):
    want = served["expected"]["single"]
    status, body = http(
        served,
        "/v1/models/single:classify",
        {"signature_name": "classify", "examples": [{"image/encoded": b64(IMAGES[0])}]},
    )
    assert status == 200, body
    (result,) = body["result"]
    assert [label for label, _ in result] == [LABELS[i] for i in np.argsort(-want[0])[:3]]
    np.testing.assert_allclose([s for _, s in result], np.sort(want[0])[::-1][:3], atol=2e-4)

    status, body = http(served, "/v1/models/single")
    assert status == 200
    assert body["model_version_status"][0]["version"] == "1"
    assert body["model_version_status"][0]["state"] == "AVAILABLE"
    assert body["model_version_status"][0]["status"] == {"error_code": "OK", "error_message": ""}
    status, body = http(served, "/v1/models/ensemble/versions/1/metadata")
    assert status == 200 and body["model_spec"]["version"] == "1"
    defs = body["metadata"]["signature_def"]["signature_def"]
    assert set(defs) >= {"serving_default", "predict_pixels", "classify"}
    assert defs["classify"]["method_name"] == "tensorflow/serving/classify"
    assert defs["predict_pixels"]["inputs"]["pixels"]["tensor_shape"]["dim"][1]["size"] == "83"
    status, body = http(served, "/healthz")
    assert status == 200 and body["models"] == {"single": ["1"], "ensemble": ["1"]}


def test_grpc_predict_classify_metadata_status_match_keras(served):
    want = served["expected"]["single"]
    resp = grpc_predict(served, "single", IMAGES)
    assert resp.model_spec.version.value == 1
    assert resp.model_spec.signature_name == "serving_default"
    np.testing.assert_allclose(tf.make_ndarray(resp.outputs["probabilities"]), want, atol=2e-4)
    resp = grpc_predict(served, "single", IMAGES[:1], outputs=["classes"])
    assert list(resp.outputs) == ["classes"]
    assert [c.decode() for c in tf.make_ndarray(resp.outputs["classes"])[0]] == [
        LABELS[i] for i in np.argsort(-want[0])[:3]
    ]

    req = classification_pb2.ClassificationRequest()
    req.model_spec.name = "single"
    req.model_spec.signature_name = "classify"
    for data in IMAGES[:2]:
        ex = req.input.example_list.examples.add()
        ex.features.feature["image/encoded"].bytes_list.value.append(data)
    resp = served["predict"].Classify(req, timeout=60)
    assert len(resp.result.classifications) == 2
    top = resp.result.classifications[1].classes[0]
    assert top.label == LABELS[int(np.argmax(want[1]))]
    assert abs(top.score - want[1].max()) < 2e-4

    meta = get_model_metadata_pb2.GetModelMetadataRequest()
    meta.model_spec.name = "single"
    meta.metadata_field.append("signature_def")
    resp = served["predict"].GetModelMetadata(meta, timeout=30)
    defs = get_model_metadata_pb2.SignatureDefMap()
    resp.metadata["signature_def"].Unpack(defs)
    assert (
        defs.signature_def["serving_default"].inputs["images"].dtype == tf.string.as_datatype_enum
    )

    status = get_model_status_pb2.GetModelStatusRequest()
    status.model_spec.name = "single"
    resp = served["models"].GetModelStatus(status, timeout=30)
    assert [(v.version, v.state) for v in resp.model_version_status] == [(1, 30)]  # AVAILABLE


def test_ensemble_over_rest_and_grpc_matches_keras_ensemble(served):
    want = served["expected"]["ensemble"]
    assert want.shape == (len(IMAGES), 5)
    status, body = http(
        served, "/v1/models/ensemble:predict", {"instances": [b64(d) for d in IMAGES]}
    )
    assert status == 200, body
    np.testing.assert_allclose([r["probabilities"] for r in body["predictions"]], want, atol=2e-4)
    resp = grpc_predict(served, "ensemble", IMAGES)
    np.testing.assert_allclose(tf.make_ndarray(resp.outputs["probabilities"]), want, atol=2e-4)


# -------------------------------------------------------------------------------- bad input


BAD_REST = [
    ("/v1/models/single:predict", {"instances": [{"b64": "%%%not-base64"}]}, 400, "base64"),
    (
        "/v1/models/single:predict",
        {"instances": [b64(b"just some text, not an image")]},
        400,
        "JPEG, PNG, GIF or BMP",
    ),
    (
        "/v1/models/single:predict",
        {"instances": [b64(IMAGES[0][: len(IMAGES[0]) // 2])]},
        400,
        "JPEG",
    ),
    (
        "/v1/models/single:predict",
        {"instances": [b64(png_header(30000, 30000))]},
        400,
        "too large",
    ),
    ("/v1/models/single:predict", b'{"instances": [', 400, "JSON Parse error"),
    ("/v1/models/single:predict", {"instance": []}, 400, "'instances'"),
    (
        "/v1/models/single:predict",
        {"signature_name": "predict_pixels", "instances": ["a"]},
        400,
        "numbers, got text",
    ),
    (
        "/v1/models/single:predict",
        {"signature_name": "predict_pixels", "instances": np.zeros((1, 10, 10, 3)).tolist()},
        400,
        "expects shape",
    ),
    ("/v1/models/nosuchmodel:predict", {"instances": [b64(IMAGES[0])]}, 404, "nosuchmodel"),
    (
        "/v1/models/single/versions/7:predict",
        {"instances": [b64(IMAGES[0])]},
        404,
        "Specific(single, 7)",
    ),
    (
        "/v1/models/single/labels/canary:predict",
        {"instances": [b64(IMAGES[0])]},
        400,
        "label 'canary'",
    ),
    (
        "/v1/models/single:predict",
        {"signature_name": "nope", "instances": [b64(IMAGES[0])]},
        400,
        '"nope" not found',
    ),
    ("/v1/models/single:predict", {"instances": [b64(b"\xff" * LIMIT)]}, 413, "too large"),
    ("/v1/models/single:explode", {"instances": []}, 404, "Malformed request"),
]


@pytest.mark.parametrize(
    "path, body, code, message", BAD_REST, ids=[f"{i}-{c[2]}" for i, c in enumerate(BAD_REST)]
)
def test_bad_rest_requests_get_4xx_and_the_server_keeps_serving(served, path, body, code, message):
    status, answer = http(served, path, body)
    assert status == code, answer
    assert set(answer) == {"error"} and message in answer["error"], answer
    status, answer = http(served, "/v1/models/single:predict", {"instances": [b64(IMAGES[0])]})
    assert status == 200
    np.testing.assert_allclose(
        answer["predictions"][0]["probabilities"], served["expected"]["single"][0], atol=2e-4
    )


def test_bad_grpc_requests_get_status_codes(served):
    cases = [
        (lambda: grpc_predict(served, "single", [b"not an image"]), "INVALID_ARGUMENT", "JPEG"),
        (
            lambda: grpc_predict(served, "single", [png_header(30000, 30000)]),
            "INVALID_ARGUMENT",
            "too large",
        ),
        (
            lambda: grpc_predict(served, "single", IMAGES[:1], signature="nope"),
            "INVALID_ARGUMENT",
            "not found",
        ),
        (lambda: grpc_predict(served, "missing", IMAGES[:1]), "NOT_FOUND", "missing"),
        (lambda: grpc_predict(served, "single", IMAGES[:1], version=9), "NOT_FOUND", "9"),
        (
            lambda: grpc_predict(served, "single", IMAGES[:1], outputs=["logits"]),
            "INVALID_ARGUMENT",
            "output_filter",
        ),
        (
            lambda: grpc_predict(served, "single", [b"\x00" * (LIMIT + 10)]),
            "RESOURCE_EXHAUSTED",
            "",
        ),
    ]
    wrong_dtype = predict_pb2.PredictRequest()
    wrong_dtype.model_spec.name = "single"
    wrong_dtype.inputs["images"].CopyFrom(tf.make_tensor_proto(np.zeros(2, np.float32)))
    cases.append(
        (
            lambda: served["predict"].Predict(wrong_dtype, timeout=30),
            "INVALID_ARGUMENT",
            "expects string",
        )
    )
    for call, code, message in cases:
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code().name == code, err.value.details()
        assert message in (err.value.details() or ""), err.value.details()
    assert grpc_predict(served, "single", IMAGES[:1]).model_spec.version.value == 1


# ------------------------------------------------------------------- concurrency and batching


def _batch_stats(served):
    status, text = http(served, "/metrics")
    assert status == 200
    text = text.decode()

    def value(name):
        m = re.search(name + r'\{model="single",signature="serving_default"\} (\S+)', text)
        return float(m.group(1)) if m else 0.0

    return value("inception_serving_batch_size_count"), value("inception_serving_batch_size_sum")


def test_parallel_clients_get_correct_answers_and_requests_are_batched(served):
    want = served["expected"]["single"]
    batches_before, rows_before = _batch_stats(served)

    def client(i):
        k = i % len(IMAGES)
        if i % 2:
            resp = grpc_predict(served, "single", [IMAGES[k]])
            got = tf.make_ndarray(resp.outputs["probabilities"])[0]
        else:
            status, body = http(
                served, "/v1/models/single:predict", {"instances": [b64(IMAGES[k])]}
            )
            assert status == 200, body
            got = body["predictions"][0]["probabilities"]
        return k, np.asarray(got)

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(client, range(64), timeout=240))
    for k, got in results:
        np.testing.assert_allclose(got, want[k], atol=2e-4)
    batches, rows = _batch_stats(served)
    assert rows - rows_before == 64
    assert (rows - rows_before) / (batches - batches_before) > 1.0  # batches merged requests
    status, text = http(served, "/metrics")
    assert (
        'inception_serving_requests_total{api="grpc",code="OK",method="predict"'
        in text.decode().replace('model="single",', "")
    )


# ---------------------------------------------------------------------------- model versions


def _wait(predicate, seconds=120):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.25)
    return False


def _taken_up(url):
    """Whether the server has taken up ensemble predictions: rows queued or answers given."""
    with urllib.request.urlopen(url + "/metrics", timeout=30) as r:
        text = r.read().decode()
    total = 0.0
    for metric, labels, value in re.findall(r"(inception_serving_\w+)\{([^}]*)\} (\S+)", text):
        fields = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        if fields.get("model") != "ensemble":
            continue
        if metric == "inception_serving_queue_rows" or (
            metric == "inception_serving_requests_total" and fields.get("method") == "predict"
        ):
            total += float(value)
    return total > 0


def _states(served):
    status, body = http(served, "/v1/models/single")
    return {int(v["version"]): v for v in body["model_version_status"]}


def test_new_version_is_picked_up_and_a_broken_one_is_reported(served):
    base = served["root"] / "single"
    shutil.copytree(base / "1", base / ".copy-2")
    os.replace(base / ".copy-2", base / "2")
    assert _wait(lambda: _states(served).get(2, {}).get("state") == "AVAILABLE")
    assert grpc_predict(served, "single", IMAGES[:1]).model_spec.version.value == 2
    assert grpc_predict(served, "single", IMAGES[:1], version=1).model_spec.version.value == 1

    (base / "3").mkdir()
    (base / "3" / "saved_model.pb").write_bytes(b"this is not a SavedModel")
    assert _wait(lambda: _states(served).get(3, {}).get("state") == "END")
    broken = _states(served)[3]
    assert broken["status"]["error_message"]
    status, body = http(served, "/v1/models/single:predict", {"instances": [b64(IMAGES[0])]})
    assert status == 200
    np.testing.assert_allclose(
        body["predictions"][0]["probabilities"], served["expected"]["single"][0], atol=2e-4
    )
    assert grpc_predict(served, "single", IMAGES[:1]).model_spec.version.value == 2
    status, body = http(
        served, "/v1/models/single/versions/3:predict", {"instances": [b64(IMAGES[0])]}
    )
    assert status == 404


# -------------------------------------------------------------------------------------- CLI


@pytest.mark.slow
def test_cli_serves_and_shuts_down_gracefully(served):
    rest, grpc_port = free_port(), free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "inception.cli",
            "serve",
            "--model-base-path",
            str(served["root"] / "ensemble"),
            "--host",
            "127.0.0.1",
            "--rest-port",
            str(rest),
            "--grpc-port",
            str(grpc_port),
            "--grace-seconds",
            "30",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{rest}"
    try:

        def ready():
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=2) as r:
                    return r.status == 200
            except OSError:
                assert proc.poll() is None, proc.stdout.read()
                return False

        assert _wait(ready, 180)
        body = json.dumps({"instances": [b64(d) for d in IMAGES]}).encode()

        def request(_):
            req = urllib.request.Request(url + "/v1/models/ensemble:predict", data=body)
            with urllib.request.urlopen(req, timeout=120) as r:
                return r.status, json.loads(r.read())

        with ThreadPoolExecutor(6) as pool:
            futures = [pool.submit(request, i) for i in range(6)]
            # in flight: the server has taken up the work (queued rows or an answer given)
            assert _wait(lambda: _taken_up(url), 60), "the requests never reached the server"
            proc.send_signal(signal.SIGTERM)
            answers = [f.result(timeout=120) for f in futures]
        for status, answer in answers:
            assert status == 200
            np.testing.assert_allclose(
                [r["probabilities"] for r in answer["predictions"]],
                served["expected"]["ensemble"],
                atol=2e-4,
            )
        assert proc.wait(timeout=90) == 0
        assert "stopped" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
