"""Serving benchmark: ``inception serve`` over REST and gRPC at concurrency 1, 8 and 32, against
the raw SavedModel's own batched throughput measured in the same run.

    python benchmarks/serving.py                       # small default: Inception-ResNet-v1, 107 px
    python benchmarks/serving.py --model inception_v4 --image-size 299 --seconds 20

Each client sends one JPEG per request (``serving_default``: decoding and resizing included,
in the raw measurement too). The clients run in this process, on the same cores as the server,
so the server's own CPU time per image (from ``/proc``) is reported beside the raw model's
(this process's CPU time over the batch-16 runs): their ratio is the server's overhead whatever
the clients cost. ``--precision float32,bfloat16`` exports both and compares them,
interleaved (issue 9's goal: bfloat16 >= 1.6x float32 at concurrency 32). The raw baseline
calls the same signature in-process with batches of 1 and 16, right before and right after each
point (its mean is that point's baseline). Every point is measured once per round, ``--repeats``
rounds, so that a slow spell of the shared machine touches every point alike; each figure is the
median over the rounds, and the lowest and highest ratios are shown beside it. Goals (issue 21):
at concurrency 32 the server reaches >= 95% of the raw batch-16 throughput; at concurrency 1 its
p50 latency is <= 1.2x the raw batch-1 latency.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def jpeg(size: int, seed: int) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


class RawModel:
    """The exported ``serving_default`` called in-process: batch-1 latency, batch-16 rate."""

    def __init__(self, path: str, images: list[bytes]):
        import tensorflow as tf

        self.fn = tf.saved_model.load(path).signatures["serving_default"]
        self.one = tf.constant(images[:1])
        self.sixteen = tf.constant((images * 16)[:16])
        for batch in (self.one, self.sixteen):
            self.fn(images=batch)  # warm up

    def batch1_p50_ms(self, seconds: float) -> float:
        lat = []
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline or len(lat) < 5:
            t = time.perf_counter()
            self.fn(images=self.one)["probabilities"].numpy()
            lat.append(time.perf_counter() - t)
        return 1e3 * float(np.median(lat))

    def batch16(self, seconds: float) -> tuple[float, float]:
        """Images per second at batch 16, and this process's CPU milliseconds per image."""
        count, start, cpu = 0, time.perf_counter(), time.process_time()
        while time.perf_counter() - start < seconds or count < 3:
            self.fn(images=self.sixteen)["probabilities"].numpy()
            count += 1
        cpu_ms = 1e3 * (time.process_time() - cpu) / (16 * count)
        return 16 * count / (time.perf_counter() - start), cpu_ms


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (Linux ``/proc``)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(base: str, rest: int, grpc_port: int, args) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "inception.cli",
        "serve",
        "--model-base-path",
        base,
        "--host",
        "127.0.0.1",
        "--rest-port",
        str(rest),
        "--grpc-port",
        str(grpc_port),
        "--max-batch-size",
        str(args.max_batch_size),
        "--num-batch-threads",
        str(args.num_batch_threads),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{rest}/healthz", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("inception serve exited during start-up") from None
        time.sleep(0.5)
    proc.kill()
    raise TimeoutError("inception serve did not become ready in 300 s")


def load(
    api: str,
    name: str,
    rest: int,
    grpc_port: int,
    images,
    concurrency: int,
    seconds: float,
    server_pid: int,
) -> dict:
    """``concurrency`` closed-loop clients for ``seconds``: throughput, latency, and the server's
    CPU milliseconds per image."""
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    bodies = [
        json.dumps({"instances": [{"b64": base64.b64encode(d).decode()}]}).encode() for d in images
    ]
    protos = []
    for d in images:
        req = predict_pb2.PredictRequest()
        req.model_spec.name = name
        req.inputs["images"].CopyFrom(tf.make_tensor_proto([d], dtype=tf.string))
        protos.append(req)
    channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    path = f"/v1/models/{name}:predict"
    latencies, lock, stop = [], threading.Lock(), threading.Event()

    def client(i):
        n = 0
        conn = http.client.HTTPConnection("127.0.0.1", rest, timeout=120)  # keep-alive
        while not stop.is_set():
            t = time.perf_counter()
            if api == "rest":
                conn.request(
                    "POST",
                    path,
                    body=bodies[(i + n) % len(bodies)],
                    headers={"Content-Type": "application/json"},
                )
                r = conn.getresponse()
                r.read()
                assert r.status == 200, r.status
            else:
                stub.Predict(protos[(i + n) % len(protos)], timeout=120)
            with lock:
                latencies.append(time.perf_counter() - t)
            n += 1
        conn.close()

    with ThreadPoolExecutor(concurrency) as pool:
        futures = [pool.submit(client, i) for i in range(concurrency)]
        time.sleep(min(2.0, seconds / 4))  # warm up, then measure
        with lock:
            latencies.clear()
        start, cpu, mine = time.perf_counter(), cpu_seconds(server_pid), time.process_time()
        time.sleep(seconds)
        with lock:
            done, lat = len(latencies), sorted(latencies)
        elapsed, cpu = time.perf_counter() - start, cpu_seconds(server_pid) - cpu
        mine = time.process_time() - mine
        stop.set()
        for f in futures:
            f.result()
    channel.close()
    return {
        "img_s": done / elapsed,
        "p50_ms": 1e3 * lat[len(lat) // 2] if lat else float("nan"),
        "p99_ms": 1e3 * lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else float("nan"),
        "server_cpu_ms": 1e3 * cpu / done if done else float("nan"),
        "client_cpu_ms": 1e3 * mine / done if done else float("nan"),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="inception_resnet_v1")
    p.add_argument("--image-size", type=int, default=107)
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--concurrency", default="1,8,32")
    p.add_argument("--apis", default="rest,grpc")
    p.add_argument("--precision", default="float32",
                   help="export precision(s), comma-separated: float32,bfloat16 compares them, "
                   "interleaved, each against its own raw SavedModel")  # fmt: skip
    p.add_argument("--seconds", type=float, default=8.0, help="measured time per point")
    p.add_argument("--repeats", type=int, default=5, help="rounds (every point once a round)")
    p.add_argument("--max-batch-size", type=int, default=16)
    p.add_argument("--num-batch-threads", type=int, default=1)
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)

    import inception
    from inception.serving.export import export_saved_model

    work = tempfile.mkdtemp(prefix="serving-bench-")
    model = inception.build(
        args.model, input_shape=(args.image_size,) * 2 + (3,), classes=args.classes
    )
    names = (
        inception.class_names(args.classes)
        if args.classes in (1000, 1001)
        else [str(i) for i in range(args.classes)]
    )
    precisions = args.precision.split(",")
    images = [jpeg(max(args.image_size, 160), seed) for seed in range(8)]
    raws, procs, ports = {}, {}, {}
    try:
        for precision in precisions:
            folder = os.path.join(work, precision)
            path = str(export_saved_model([model], folder, "bench", 1, names, precision=precision))
            raws[precision] = RawModel(path, images)
            ports[precision] = (_free_port(), _free_port())
            procs[precision] = start_server(os.path.join(folder, "bench"), *ports[precision], args)
        del model
        pids = {precision: proc.pid for precision, proc in procs.items()}
        results = measure(args, precisions, raws, ports, pids, images)
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait(60)
    report(args, precisions, results)
    return 0


def baseline(raw: RawModel, seconds: float) -> tuple[float, float, float]:
    """The raw model's batch-1 p50 (ms), batch-16 rate (img/s) and CPU (ms/img), half the
    time each."""
    b1 = raw.batch1_p50_ms(seconds / 2)
    return (b1, *raw.batch16(seconds / 2))


def measure(args, precisions, raws, ports, pids, images) -> list[dict]:
    """Every (API, concurrency, precision) point once a round, ``--repeats`` rounds. The raw
    baseline is measured right before and right after each point (the servers idle meanwhile)
    and averaged, so that both see the same machine load; each point's ratios are against its
    own baseline."""
    points = [
        (api, c, precision)
        for api in args.apis.split(",")
        for c in (int(x) for x in args.concurrency.split(","))
        for precision in precisions
    ]
    runs = {point: [] for point in points}
    for round_ in range(args.repeats):
        for api, c, precision in points:
            raw = raws[precision]
            before = baseline(raw, args.seconds / 2)
            r = load(api, "bench", *ports[precision], images, c, args.seconds, pids[precision])
            after = baseline(raw, args.seconds / 2)
            b1, b16, raw_cpu = ((x + y) / 2 for x, y in zip(before, after))
            r.update(raw_b1_ms=b1, raw_b16_img_s=b16, vs_raw_b16=r["img_s"] / b16,
                     p50_vs_raw_b1=r["p50_ms"] / b1, raw_cpu_ms=raw_cpu,
                     cpu_vs_raw=r["server_cpu_ms"] / raw_cpu)  # fmt: skip
            runs[api, c, precision].append(r)
            print(
                f"round {round_ + 1}: {precision:<9}{api:<5} c={c:<3} {r['img_s']:7.1f} img/s "
                f"({r['vs_raw_b16']:.0%} of raw b16 {b16:.1f})  p50 {r['p50_ms']:7.1f} ms "
                f"({r['p50_vs_raw_b1']:.2f}x raw b1 {b1:.1f})  p99 {r['p99_ms']:7.1f} ms  "
                f"server CPU {r['server_cpu_ms']:.1f} ms/img ({r['cpu_vs_raw']:.2f}x raw), "
                f"clients {r['client_cpu_ms']:.1f} ms/img",
                flush=True,
            )
    results = []
    for api, c, precision in points:
        mine = runs[api, c, precision]
        row = {k: statistics.median(r[k] for r in mine) for k in mine[0]}
        for k in ("vs_raw_b16", "p50_vs_raw_b1"):
            row[k + "_range"] = (min(r[k] for r in mine), max(r[k] for r in mine))
        row.update(api=api, concurrency=c, precision=precision)
        if precision != precisions[0]:
            first = runs[api, c, precisions[0]]
            row["vs_first_precision"] = statistics.median(
                a["img_s"] / b["img_s"] for a, b in zip(mine, first)
            )
        results.append(row)
    return results


def report(args, precisions, results) -> None:
    print(f"\n{args.model} at {args.image_size} px, median of {args.repeats} rounds\n")
    print("| precision | API | concurrency | img/s | vs raw batch-16 (lowest-highest) | p50 ms | "
          "p50 vs raw batch-1 (lowest-highest) | p99 ms | server CPU ms/img | vs raw b16 CPU | "
          f"clients' CPU ms/img | vs {precisions[0]} |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        ratio = f"{r['vs_first_precision']:.2f}x" if "vs_first_precision" in r else "1.00x"
        lo, hi = r["vs_raw_b16_range"]
        lo1, hi1 = r["p50_vs_raw_b1_range"]
        print(
            f"| {r['precision']} | {r['api']} | {r['concurrency']} | {r['img_s']:.1f} | "
            f"{r['vs_raw_b16']:.0%} ({lo:.0%}-{hi:.0%}) | {r['p50_ms']:.1f} | "
            f"{r['p50_vs_raw_b1']:.2f}x ({lo1:.2f}-{hi1:.2f}x) | "
            f"{r['p99_ms']:.1f} | {r['server_cpu_ms']:.1f} | {r['cpu_vs_raw']:.2f}x | "
            f"{r['client_cpu_ms']:.1f} | {ratio} |"
        )
    goal32 = [r["vs_raw_b16"] >= 0.95 for r in results if r["concurrency"] == 32]
    goal1 = [r["p50_vs_raw_b1"] <= 1.2 for r in results if r["concurrency"] == 1]

    def verdict(checks):
        return "not measured" if not checks else "met" if all(checks) else "NOT met"

    print(
        f"\ngoal c=32 >= 95% of raw batch-16: {verdict(goal32)}; "
        f"goal c=1 p50 <= 1.2x raw batch-1: {verdict(goal1)}"
    )
    faster = [r["vs_first_precision"] for r in results
              if r["concurrency"] == 32 and "vs_first_precision" in r]  # fmt: skip
    if faster:
        shown = ", ".join(f"{x:.2f}x" for x in faster)
        verdict = "met" if min(faster) >= 1.6 else "NOT met"
        print(f"goal c=32 {precisions[-1]} >= 1.6x {precisions[0]}: {verdict} ({shown})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": results, "args": vars(args)}, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
