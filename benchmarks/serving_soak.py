"""Soak test: ``inception serve`` with good clients and abusive ones at the same time.

    python benchmarks/serving_soak.py                # Inception-ResNet-v1 at 107 px, 45 s of load
    python benchmarks/serving_soak.py --heavy-clients 4 --seconds 90   # four 60 MB bodies at once

Exports a model, starts ``inception serve`` on 127.0.0.1 (free ports, default limits), then for
``--seconds`` runs, next to closed-loop good clients (one JPEG per request, REST and gRPC):
heavy clients going in step round the large bodies of issue 11 (a 1 GiB gzip bomb, 1000 and
5000 images per request, a string tensor padded out to 128 MB, then 60 MB JSON bodies of
numbers, one per heavy client at once: two by default, four in issue 11), abusive clients
going round the small malformed requests (a 100 MB Content-Length, declared shapes without
values, shapes of 2**62, GIF frames far larger than their canvas, a PNG signature on a JPEG,
JSON nested 10000 deep, odd versions, out-of-range integers, DT_VARIANT tensors, images sent
to the classify signature, ...), and one client that keeps a body that never finishes open.
Everything is bounded in time and count and only talks to 127.0.0.1.

Reports: answers by kind and status, the number of 5xx / INTERNAL-class answers (target 0),
the server's RSS before, at its peak and after a short rest, the memory bound of
docs/serving.md evaluated with the per-image cost measured here, p50/p99 latency of the good
requests (and of those that overlapped a 60 MB body), and the shutdown time on SIGTERM.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import io
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zlib
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MIB = 1024 * 1024
HEAVY = [  # what heavy clients send in turn (bodies over 1 MiB), all in step
    "rest_gzip_bomb_1gib",
    "rest_1000_images",
    "grpc_5000_images",
    "grpc_string_16x8mb_padded",
    "rest_json_60mb_numbers",  # the slowest, last: all heavy clients send one at once
]


def jpeg(size: int, seed: int) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def gif_bomb(frame: int) -> bytes:
    head = b"GIF89a" + struct.pack("<HHBBB", 10, 10, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    image = b"\x2c" + struct.pack("<HHHHB", 0, 0, frame, frame, 0) + b"\x02\x02\x4c\x01\x00"
    return head + image + b"\x3b"


def scan_bomb(scans: int) -> bytes:
    """A progressive 64 x 64 JPEG whose last scan is repeated until it has ``scans`` scans
    (issue 21: 2,500 scans held the model for a minute)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    pixels = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buf, "JPEG", progressive=True)
    data = buf.getvalue()
    last = data.rindex(b"\xff\xda")
    return data[:-2] + data[last:-2] * (scans - data.count(b"\xff\xda")) + b"\xff\xd9"


def b64(data: bytes) -> dict:
    return {"b64": base64.b64encode(data).decode()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class Rss:
    """The server's resident memory: sampled every 50 ms, plus the kernel's own peak (VmHWM,
    reset at ``start``) so that short spikes are not missed."""

    def __init__(self, pid: int):
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def now(self) -> int:
        return proc_kib(self.pid, "VmRSS")

    def start(self):
        try:  # "5" resets the peak resident set size (Linux >= 4.0)
            with open(f"/proc/{self.pid}/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass
        self.peak = self.now()
        self._thread.start()

    def _sample(self):
        while not self._stop.wait(0.05):
            try:
                self.peak = max(self.peak, self.now(), proc_kib(self.pid, "VmHWM"))
            except OSError:
                return

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(5)
        return self.peak


# ------------------------------------------------------------------------------- requests


def tensor(dtype: int, dims, **values):
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2

    shape = tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims]
    )
    return tensor_pb2.TensorProto(dtype=dtype, tensor_shape=shape, **values)


def numbers_body(target_bytes: int, rows: int) -> bytes:
    """A predict_pixels body of about ``target_bytes`` of numbers (its shape is wrong, so it
    is refused after parsing, which is the cost being measured)."""
    side = int((target_bytes / rows / 14) ** 0.5)
    row = b"[" + b",".join([b"[" + b",".join([b"[0.5,0.5,0.5]"] * side) + b"]"] * side) + b"]"
    return b'{"signature_name":"predict_pixels","instances":[' + b",".join([row] * rows) + b"]}"


def build_abuse(name: str, size: int, good: bytes) -> dict:
    """kind -> (api, payload): REST ``(path, body, headers)``, gRPC ``(method, bytes)``, or
    ``slow`` for a body that never finishes."""
    import tensorflow as tf
    from tensorflow_serving.apis import classification_pb2, predict_pb2

    def predict(signature, key, proto):
        req = predict_pb2.PredictRequest()
        req.model_spec.name, req.model_spec.signature_name = name, signature
        req.inputs[key].CopyFrom(proto)
        return ("Predict", req.SerializeToString())

    small = [jpeg(64, seed) for seed in range(8)]
    many = [small[i % 8] for i in range(1000)]
    classify = classification_pb2.ClassificationRequest()
    classify.model_spec.name = name
    for _ in range(64):
        ex = classify.input.example_list.examples.add()
        ex.features.feature["image/encoded"].bytes_list.value.append(good)
    packer = zlib.compressobj(6, zlib.DEFLATED, 31)
    bomb = b"".join(packer.compress(bytes(MIB)) for _ in range(1024)) + packer.flush()
    path = f"/v1/models/{name}:predict"
    rest = {
        "rest_1000_images": (path, {"instances": [b64(d) for d in many]}, {}),
        "rest_gif_frame_12000": (path, {"instances": [b64(gif_bomb(12000))]}, {}),
        "rest_png_then_jpeg": (path, {"instances": [b64(b"\x89PNG\r\n\x1a\n" + good)]}, {}),
        "rest_json_depth_10000": (
            path,
            b'{"instances": ' + b"[" * 10000 + b"]" * 10000 + b"}",
            {},
        ),
        "rest_json_60mb_numbers": (path, numbers_body(60 * MIB, 16), {}),
        "rest_gzip_bomb_1gib": (path, bomb, {"Content-Encoding": "gzip"}),
        "rest_version_superscript": (
            f"/v1/models/{name}/versions/%C2%B2:predict",
            {"instances": [b64(good)]},
            {},
        ),
        "rest_classify_int_1e30": (
            f"/v1/models/{name}:classify",
            {"examples": [{"image/encoded": b64(good), "n": 10**30}]},
            {},
        ),
        "rest_image_to_classify_signature": (
            path,
            {"signature_name": "classify", "instances": [b64(good)]},
            {},
        ),
        "rest_not_an_image": (path, {"instances": [b64(b"just some text, not an image")]}, {}),
        "rest_truncated_jpeg": (path, {"instances": [b64(good[: len(good) // 2])]}, {}),
        "rest_content_length_100mb": (path, b"{}", {"Content-Length": str(100 * MIB)}),
        "rest_scan_bomb_jpeg_2500": (path, {"instances": [b64(scan_bomb(2500))]}, {}),
        "rest_surrogate_instances": (path, b'{"instances": ["\\ud800"]}', {}),
        "rest_surrogate_context_key": (
            f"/v1/models/{name}:classify",
            b'{"context": {"\\udc00": 1}, "examples": [{}]}',
            {},
        ),
    }
    grpc_calls = {
        "grpc_5000_images": predict("", "images", tf.make_tensor_proto(many * 5)),
        "grpc_declared_1000_rows": predict(
            "predict_pixels", "pixels", tensor(1, [1000, size, size, 3])
        ),
        "grpc_string_16x8mb_padded": predict(
            "", "images", tensor(7, [16], string_val=[bytes(8 * MIB)])
        ),
        "grpc_string_shape_2e62": predict("", "images", tensor(7, [2**62], string_val=[good])),
        "grpc_more_values_than_shape": predict("", "images", tensor(7, [1], string_val=[good] * 3)),
        "grpc_dt_variant": predict("", "images", tensor(21, [1])),
        "grpc_dt_resource": predict("predict_pixels", "pixels", tensor(20, [1])),
        "grpc_gif_frame_20000": predict("", "images", tf.make_tensor_proto([gif_bomb(20000)])),
        "grpc_classify_64_examples": ("Classify", classify.SerializeToString()),
        "grpc_garbage": ("Predict", b"\xff\xfe\xfd" * 10),
        "grpc_scan_bomb_jpeg_2500": predict("", "images", tf.make_tensor_proto([scan_bomb(2500)])),
        "grpc_metadata_garbage": ("GetModelMetadata", b"\xff\xfe\xfd" * 10),
        "grpc_status_garbage": ("ModelService/GetModelStatus", b"\xff\xfe\xfd" * 10),
    }  # fmt: skip
    kinds = {k: ("rest", v) for k, v in rest.items()}
    kinds.update({k: ("grpc", v) for k, v in grpc_calls.items()})
    return kinds


def rest_call(port, path, body, headers, timeout=120):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        hdrs = {"Content-Type": "application/json", **headers}
        if "Content-Length" in headers:  # announce more than is sent
            conn.putrequest("POST", path)
            for k, v in hdrs.items():
                conn.putheader(k, v)
            conn.endheaders()
            conn.send(data)
        else:
            conn.request("POST", path, body=data, headers=hdrs)
        response = conn.getresponse()
        text = response.read()
        return response.status, text
    except (OSError, http.client.HTTPException) as exc:
        return "conn:" + type(exc).__name__, b""
    finally:
        conn.close()


def slow_call(port, path, stop: threading.Event):
    """Sends the headers and a few bytes of a 1 MB body, then nothing, until the server
    answers (408 after --read-timeout-seconds) or the soak ends."""
    with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
        s.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {MIB}\r\n\r\n".encode()
            + b'{"instances": ['
        )
        reply = b""
        while b"\r\n\r\n" not in reply and not stop.is_set():
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                break
            reply += chunk
    if not reply and stop.is_set():
        return "client gave up at the end", reply
    try:
        return int(reply.split()[1]), reply
    except (IndexError, ValueError):
        return "conn:closed", reply


def hold_connections(port, path, count, kind, stop: threading.Event, hold: float) -> Counter:
    """Opens ``count`` connections to 127.0.0.1 and holds them ``hold`` s (or until the server
    closes them): ``idle`` ones send nothing, ``slowloris`` ones half a request's headers,
    ``small_body`` ones 900 KiB of a 1 MiB body; ``grpc_idle`` ones (to the gRPC port) never
    start their HTTP/2 handshake. Returns how each ended."""
    socks, ended = [], Counter()
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\n"
    for _ in range(count):
        if stop.is_set():
            break
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            if kind == "slowloris":
                s.sendall(head.encode())
            elif kind == "small_body":
                s.sendall(
                    (head + f"Content-Length: {MIB}\r\n\r\n").encode()
                    + b'{"instances": ["'
                    + b"A" * (900 * 1024)
                )
            socks.append(s)
        except OSError as exc:
            ended["connect:" + type(exc).__name__] += 1
    deadline = time.monotonic() + hold
    for s in socks:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            reply = s.recv(256)
            if kind == "grpc_idle":  # the server's SETTINGS frame first, then its close
                while reply:
                    s.settimeout(max(0.01, deadline - time.monotonic()))
                    reply = s.recv(256)
            ended[reply.split(b" ")[1].decode() if reply else "closed by server"] += 1
        except TimeoutError:
            ended["still open"] += 1
        except OSError as exc:
            ended["conn:" + type(exc).__name__] += 1
        finally:
            s.close()
    return ended


def grpc_status(exc) -> str:
    return exc.code().name if hasattr(exc, "code") else type(exc).__name__


# ----------------------------------------------------------------------------------- main


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="inception_resnet_v1")
    p.add_argument("--image-size", type=int, default=107)
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--seconds", type=float, default=45.0, help="time under load")
    p.add_argument("--good-clients", type=int, default=4)
    p.add_argument("--heavy-clients", type=int, default=2, help="large bodies, 60 MB JSON first")
    p.add_argument("--abusive-clients", type=int, default=4, help="small malformed requests")
    p.add_argument("--pause", type=float, default=0.2, help="between an abusive client's requests")
    p.add_argument("--max-requests", type=int, default=5000, help="per client, at most")
    p.add_argument(
        "--flood-connections",
        type=int,
        default=300,
        help="connections each flood client (idle, slowloris, small bodies; idle on the gRPC "
        "port) holds at once",
    )
    p.add_argument("--settle-seconds", type=float, default=10.0, help="rest before 'after'")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)

    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    import inception
    from inception.serving.export import export_saved_model

    t0 = time.monotonic()
    work = tempfile.mkdtemp(prefix="serving-soak-")
    model = inception.build(
        args.model, input_shape=(args.image_size,) * 2 + (3,), classes=args.classes
    )
    names = (
        inception.class_names(args.classes)
        if args.classes in (1000, 1001)
        else [str(i) for i in range(args.classes)]
    )
    export_saved_model([model], work, "soak", 1, names)
    del model
    good_images = [jpeg(max(args.image_size, 160), seed) for seed in range(8)]
    abuse = build_abuse("soak", args.image_size, good_images[0])
    print(f"exported and built {len(abuse)} abusive requests in {time.monotonic() - t0:.0f} s")

    rest_port, grpc_port = free_port(), free_port()
    log = open(os.path.join(work, "serve.log"), "w")
    flags = ["--host", "127.0.0.1", "--rest-port", str(rest_port), "--grpc-port", str(grpc_port)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "inception.cli", "serve", "--model-base-path",
         os.path.join(work, "soak"), *flags],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{rest_port}/healthz", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("inception serve did not start; see " + log.name) from None
            time.sleep(0.5)
    channel = grpc.insecure_channel(
        f"127.0.0.1:{grpc_port}",
        options=[("grpc.max_send_message_length", 256 * MIB)],
    )
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    good_body = json.dumps({"instances": [b64(good_images[0])]}).encode()
    good_proto = predict_pb2.PredictRequest()
    good_proto.model_spec.name = "soak"
    good_proto.inputs["images"].CopyFrom(tf.make_tensor_proto(good_images[:1]))

    # Warm up, measure the idle RSS and the per-image cost of full batches.
    path = "/v1/models/soak:predict"
    for _ in range(3):
        rest_call(rest_port, path, good_body, {})
    time.sleep(2)
    base_kib = proc_kib(proc.pid, "VmRSS")
    batch = json.dumps({"instances": [b64(d) for d in (good_images * 2)[:16]]}).encode()
    for _ in range(3):
        assert rest_call(rest_port, path, batch, {})[0] == 200
    per_image_kib = max(0, proc_kib(proc.pid, "VmHWM") - base_kib) / 16
    time.sleep(2)
    rss = Rss(proc.pid)
    before_kib = rss.now()
    rss.start()

    stop = threading.Event()
    lock = threading.Lock()
    good_latency, good_status = [], Counter()
    big_windows = []  # (start, end) of 60 MB bodies in flight
    abuse_status = defaultdict(Counter)
    raw = {
        m: channel.unary_unary(f"/tensorflow.serving.{m if '/' in m else 'PredictionService/' + m}")
        for m in ("Predict", "Classify", "GetModelMetadata", "ModelService/GetModelStatus")
    }

    def good_client(i):
        conn = http.client.HTTPConnection("127.0.0.1", rest_port, timeout=300)
        for _ in range(args.max_requests):
            if stop.is_set():
                break
            started = time.monotonic()
            if i % 2 == 0:
                try:
                    conn.request("POST", path, good_body, {"Content-Type": "application/json"})
                    r = conn.getresponse()
                    r.read()
                    status = r.status
                except (OSError, http.client.HTTPException) as exc:
                    status = "conn:" + type(exc).__name__
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", rest_port, timeout=300)
            else:
                try:
                    stub.Predict(good_proto, timeout=300)
                    status = "OK"
                except grpc.RpcError as exc:
                    status = grpc_status(exc)
            with lock:
                good_latency.append((started, time.monotonic()))
                good_status[str(status)] += 1
        conn.close()

    kinds = sorted(abuse)
    heavy = [k for k in HEAVY if k in abuse]
    cheap = [k for k in kinds if k not in heavy]

    def slow_client():
        """One body that never finishes at a time, for the whole soak."""
        for _ in range(args.max_requests):
            if stop.is_set():
                break
            status, _ = slow_call(rest_port, path, stop)
            with lock:
                abuse_status["rest_slow_body"][str(status)] += 1

    def flood_client(kind):
        """Holds --flood-connections connections of one kind at a time, for the whole soak."""
        for _ in range(args.max_requests):
            if stop.is_set():
                break
            port = grpc_port if kind.startswith("grpc") else rest_port
            ended = hold_connections(port, path, args.flood_connections, kind, stop, 15.0)
            with lock:
                abuse_status[f"flood_{kind}"].update(ended)

    def abusive_client(i, heavy_only=False):
        for n in range(args.max_requests):
            if stop.is_set():
                break
            if heavy_only:
                kind = heavy[n % len(heavy)]
            else:
                kind = cheap[(i * len(cheap) // max(1, args.abusive_clients) + n) % len(cheap)]
            api, payload = abuse[kind]
            started = time.monotonic()
            if api == "rest":
                status, _ = rest_call(rest_port, *payload)
            else:
                try:
                    raw[payload[0]](payload[1], timeout=120)
                    status = "OK"
                except grpc.RpcError as exc:
                    status = grpc_status(exc)
            with lock:
                abuse_status[kind][str(status)] += 1
                if kind == "rest_json_60mb_numbers":
                    big_windows.append((started, time.monotonic()))
            if not heavy_only:
                stop.wait(args.pause)

    started = time.monotonic()
    floods = ("idle", "slowloris", "small_body", "grpc_idle") if args.flood_connections else ()
    clients = args.good_clients + args.abusive_clients + args.heavy_clients + 1 + len(floods)
    with ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(good_client, i) for i in range(args.good_clients)]
        futures += [pool.submit(abusive_client, i) for i in range(args.abusive_clients)]
        futures += [pool.submit(abusive_client, i, True) for i in range(args.heavy_clients)]
        futures.append(pool.submit(slow_client))
        futures += [pool.submit(flood_client, kind) for kind in floods]
        stop.wait(args.seconds)
        stop.set()
        for f in futures:
            f.result(timeout=600)
    loaded = time.monotonic() - started
    peak_kib = rss.stop()
    time.sleep(args.settle_seconds)
    after_kib = rss.now()
    with urllib.request.urlopen(f"http://127.0.0.1:{rest_port}/metrics", timeout=30) as r:
        metrics = r.read().decode()
    internal = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("inception_serving_requests_total")
        and any(f'code="{c}"' in line for c in ("INTERNAL", "UNKNOWN"))
    )
    channel.close()
    signalled = time.monotonic()
    proc.terminate()
    code = proc.wait(120)
    shutdown_s = time.monotonic() - signalled
    log.close()
    shutil.rmtree(work, ignore_errors=True)  # the export and the server's log (kept on failure)

    # ------------------------------------------------------------------------------ report
    def is_5xx(status: str, kind: str = "") -> bool:
        if kind.startswith("flood_") and status == "503":  # refused past --max-connections
            return False
        return status.startswith("5") or status in ("INTERNAL", "UNKNOWN", "UNAVAILABLE")

    lat = sorted(end - start for start, end in good_latency)
    overlapped = sorted(
        end - start
        for start, end in good_latency
        if any(start < b_end and end > b_start for b_start, b_end in big_windows)
    )

    def pct(values, q):
        return 1e3 * values[min(len(values) - 1, int(len(values) * q))] if values else float("nan")

    five_xx = sum(n for s, n in good_status.items() if is_5xx(s)) + sum(
        n for k, c in abuse_status.items() for s, n in c.items() if is_5xx(s, k)
    )
    conn_errors = sum(n for s, n in good_status.items() if s.startswith("conn:"))
    # docs/serving.md: base + T x (E x a + D x 23 B x P) + M + L x A x R + C x 0.4 MiB +
    # G x 17 KiB, default flags, worst-case JSON (A = 25), C and G from this process's
    # descriptor limit; the decode term needs images near --max-image-pixels.
    from inception.serving.limits import default_max_connections, default_max_grpc_connections

    rest_cap = default_max_connections()
    grpc_cap = default_max_grpc_connections(rest_cap)
    parse_and_small_mib = 256 + 2 * 25 * 64 + rest_cap * 0.4 + grpc_cap * 17 / 1024
    decode_mib = 10 * 23 * 64e6 / MIB
    reachable_mib = base_kib / 1024 + 16 * per_image_kib / 1024 + parse_and_small_mib
    bound_mib = reachable_mib + decode_mib
    summary = {
        "model": f"{args.model} {args.image_size}px {args.classes} classes",
        "seconds_under_load": round(loaded, 1),
        "good_requests": sum(good_status.values()),
        "good_status": dict(good_status),
        "abusive_requests": sum(sum(c.values()) for c in abuse_status.values()),
        "responses_5xx": five_xx,
        "good_connection_errors": conn_errors,
        "server_internal_or_unknown": internal,
        "rss_mib": {
            "idle_base": round(base_kib / 1024),
            "before": round(before_kib / 1024),
            "peak": round(peak_kib / 1024),
            "after": round(after_kib / 1024),
        },
        "per_image_mib": round(per_image_kib / 1024, 1),
        "bound_mib": round(bound_mib),
        "bound_without_decode_mib": round(reachable_mib),
        "good_latency_ms": {"p50": round(pct(lat, 0.5), 1), "p99": round(pct(lat, 0.99), 1),
                            "max": round(1e3 * lat[-1], 1) if lat else None},
        "good_latency_overlapping_60mb_bodies_ms": {
            "count": len(overlapped), "p50": round(pct(overlapped, 0.5), 1),
            "p99": round(pct(overlapped, 0.99), 1),
        },
        "shutdown_seconds": round(shutdown_s, 1),
        "exit_code": code,
        "abuse": {k: dict(v) for k, v in sorted(abuse_status.items())},
    }  # fmt: skip
    print("\n| abusive request | sent | answers |\n|---|---|---|")
    for kind in [*kinds, "rest_slow_body", *(f"flood_{k}" for k in floods)]:
        counts = abuse_status.get(kind, {})
        shown = ", ".join(f"{s} x{n}" for s, n in sorted(counts.items()))
        print(f"| {kind} | {sum(counts.values())} | {shown} |")
    r = summary["rss_mib"]
    gl, ol = summary["good_latency_ms"], summary["good_latency_overlapping_60mb_bodies_ms"]
    rows = [
        ("time under load", f"{loaded:.0f} s, {args.good_clients} good, "
         f"{args.abusive_clients} abusive, {args.heavy_clients} heavy and 1 slow-body clients"),
        ("good requests", f"{summary['good_requests']} ("
         + ", ".join(f"{s} x{n}" for s, n in good_status.items()) + ")"),
        ("abusive requests", summary["abusive_requests"]),
        ("5xx / UNAVAILABLE / INTERNAL answers (target 0)", five_xx),
        ("INTERNAL or UNKNOWN in /metrics", f"{internal:.0f}"),
        (f"RSS idle / before / peak / after {args.settle_seconds:.0f} s",
         f"{r['idle_base']} / {r['before']} / {r['peak']} / {r['after']} MiB"),
        ("per-image cost (16-image batches)", f"{summary['per_image_mib']} MiB"),
        ("bound, default flags: base + 16 a + 10 x 23 B x 64e6 + 256 MiB + 2 x 25 x 64 MiB"
         " + C x 0.4 MiB + G x 17 KiB",
         f"{summary['bound_mib']} MiB"),
        ("same without the decode term (no image here is over 160 px)",
         f"{summary['bound_without_decode_mib']} MiB"),
        ("good latency p50 / p99 / max", f"{gl['p50']} / {gl['p99']} / {gl['max']} ms"),
        ("good latency overlapping a 60 MB body: n / p50 / p99",
         f"{ol['count']} / {ol['p50']} / {ol['p99']} ms"),
        ("SIGTERM to exit", f"{shutdown_s:.1f} s (exit code {code})"),
    ]  # fmt: skip
    print("\n| measure | value |\n|---|---|")
    for label, value in rows:
        print(f"| {label} | {value} |")
    print("\n" + json.dumps(summary, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"summary": summary, "args": vars(args)}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
