"""``inception serve`` against hostile clients (beyond test_serve_abuse.py), real servers on
127.0.0.1: lone UTF-16 surrogates and undecodable protobufs answer 4xx / INVALID_ARGUMENT,
cancelled and expired calls are counted by their real code, methods a route does not serve get
405, ``Expect: 100-continue`` is answered after the size check, replies hold no server paths,
scan-bomb JPEGs are refused from their bytes, bodies share one receive budget and are freed at
once when refused or abandoned (with the garbage collector off), idle and slow-header
connections are closed, and a server under a low descriptor limit caps its connections and keeps
answering.

Ports are chosen at run time; every flood is bounded in count and time.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import http.client
import io
import json
import os
import resource
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
import urllib.error
import urllib.request

import numpy as np
import pytest
from helpers import free_port, metric_counts, post, wait_for

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import grpc  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image  # noqa: E402
from tensorflow_serving.apis import (  # noqa: E402
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from inception.cli.serve import parser as serve_parser  # noqa: E402
from inception.errors import UsageError  # noqa: E402
from inception.serving import codec, limits  # noqa: E402
from inception.serving import server as server_module  # noqa: E402
from inception.serving.batching import BatchingParameters  # noqa: E402
from inception.serving.connections import RateLimitedLog, ReceiveBudget  # noqa: E402
from inception.serving.errors import ServingError  # noqa: E402
from inception.serving.export import export_saved_model  # noqa: E402
from inception.serving.repository import ModelSpec  # noqa: E402
from inception.serving.server import ModelServer, ServerThread  # noqa: E402

LABELS = ["cat", "dog", "fish"]
LIMIT = 2 * 1024 * 1024
RECEIVE = 3 * 1024 * 1024


def jpeg(size=48, progressive=False) -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buf, format="JPEG", quality=90, progressive=progressive)
    return buf.getvalue()


def scan_bomb(scans: int) -> bytes:
    """A progressive JPEG whose last scan is repeated until it has ``scans`` scans."""
    data = jpeg(progressive=True)
    last = data.rindex(b"\xff\xda")
    extra = scans - codec.jpeg_scans(data)
    return data[:-2] + data[last:-2] * extra + b"\xff\xd9"


def b64(data: bytes) -> dict:
    return {"b64": base64.b64encode(data).decode()}


GOOD = jpeg()


def classifier():
    import keras

    keras.utils.set_random_seed(1)
    inputs = keras.Input((75, 75, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(len(LABELS), activation="softmax")(x))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    export_saved_model([classifier()], root, "tiny", 1, LABELS, top_k=3)
    (root / "empty").mkdir()
    return root


@pytest.fixture(scope="module")
def served(exported):
    server = ModelServer(
        [ModelSpec("tiny", str(exported / "tiny")), ModelSpec("empty", str(exported / "empty"))],
        BatchingParameters(max_batch_size=8),
        host="127.0.0.1",
        rest_port=0,
        grpc_port=0,
        max_request_bytes=LIMIT,
        max_receive_bytes=RECEIVE,
        max_large_requests=1,
        read_timeout=3.0,
        idle_timeout=1.0,
        header_timeout=1.0,
        poll_seconds=60,
    )
    thread = ServerThread(server).start()
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    yield {
        "server": server,
        "thread": thread,
        "url": f"http://127.0.0.1:{server.rest_port}",
        "port": server.rest_port,
        "root": str(exported),
        "channel": channel,
        "stub": prediction_service_pb2_grpc.PredictionServiceStub(channel),
    }
    channel.close()
    thread.stop()


def good(served):
    status, body = post(served["url"], "/v1/models/tiny:predict", {"instances": [b64(GOOD)]})
    assert status == 200, body
    return body


# ------------------------------------------------------------------------ malformed input

SURROGATE = "\\ud800"  # the six characters of a JSON escape, not a Python character
SURROGATES = [
    ("instances", "predict", '{"instances": ["' + SURROGATE + '"]}'),
    ("inputs", "predict", '{"inputs": {"images": ["x' + SURROGATE + '"]}}'),
    ("b64", "predict", '{"instances": [{"b64": "' + SURROGATE + '"}]}'),
    ("feature-name", "classify", '{"examples": [{"n' + SURROGATE + '": 1}]}'),
    ("feature-value", "classify", '{"examples": [{"text": "' + SURROGATE + '"}]}'),
    ("context-key", "classify", '{"context": {"' + SURROGATE + '": 1}, "examples": [{}]}'),
    ("signature", "predict", '{"signature_name": "' + SURROGATE + '", "instances": [1]}'),
]


@pytest.mark.parametrize("verb, body", [c[1:] for c in SURROGATES], ids=[c[0] for c in SURROGATES])
def test_lone_surrogates_anywhere_in_rest_json_get_400(served, verb, body):
    before = metric_counts(served["url"])
    status, answer = post(served["url"], f"/v1/models/tiny:{verb}", body.encode())
    assert status == 400, answer
    assert "not valid Unicode" in answer["error"] and "b64" in answer["error"], answer
    after = metric_counts(served["url"])
    key = ("rest", verb, "INVALID_ARGUMENT")
    assert after.get(key, 0) == before.get(key, 0) + 1
    assert not [k for k in after if k[2] in ("INTERNAL", "UNKNOWN")], after


GRPC_METHODS = [
    ("PredictionService", "Predict", "predict", "PredictRequest"),
    ("PredictionService", "Classify", "classify", "ClassificationRequest"),
    ("PredictionService", "GetModelMetadata", "metadata", "GetModelMetadataRequest"),
    ("PredictionService", "Regress", "regress", "RegressionRequest"),
    ("PredictionService", "MultiInference", "multi_inference", "MultiInferenceRequest"),
    ("ModelService", "GetModelStatus", "status", "GetModelStatusRequest"),
    ("ModelService", "HandleReloadConfigRequest", "reload_config", "ReloadConfigRequest"),
]


def test_undecodable_protobufs_get_invalid_argument_on_every_grpc_method(served):
    before = metric_counts(served["url"])
    for service, name, _, message in GRPC_METHODS:
        call = served["channel"].unary_unary(f"/tensorflow.serving.{service}/{name}")
        with pytest.raises(grpc.RpcError) as err:
            call(b"\xff\xff\xff\xff", timeout=30)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (name, err.value.details())
        assert f"not a valid {message}" in err.value.details()
    after = metric_counts(served["url"])
    for _, _, method, _ in GRPC_METHODS:
        key = ("grpc", method, "INVALID_ARGUMENT")
        assert after.get(key, 0) == before.get(key, 0) + 1, key
    assert not [k for k in after if k[2] in ("INTERNAL", "UNKNOWN")], after


def test_reload_config_is_unimplemented_and_says_what_to_do(served):
    call = served["channel"].unary_unary(
        "/tensorflow.serving.ModelService/HandleReloadConfigRequest"
    )
    with pytest.raises(grpc.RpcError) as err:
        call(b"", timeout=30)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "--model-config-file" in err.value.details()


@pytest.mark.parametrize("method", ["HEAD", "OPTIONS", "TRACE", "PUT", "DELETE", "PATCH", "GET"])
def test_methods_a_route_does_not_serve_get_405_and_run_nothing(served, method):
    before = metric_counts(served["url"])
    conn = http.client.HTTPConnection("127.0.0.1", served["port"], timeout=30)
    body = json.dumps({"instances": [b64(GOOD)]}).encode()
    conn.request(method, "/v1/models/tiny:predict", body=body)
    response = conn.getresponse()
    text = response.read()
    conn.close()
    assert response.status == 405, text
    assert response.headers["Allow"] == "POST"
    if method != "HEAD":
        assert f"{method} is not served" in json.loads(text)["error"]
    after = metric_counts(served["url"])
    assert after.get(("rest", "predict", "OK"), 0) == before.get(("rest", "predict", "OK"), 0)
    conn = http.client.HTTPConnection("127.0.0.1", served["port"], timeout=30)
    conn.request("PUT", "/v1/models/tiny/metadata", body=b"{}")
    response = conn.getresponse()
    assert response.status == 405 and response.headers["Allow"] == "GET"
    conn.close()


def _raw(port, head: bytes, timeout=10.0) -> tuple[socket.socket, bytes]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.sendall(head)
    return sock, sock.recv(65536)


def test_expect_100_continue_is_answered_after_the_size_check(served):
    head = (
        "POST /v1/models/tiny:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Expect: 100-continue\r\nContent-Length: {}\r\n\r\n"
    )
    sock, reply = _raw(served["port"], head.format(LIMIT + 1).encode())
    sock.close()
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]  # without a byte of the body
    assert b"--max-request-bytes" in reply
    body = json.dumps({"instances": [b64(GOOD)]}).encode()
    sock, reply = _raw(served["port"], head.format(len(body)).encode())
    assert reply.startswith(b"HTTP/1.1 100 Continue"), reply[:200]
    sock.sendall(body)
    answer = b""
    while not answer.rstrip().endswith(b"}"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        answer += chunk
    sock.close()
    assert b"200 OK" in answer and b"predictions" in answer, answer[:300]


def test_replies_hold_no_server_paths(served):
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(served["url"] + "/v1/models/empty", timeout=30)
    text = err.value.read().decode()
    assert err.value.code == 404 and "no version" in text, text
    assert served["root"] not in text and "<base path of model 'empty'>" in text, text
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(served["url"] + "/healthz", timeout=30)
    assert served["root"] not in err.value.read().decode()
    stub = model_service_pb2_grpc.ModelServiceStub(served["channel"])
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "empty"
    with pytest.raises(grpc.RpcError) as err:
        stub.GetModelStatus(request, timeout=30)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert served["root"] not in err.value.details() and "empty" in err.value.details()


# ------------------------------------------------------------- cancelled and expired calls


@pytest.fixture
def held(served, monkeypatch):
    """Model runs wait until ``release`` is set (polled, bounded), so calls can expire."""
    server, release = served["server"], threading.Event()
    real = server.run

    async def gated(*args):
        deadline = time.monotonic() + 20
        while not release.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return await real(*args)

    monkeypatch.setattr(server, "run", gated)
    yield release
    release.set()


def _predict_request():
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "tiny"
    request.inputs["images"].CopyFrom(tf.make_tensor_proto([GOOD]))
    return request


def test_expired_and_cancelled_grpc_calls_are_counted_so(served, held):
    url = served["url"]
    before = metric_counts(url)
    # Both calls reach the server (each waits in the held model) before one of them expires
    # and the other is cancelled: a deadline that passes before the server sees the call is
    # the client's alone, and a loaded machine can take seconds to deliver it.
    active = served["server"]._active
    expiring = served["stub"].Predict.future(_predict_request(), timeout=5)
    assert wait_for(lambda: served["server"]._active >= active + 1, 10)
    cancelled = served["stub"].Predict.future(_predict_request(), timeout=60)
    assert wait_for(lambda: served["server"]._active >= active + 2, 10)
    cancelled.cancel()
    with pytest.raises(grpc.RpcError) as err:
        expiring.result()
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    held.set()

    def delta(code):
        return metric_counts(url).get(("grpc", "predict", code), 0) - before.get(
            ("grpc", "predict", code), 0
        )

    wait_for(lambda: delta("DEADLINE_EXCEEDED") >= 1 and delta("CANCELLED") >= 1)
    codes = {c: delta(c) for c in ("DEADLINE_EXCEEDED", "CANCELLED", "OK")}
    assert codes == {"DEADLINE_EXCEEDED": 1, "CANCELLED": 1, "OK": 0}, codes


# ----------------------------------------------------------------------------- scan bombs


def test_jpeg_scans_are_counted_from_the_bytes():
    assert codec.jpeg_scans(jpeg()) == 1
    assert 5 <= codec.jpeg_scans(jpeg(progressive=True)) <= 12
    assert codec.jpeg_scans(scan_bomb(2500)) == 2500
    # a marker at either end of the bytes, and bytes too short to hold one
    assert codec.jpeg_scans(b"\xff\xda\x00\xff\xda") == 2
    assert [codec.jpeg_scans(b) for b in (b"", b"\xff", b"\xda\xff")] == [0, 0, 0]
    # counted a chunk at a time: a marker across a chunk's end counts once
    for at in (codec.SCAN_CHUNK - 2, codec.SCAN_CHUNK - 1, codec.SCAN_CHUNK):
        data = bytearray(2 * codec.SCAN_CHUNK + 3)
        data[at : at + 2] = b"\xff\xda"
        data[-2:] = b"\xff\xda"
        assert codec.jpeg_scans(bytes(data)) == 2, at


def test_a_scan_bomb_jpeg_is_refused_over_rest_and_grpc(served):
    bomb = scan_bomb(limits.DEFAULT_MAX_JPEG_SCANS + 1)
    status, answer = post(served["url"], "/v1/models/tiny:predict", {"instances": [b64(bomb)]})
    assert status == 400, answer
    assert "JPEG of 101 scans" in answer["error"] and "--max-jpeg-scans" in answer["error"]
    status, answer = post(
        served["url"], "/v1/models/tiny:classify", {"examples": [{"image/encoded": b64(bomb)}]}
    )
    assert status == 400 and "101 scans" in answer["error"], answer
    request = _predict_request()
    request.inputs["images"].CopyFrom(tf.make_tensor_proto([bomb]))
    with pytest.raises(grpc.RpcError) as err:
        served["stub"].Predict(request, timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "101 scans" in err.value.details()
    progressive = jpeg(progressive=True)
    status, answer = post(
        served["url"], "/v1/models/tiny:predict", {"instances": [b64(progressive)]}
    )
    assert status == 200, answer


def test_the_exported_graph_refuses_a_scan_bomb_itself(exported):
    """What ``tensorflow_model_server`` runs: the SavedModel counts scans before decoding."""
    fn = tf.saved_model.load(str(exported / "tiny" / "1")).signatures["serving_default"]
    progressive = jpeg(progressive=True)
    assert fn(images=tf.constant([GOOD, progressive]))["scores"].shape == (2, 3)
    for images in ([scan_bomb(101)], [GOOD, scan_bomb(101)]):
        with pytest.raises(
            tf.errors.InvalidArgumentError, match="too many scans: it has more than 100"
        ):
            fn(images=tf.constant(images))
    from inception.serving import graph

    for data in (GOOD, progressive, scan_bomb(2500), b"\x89PNG\r\n\x1a\n" + b"\xff\xda" * 9):
        want = codec.jpeg_scans(data) if data[:2] == b"\xff\xd8" else 0
        assert int(graph.jpeg_scans(tf.constant(data))) == want


def test_an_export_scan_limit_below_one_is_refused_with_the_fix(tmp_path):
    with pytest.raises(ValueError, match=r"--max-jpeg-scans must be >= 1 .* got 0"):
        export_saved_model([classifier()], tmp_path, "tiny", 1, LABELS, max_jpeg_scans=0)
    assert not (tmp_path / "tiny").exists()


# --------------------------------------------------------------------- memory and bodies


def test_receive_budget_is_first_come_first_served_and_bounded():
    async def scenario():
        budget = ReceiveBudget(100, small=0, reserve=0)
        assert await budget.take(60, 1.0) == 60
        order = []

        async def taker(size, name):
            await budget.take(size, 5.0)
            order.append(name)

        big = asyncio.ensure_future(taker(80, "big"))
        await asyncio.sleep(0)
        small = asyncio.ensure_future(taker(10, "small"))  # fits, but queues behind "big"
        await asyncio.sleep(0.05)
        assert order == [] and budget.used == 60
        budget.give(60)
        await asyncio.gather(big, small)
        assert order == ["big", "small"] and budget.used == 90
        with pytest.raises(ServingError) as err:
            await budget.take(50, 0.3)
        assert "--max-receive-bytes" in err.value.message and budget.used == 90
        budget.give(90)
        assert budget.used == 0 and not budget._waiters
        # an eighth is kept for small bodies, which pass large ones that wait
        budget = ReceiveBudget(800, small=10)
        assert await budget.take(600, 1.0) == 600 and budget.reserve == 100
        blocked = asyncio.ensure_future(budget.take(150, 5.0))  # over 700: waits
        await asyncio.sleep(0.05)
        assert not blocked.done()
        assert await budget.take(10, 1.0) == 10  # small: into the reserve at once
        budget.give(600)
        assert await blocked == 150 and budget.used == 160

    asyncio.run(scenario())


def _start_body(port, length: int, sent: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(
        b"POST /v1/models/tiny:predict HTTP/1.1\r\nHost: x\r\n"
        + f"Content-Length: {length}\r\n\r\n".encode()
        + b'{"instances": ["'
        + b"A" * sent
    )
    return sock


def test_many_small_bodies_share_one_receive_budget(served):
    server, port = served["server"], served["port"]
    part = 900 * 1024  # under LARGE_REQUEST_BYTES: no large-request turn to wait for
    socks, peak = [], 0
    try:
        for _ in range(8):
            socks.append(_start_body(port, part + 4096, part))
            peak = max(peak, server.receiving.used)
        # two fit in all but the eighth kept for small bodies; the other 6 wait, unread,
        # instead of buffering their bodies
        assert wait_for(lambda: len(server.receiving._waiters) == 6, 10)
        peak = max(peak, server.receiving.used)
        assert peak == 2 * (part + 4096) <= RECEIVE - RECEIVE // 8
        good(served)  # a small request still gets through meanwhile
    finally:
        for sock in socks:
            sock.close()
    assert wait_for(lambda: server.receiving.used == 0 and not server.receiving._waiters, 15)
    good(served)


def _traced() -> int:
    return tracemalloc.get_traced_memory()[0]


def test_refused_and_abandoned_bodies_are_freed_at_once_without_the_gc(served):
    """With the garbage collector off, bodies that clients abandon mid-way, bodies refused
    with 413 while being read and refused gRPC messages leave nothing behind (they used to
    stay reachable through exception tracebacks until a full collection)."""
    url, port = served["url"], served["port"]
    good(served)
    gc.collect()
    gc.disable()
    tracemalloc.start()
    try:
        before_counts, start = metric_counts(url), _traced()
        rounds, size = 6, 1536 * 1024
        for _ in range(rounds):  # abandoned mid-body (a large request: waits for its turn)
            sock = _start_body(port, size + 4096, size)
            assert wait_for(lambda: served["server"].receiving.used > 0, 10)
            sock.close()
            assert wait_for(lambda: served["server"].receiving.used == 0, 10)
        for _ in range(rounds):  # refused with 413 part-way through a chunked body
            chunk = b"A" * (256 * 1024)
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(
                b"POST /v1/models/tiny:predict HTTP/1.1\r\nHost: x\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            try:
                for _ in range(LIMIT // len(chunk) + 2):
                    sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            except OSError:  # the server answered and closed
                pass
            reply = sock.recv(4096)
            sock.close()
            assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
        request = _predict_request()
        request.inputs["images"].CopyFrom(tf.make_tensor_proto([b"\0" * size]))
        for _ in range(rounds):  # refused gRPC messages
            with pytest.raises(grpc.RpcError):
                served["stub"].Predict(request, timeout=30)
        key = ("rest", "predict", "CANCELLED")
        wanted = before_counts.get(key, 0) + rounds
        assert wait_for(lambda: metric_counts(url).get(key, 0) >= wanted, 10)
        good(served)
        grown = (_traced() - start) / 2**20
        assert grown < 4, f"{grown:.1f} MiB still held after {rounds * 3} refused bodies"
    finally:
        tracemalloc.stop()
        gc.enable()


# ------------------------------------------------------------------- idle and slow clients


def _closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """Whether the server closed ``sock`` within ``seconds``, and what it sent before."""
    sock.settimeout(seconds)
    got = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return True, got
            got += chunk
    except TimeoutError:
        return False, got
    except ConnectionResetError:
        return True, got


def test_idle_and_slow_header_connections_are_closed(served):
    idle = socket.create_connection(("127.0.0.1", served["port"]), timeout=10)
    slow = socket.create_connection(("127.0.0.1", served["port"]), timeout=10)
    slow.sendall(b"POST /v1/models/tiny:predict HTTP/1.1\r\nHost: x\r\n")  # never finished
    keep = http.client.HTTPConnection("127.0.0.1", served["port"], timeout=10)
    keep.request("GET", "/healthz")
    assert keep.getresponse().read()
    started = time.monotonic()
    closed, got = _closed_within(idle, 8)
    assert closed and got == b"", got
    closed, got = _closed_within(slow, 8)
    assert closed and got.startswith(b"HTTP/1.1 408"), got[:200]
    assert b"--header-timeout-seconds" in got
    assert time.monotonic() - started < 8
    closed, _ = _closed_within(keep.sock, 8)  # keep-alive, after its answer
    assert closed
    idle.close(), slow.close(), keep.close()
    good(served)


def test_rate_limited_log_says_once_per_interval(caplog):
    logs = RateLimitedLog(60.0)
    with caplog.at_level("WARNING", logger="inception.serving"):
        said = [logs.warning("cap", "over the cap") for _ in range(1000)]
        logs.warning("other", "another condition")
    assert said.count(True) == 1
    assert [r.getMessage() for r in caplog.records] == ["over the cap", "another condition"]


def test_limits_that_cannot_work_are_refused_with_the_fix(monkeypatch):
    monkeypatch.setattr(server_module, "descriptor_limit", lambda: 1024)
    assert server_module.check_connections(None) == (448, 448)
    assert server_module.check_connections(800) == (800, 96)  # the rest goes to gRPC
    with pytest.raises(UsageError, match=r"--max-connections 5000 .* soft limit is 1024"):
        server_module.check_connections(5000)
    with pytest.raises(UsageError, match=r"--max-grpc-connections 0 .* give 1 to 895"):
        server_module.check_connections(None, 0)
    with pytest.raises(UsageError, match=r"together do not fit .* within 896"):
        server_module.check_connections(500, 500)
    with pytest.raises(UsageError, match="--max-receive-bytes 10 is less than"):
        ModelServer([ModelSpec("m", "/nowhere")], max_request_bytes=20, max_receive_bytes=10)
    with pytest.raises(UsageError, match="an eighth kept for small bodies"):
        ModelServer([ModelSpec("m", "/nowhere")], max_request_bytes=20, max_receive_bytes=21)
    with pytest.raises(UsageError, match=r"--max-jpeg-scans must be >= 1 .* got 0"):
        ModelServer([ModelSpec("m", "/nowhere")], max_jpeg_scans=0)
    with pytest.raises(UsageError, match=r"--idle-timeout-seconds .* must be > 0, got 0 and 10"):
        ModelServer([ModelSpec("m", "/nowhere")], idle_timeout=0)
    args = serve_parser().parse_args(["--model-base-path", "x"])
    assert args.host == "127.0.0.1" and args.max_jpeg_scans == 100
    assert args.idle_timeout_seconds == 60 and args.header_timeout_seconds == 10


# --------------------------------------------------------------- a low descriptor limit


def _lower_descriptors():
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))


def test_a_server_under_a_low_descriptor_limit_caps_connections_and_keeps_answering(
    exported, tmp_path
):
    """Soft limit 256: at most (256 - 128) / 2 = 64 REST connections; 150 idle connections
    get 503 past the cap (one log line, not one per refusal), gRPC keeps answering meanwhile,
    and REST answers again once the idle ones time out. Likewise 64 gRPC connections: 70 that
    never start their handshake fill the cap (the last 6 are closed at once, new gRPC calls
    are refused, REST answers meanwhile) until they are closed (idle after 6 s); then gRPC
    answers again."""
    rest_port, grpc_port = free_port(), free_port()
    log = open(tmp_path / "serve.log", "w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "inception.cli", "serve", "--model-base-path",
         str(exported / "tiny"), "--rest-port", str(rest_port), "--grpc-port", str(grpc_port),
         "--idle-timeout-seconds", "6", "--grace-seconds", "1"],
        stdout=log, stderr=subprocess.STDOUT, preexec_fn=_lower_descriptors,
    )  # fmt: skip
    url = f"http://127.0.0.1:{rest_port}"
    socks = []
    try:

        def ready():
            assert proc.poll() is None, open(log.name).read()[-3000:]
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False

        assert wait_for(ready, 180, 0.25)
        refused = 0
        for _ in range(150):
            sock = socket.create_connection(("127.0.0.1", rest_port), timeout=10)
            socks.append(sock)
        for sock in socks[64:]:
            closed, got = _closed_within(sock, 5)
            refused += closed and got.startswith(b"HTTP/1.1 503")
        assert refused == 150 - 64, refused
        channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = stub.Predict(_predict_request(), timeout=30)
        assert tf.make_ndarray(response.outputs["probabilities"]).shape == (1, len(LABELS))
        channel.close()
        for sock in socks[:64]:  # the held ones are closed as idle
            assert _closed_within(sock, 10)[0]
        status, body = post(url, "/v1/models/tiny:predict", {"instances": [b64(GOOD)]})
        assert status == 200, body
        for sock in socks:
            sock.close()
        socks = [socket.create_connection(("127.0.0.1", grpc_port), timeout=10) for _ in range(70)]
        started = time.monotonic()
        for sock in socks[64:]:
            assert _closed_within(sock, 5) == (True, b"")
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            with pytest.raises(grpc.RpcError) as refused_call:
                stub.Predict(_predict_request(), timeout=3)
        assert refused_call.value.code() in (
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.DEADLINE_EXCEEDED,
        )
        assert time.monotonic() - started < 5  # refused before the idle timeout freed the cap
        status, body = post(url, "/v1/models/tiny:predict", {"instances": [b64(GOOD)]})
        assert status == 200, body
        for sock in socks[:64]:  # closed: idle, and no handshake
            assert _closed_within(sock, 20)[0]
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            assert stub.Predict(_predict_request(), timeout=30).outputs["probabilities"]
        text = open(log.name).read()
        assert 1 <= text.count("REST connection refused") <= 2, text[-2000:]
        assert "out of system resource" not in text and "Traceback" not in text, text[-2000:]
    finally:
        for sock in socks:
            sock.close()
        proc.terminate()
        proc.wait(60)
        log.close()
