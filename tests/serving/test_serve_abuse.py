"""``inception serve`` under abuse, against real servers on 127.0.0.1: every malformed or
oversized request gets a 4xx / INVALID_ARGUMENT-class answer naming the problem, the metrics
count it by that code, slow and large bodies do not hold up others, the server's memory stays
bounded whatever the request, and SIGTERM with long work in flight exits within the grace
period (what fits runs, the rest is answered UNAVAILABLE).

Ports are chosen at run time; every request loop is bounded in count and time.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from helpers import free_port, metric_counts, post, wait_for

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import grpc  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image  # noqa: E402
from tensorflow_serving.apis import (  # noqa: E402
    classification_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from inception.serving import (
    limits,  # noqa: E402
    rest,  # noqa: E402
)
from inception.serving.batching import BatchingParameters  # noqa: E402
from inception.serving.export import export_saved_model  # noqa: E402
from inception.serving.repository import ModelSpec  # noqa: E402
from inception.serving.server import ModelServer, ServerThread  # noqa: E402

LABELS = ["cat", "dog", "fish", "bird", "horse"]
LIMIT = 2 * 1024 * 1024  # request size limit of the in-process server
MAX_BATCH = 8


def jpeg(h: int, w: int, seed: int, noise: bool = False) -> bytes:
    rng = np.random.default_rng(seed)
    if noise:
        pixels = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    else:
        yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
        a, b = rng.uniform(0.5, 3.0, 2)
        pixels = np.stack([np.sin(a * xx), np.cos(b * yy), np.sin(xx + yy)], -1)
        pixels = ((pixels + 1) * 127.5).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def gif_bomb(frame=(12000, 12000)) -> bytes:
    """A 10 x 10 GIF canvas holding one frame of ``frame`` pixels (a few bytes of data)."""
    head = b"GIF89a" + struct.pack("<HHBBB", 10, 10, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    image = b"\x2c" + struct.pack("<HHHHB", 0, 0, *frame, 0) + b"\x02\x02\x4c\x01\x00"
    return head + image + b"\x3b"


def gzip_zeros(size: int) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, 31)
    block = bytes(1 << 20)
    return b"".join(packer.compress(block) for _ in range(size >> 20)) + packer.flush()


def b64(data: bytes) -> dict:
    return {"b64": base64.b64encode(data).decode()}


def classifier(size: int, width: int, layers: int, seed: int):
    import keras

    keras.utils.set_random_seed(seed)
    x = inputs = keras.Input((size, size, 3))
    for _ in range(layers):
        x = keras.layers.Conv2D(width, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(len(LABELS), activation="softmax")(x))


GOOD = jpeg(64, 48, 1)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    export_saved_model([classifier(75, 8, 1, 1)], root, "tiny", 1, LABELS, top_k=3)
    # Slow enough (tens of ms per image here) for work to outlast a short shutdown grace.
    export_saved_model([classifier(75, 128, 4, 2)], root, "slow", 1, LABELS, top_k=3)
    return root


@pytest.fixture(scope="module")
def served(exported):
    server = ModelServer(
        [ModelSpec("tiny", str(exported / "tiny"))],
        BatchingParameters(max_batch_size=MAX_BATCH),
        host="127.0.0.1",
        rest_port=0,
        grpc_port=0,
        max_request_bytes=LIMIT,
        max_large_requests=1,
        read_timeout=2.0,
        poll_seconds=60,
    )
    thread = ServerThread(server).start()
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    yield {
        "server": server,
        "url": f"http://127.0.0.1:{server.rest_port}",
        "channel": channel,
        "stub": prediction_service_pb2_grpc.PredictionServiceStub(channel),
    }
    channel.close()
    thread.stop()


def queued_rows(url, model) -> float:
    """Rows of ``model`` waiting in the server's batch queues (its ``queue_rows`` gauge)."""
    with urllib.request.urlopen(url + "/metrics", timeout=30) as r:
        text = r.read().decode()
    rows = 0.0
    for labels, value in re.findall(r"inception_serving_queue_rows\{([^}]*)\} (\S+)", text):
        if dict(re.findall(r'(\w+)="([^"]*)"', labels)).get("model") == model:
            rows += float(value)
    return rows


def good_prediction(served):
    status, body = post(served["url"], "/v1/models/tiny:predict", {"instances": [b64(GOOD)]})
    assert status == 200, body
    return body["predictions"][0]


# ------------------------------------------------------------------------------------ REST

DEEP = b'{"instances": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"
REST_ABUSE = [
    ("images", {"instances": [b64(GOOD)] * 9}, {}, 400, ["9 instances", "8", "--max-batch-size"]),
    ("columns", {"inputs": {"images": [b64(GOOD)] * 9}}, {}, 400, ["9 rows", "max_batch_size"]),
    (
        "examples:classify",
        {"signature_name": "classify", "examples": [{"image/encoded": b64(GOOD)}] * 9},
        {},
        400,
        ["9 examples"],
    ),
    (
        "gif-frame",
        {"instances": [b64(gif_bomb())]},
        {},
        400,
        ["GIF frame 1 is 12000 x 12000", "--max-image-pixels"],
    ),
    ("png-jpeg", {"instances": [b64(b"\x89PNG\r\n\x1a\n" + GOOD)]}, {}, 400, ["PNG", "IHDR"]),
    ("deep-json", DEEP, {}, 400, ["10001 levels deep", "64"]),
    (
        "int-1e30:classify",
        {"signature_name": "classify", "examples": [{"image/encoded": b64(GOOD), "n": 10**30}]},
        {},
        400,
        ["'n'", "int64"],
    ),
    (
        "classify-via-predict",
        {"signature_name": "classify", "instances": [b64(GOOD)]},
        {},
        400,
        ["is a JPEG image", "serialized tf.Example", ":classify"],
    ),
    (
        "not-an-image",
        {"instances": [b64(b"just some text, not an image")]},
        {},
        400,
        ["not a JPEG, PNG, GIF or BMP image", "b'just som'"],
    ),
    (
        "gzip-bomb",
        gzip_zeros(64 << 20),
        {"Content-Encoding": "gzip"},
        413,
        ["too large once inflated", "--max-request-bytes"],
    ),
    ("encoding", b"{}", {"Content-Encoding": "br"}, 415, ["Content-Encoding 'br'"]),
    ("ragged", {"instances": [["a"], "b"]}, {}, 400, ["rectangular"]),
]


@pytest.mark.parametrize(
    "body, headers, status, words",
    [c[1:] for c in REST_ABUSE],
    ids=[c[0] for c in REST_ABUSE],
)
def test_abusive_rest_requests_get_4xx_naming_the_problem(
    served, request, body, headers, status, words
):
    verb = "classify" if request.node.callspec.id.endswith(":classify") else "predict"
    got, answer = post(served["url"], f"/v1/models/tiny:{verb}", body, headers)
    assert got == status, answer
    assert set(answer) == {"error"}
    for word in words:
        assert word in answer["error"], answer


def test_an_animated_gif_within_the_limits_is_served(served):
    """The exported graph walks every GIF frame before decoding (graph.decode)."""
    frames = [Image.fromarray(np.full((90, 120, 3), 40 * i, np.uint8)) for i in range(4)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    status, body = post(
        served["url"], "/v1/models/tiny:predict", {"instances": [b64(buf.getvalue())]}
    )
    assert status == 200, body
    assert len(body["predictions"][0]["probabilities"]) == len(LABELS)


def test_rest_version_must_be_a_decimal_integer(served):
    got, answer = post(served["url"], "/v1/models/tiny/versions/%C2%B2:predict", {"instances": []})
    assert got == 400 and "positive integer" in answer["error"] and "'²'" in answer["error"]


def test_rest_answers_are_counted_by_their_real_code(served):
    before = metric_counts(served["url"])
    for body in ({"instances": [b64(GOOD)] * 9}, DEEP, {"instances": [b64(gif_bomb())]}):
        assert post(served["url"], "/v1/models/tiny:predict", body)[0] == 400
    good_prediction(served)
    after = metric_counts(served["url"])

    def delta(code):
        return after.get(("rest", "predict", code), 0) - before.get(("rest", "predict", code), 0)

    assert delta("INVALID_ARGUMENT") == 3 and delta("OK") == 1
    assert not [k for k in after if k[2] in ("INTERNAL", "UNKNOWN")], after


def test_a_slow_body_gets_408_while_others_are_served(served):
    """A client that stops sending its body holds nobody up and is cut off after
    --read-timeout-seconds (2 s here)."""
    port = served["server"].rest_port
    with socket.create_connection(("127.0.0.1", port), timeout=30) as slow:
        slow.sendall(
            b"POST /v1/models/tiny:predict HTTP/1.1\r\nHost: x\r\nContent-Type: "
            b"application/json\r\nContent-Length: 100000\r\n\r\n" + b'{"instances": ['
        )
        started = time.monotonic()
        prediction = good_prediction(served)  # answered while the slow body is pending
        answered_good = time.monotonic() - started
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
            chunk = slow.recv(65536)
            if not chunk:
                break
            reply += chunk
        waited = time.monotonic() - started
    assert len(prediction["probabilities"]) == len(LABELS)
    assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
    assert b"did not arrive within 2 s" in reply and b"--read-timeout-seconds" in reply
    assert answered_good < waited  # the good request did not wait for the slow one


def test_a_client_leaving_mid_body_is_counted_cancelled(served):
    before = metric_counts(served["url"])
    with socket.create_connection(("127.0.0.1", served["server"].rest_port), timeout=30) as s:
        s.sendall(
            b"POST /v1/models/tiny:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n{"
        )
        time.sleep(0.3)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        after = metric_counts(served["url"])
        if after.get(("rest", "predict", "CANCELLED"), 0) > before.get(
            ("rest", "predict", "CANCELLED"), 0
        ):
            break
        time.sleep(0.2)
    assert (
        after.get(("rest", "predict", "CANCELLED"), 0)
        == before.get(("rest", "predict", "CANCELLED"), 0) + 1
    )
    assert not [k for k in after if k[2] in ("INTERNAL", "UNKNOWN")], after


def test_large_bodies_are_parsed_off_the_event_loop(served, monkeypatch):
    threads = []
    real = rest.parse_predict

    def recording(*args):
        threads.append(threading.current_thread().name)
        return real(*args)

    monkeypatch.setattr(rest, "parse_predict", recording)
    big = [b64(jpeg(320, 320, seed, noise=True)) for seed in range(MAX_BATCH)]
    body = json.dumps({"instances": big}).encode()
    assert limits.LARGE_REQUEST_BYTES < len(body) < LIMIT
    status, answer = post(served["url"], "/v1/models/tiny:predict", body)
    assert status == 200 and len(answer["predictions"]) == MAX_BATCH
    medium = json.dumps({"instances": big[:1]}).encode()
    assert limits.SMALL_REQUEST_BYTES < len(medium) < limits.LARGE_REQUEST_BYTES
    status, answer = post(served["url"], "/v1/models/tiny:predict", medium)
    assert status == 200 and len(answer["predictions"]) == 1
    good_prediction(served)
    assert threads[0].startswith("inception-parse_"), threads  # a large-request turn's thread
    assert threads[1].startswith("inception-parse-medium"), threads
    assert threads[2] == "inception-serve", threads  # a small body stays on the event loop


# ------------------------------------------------------------------------------------ gRPC


def _predict(served, inputs: dict, signature: str = ""):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "tiny"
    request.model_spec.signature_name = signature
    for key, proto in inputs.items():
        request.inputs[key].CopyFrom(proto)
    return served["stub"].Predict(request, timeout=60)


def _tensor(dtype: int, dims, **values):
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2

    shape = tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims]
    )
    return tensor_pb2.TensorProto(dtype=dtype, tensor_shape=shape, **values)


GRPC_ABUSE = [
    ("images", "", lambda: tf.make_tensor_proto([GOOD] * 9), "INVALID_ARGUMENT", ["9 rows"]),
    ("declared", "predict_pixels", lambda: _tensor(1, [1000, 75, 75, 3]), "INVALID_ARGUMENT",
     ["1000 rows", "--max-batch-size"]),
    ("filled", "", lambda: _tensor(7, [8], string_val=[bytes(LIMIT // 4)]), "RESOURCE_EXHAUSTED",
     ["expands to", "--max-request-bytes"]),
    ("huge-shape", "", lambda: _tensor(7, [2**62], string_val=[GOOD]), "INVALID_ARGUMENT",
     ["4611686018427387904 rows"]),
    ("variant", "", lambda: _tensor(21, [1]), "INVALID_ARGUMENT", ["got DT_VARIANT"]),
    ("resource", "predict_pixels", lambda: _tensor(20, [1]), "INVALID_ARGUMENT",
     ["got DT_RESOURCE"]),
    ("extra-values", "", lambda: _tensor(7, [1], string_val=[GOOD] * 3), "INVALID_ARGUMENT",
     ["3 strings", "holds 1"]),
    ("gif-frame", "", lambda: tf.make_tensor_proto([gif_bomb((20000, 20000))]),
     "INVALID_ARGUMENT", ["GIF frame 1 is 20000 x 20000"]),
    ("not-an-image", "", lambda: tf.make_tensor_proto([b"\0" * 40]), "INVALID_ARGUMENT",
     ["not a JPEG, PNG, GIF or BMP image"]),
]  # fmt: skip


@pytest.mark.parametrize(
    "signature, tensor, code, words", [c[1:] for c in GRPC_ABUSE], ids=[c[0] for c in GRPC_ABUSE]
)
def test_abusive_grpc_tensors_get_invalid_argument_naming_the_problem(
    served, signature, tensor, code, words
):
    key = "pixels" if signature == "predict_pixels" else "images"
    with pytest.raises(grpc.RpcError) as err:
        _predict(served, {key: tensor()}, signature)
    assert err.value.code().name == code, err.value.details()
    for word in words:
        assert word in err.value.details(), err.value.details()


def test_grpc_garbage_unimplemented_and_counts(served):
    before = metric_counts(served["url"])
    raw = served["channel"].unary_unary("/tensorflow.serving.PredictionService/Predict")
    with pytest.raises(grpc.RpcError) as err:
        raw(b"\xff\xff\xff\xff", timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid PredictRequest" in err.value.details()
    regress = served["channel"].unary_unary("/tensorflow.serving.PredictionService/Regress")
    with pytest.raises(grpc.RpcError) as err:
        regress(b"", timeout=30)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "tiny"
    for _ in range(MAX_BATCH + 1):
        example = request.input.example_list.examples.add()
        example.features.feature["image/encoded"].bytes_list.value.append(GOOD)
    with pytest.raises(grpc.RpcError) as err:
        served["stub"].Classify(request, timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "9 examples" in err.value.details()
    resp = _predict(served, {"images": tf.make_tensor_proto([GOOD])})
    assert tf.make_ndarray(resp.outputs["probabilities"]).shape == (1, len(LABELS))
    after = metric_counts(served["url"])

    def delta(method, code):
        key = ("grpc", method, code)
        return after.get(key, 0) - before.get(key, 0)

    assert delta("predict", "INVALID_ARGUMENT") == 1 and delta("predict", "OK") == 1
    assert delta("classify", "INVALID_ARGUMENT") == 1
    assert not [k for k in after if k[2] in ("INTERNAL", "UNKNOWN")], after


# --------------------------------------------------------------- the CLI: memory and shutdown


def _status(pid: int) -> dict:
    with open(f"/proc/{pid}/status") as f:
        return {k: v.strip() for k, v in (line.split(":", 1) for line in f if ":" in line)}


def _kib(pid: int, field: str) -> int:
    return int(_status(pid)[field].split()[0])


@pytest.fixture(scope="module")
def cli(exported, tmp_path_factory):
    rest_port, grpc_port = free_port(), free_port()
    log = open(tmp_path_factory.mktemp("cli") / "serve.log", "w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "inception.cli", "serve", "--model-base-path",
         str(exported / "slow"), "--host", "127.0.0.1", "--rest-port", str(rest_port),
         "--grpc-port", str(grpc_port), "--grace-seconds", "2"],
        stdout=log, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{rest_port}"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            assert proc.poll() is None, open(log.name).read()[-3000:]
            time.sleep(0.5)
    channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    yield {"proc": proc, "url": url, "stub": stub, "log": log.name}
    channel.close()
    if proc.poll() is None:
        proc.kill()
        proc.wait(30)
    log.close()


@pytest.mark.slow
def test_memory_stays_bounded_whatever_the_request(cli):
    """Requests that used to cost gigabytes (1000 images, a declared shape with no values, a
    string tensor padded out, a GIF frame far larger than its canvas, a gzip bomb) are refused
    before the server allocates for them: its peak RSS grows by far less than any of them."""
    pid, url = cli["proc"].pid, cli["url"]
    status, body = post(url, "/v1/models/slow:predict", {"instances": [b64(GOOD)]})
    assert status == 200, body
    peak_before = _kib(pid, "VmHWM")
    status, body = post(url, "/v1/models/slow:predict", {"instances": [b64(GOOD)] * 1000})
    assert status == 400 and "1000 instances" in body["error"]
    for signature, key, tensor, code in [
        ("", "images", tf.make_tensor_proto([GOOD] * 5000), "INVALID_ARGUMENT"),
        ("predict_pixels", "pixels", _tensor(1, [1000, 75, 75, 3]), "INVALID_ARGUMENT"),
        ("", "images", _tensor(7, [16], string_val=[bytes(8 << 20)]), "RESOURCE_EXHAUSTED"),
    ]:
        request = predict_pb2.PredictRequest()
        request.model_spec.name, request.model_spec.signature_name = "slow", signature
        request.inputs[key].CopyFrom(tensor)
        with pytest.raises(grpc.RpcError) as err:
            cli["stub"].Predict(request, timeout=120)
        assert err.value.code().name == code, err.value.details()
    status, body = post(
        url, "/v1/models/slow:predict", {"instances": [b64(gif_bomb((20000, 20000)))]}
    )
    assert status == 400 and "GIF frame" in body["error"]
    bomb = gzip_zeros(1 << 30)  # 1 GiB inflated, about 1 MB sent
    status, body = post(url, "/v1/models/slow:predict", bomb, {"Content-Encoding": "gzip"})
    assert status == 413 and "too large once inflated" in body["error"]
    status, body = post(url, "/v1/models/slow:predict", {"instances": [b64(GOOD)]})
    assert status == 200, body
    grown_mib = (_kib(pid, "VmHWM") - peak_before) / 1024
    assert grown_mib < 1024, f"peak RSS grew by {grown_mib:.0f} MiB"


@pytest.mark.slow
def test_sigterm_with_long_work_in_flight_exits_within_the_grace_period(cli):
    """8 clients x 16 images (seconds of work); SIGTERM with --grace-seconds 2: what fits
    runs, the rest is answered 503 UNAVAILABLE, and the process exits soon after."""
    proc, url = cli["proc"], cli["url"]
    body = {"instances": [b64(jpeg(80, 80, seed)) for seed in range(16)]}

    def client(_):
        return post(url, "/v1/models/slow:predict", body, timeout=120)

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(client, i) for i in range(8)]
        # in flight: one batch runs (the model takes seconds) while most of the rest wait
        assert wait_for(lambda: queued_rows(url, "slow") >= 16 * 5), "requests never queued"
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        answers = [f.result(timeout=120) for f in futures]
    assert proc.wait(timeout=60) == 0
    took = time.monotonic() - signalled
    output = open(cli["log"]).read()
    assert "stopped" in output, output[-2000:]
    refused = [a for status, a in answers if status == 503]
    for status, answer in answers:
        assert status in (200, 503), answer
        if status == 200:
            assert len(answer["predictions"]) == 16
    assert refused and all("shutting down" in a["error"] for a in refused), answers
    assert took < 2 + 20, f"exit took {took:.1f} s"
