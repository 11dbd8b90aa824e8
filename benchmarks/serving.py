"""Serving benchmark: ``inception serve`` over REST and gRPC at concurrency 1, 8 and 32, against
the raw SavedModel's own batched throughput measured in the same run.

    python benchmarks/serving.py                       # small default: Inception-ResNet-v1, 107 px
    python benchmarks/serving.py --model inception_v4 --image-size 299 --seconds 20

Each client sends one JPEG per request (``serving_default``: decoding and resizing included,
in the raw measurement too). The clients are lean (request bytes built once, one thread for all,
like ``wrk`` or ``ghz``) and run in this process, on the same cores as the server, so the
server's own CPU time per image (from ``/proc``) is reported beside the raw model's (this
process's CPU time over the batch-16 runs), and the clients' beside both. The raw baseline
calls the same signature in-process with batches of 1 and 16. Within each point, windows of
load (``--slice-seconds``) alternate with windows of the raw model, and each load window is
compared with the raw windows on either side: this shared machine's speed swings by a fifth
for tens of seconds at a time, and a baseline measured a minute away would carry that swing
into the ratio. A window's throughput is counted between whole batches (the first answers of a
window, while batches fill, are left out). Every point is measured once per round,
``--repeats`` rounds; a round's figure is the median over its windows, each figure in the table
the median over the rounds, with the lowest and highest beside it. ``--precision
float32,bfloat16`` exports both and compares them, interleaved (issue 9's goal: bfloat16 >=
1.6x float32 at concurrency 32). Goals (issue 21): at concurrency 32 the server reaches >= 95%
of the raw batch-16 throughput; at concurrency 1 its p50 latency is <= 1.2x the raw batch-1
latency.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

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


def requests(api: str, name: str, images: list[bytes]) -> list[bytes]:
    """Each image's request as sent: a whole HTTP/1.1 request for REST, a serialized
    ``PredictRequest`` for gRPC."""
    if api == "rest":
        path, out = f"/v1/models/{name}:predict".encode(), []
        for d in images:
            body = json.dumps({"instances": [{"b64": base64.b64encode(d).decode()}]}).encode()
            out.append(
                b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (path, len(body), body)
            )
        return out
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    out = []
    for d in images:
        req = predict_pb2.PredictRequest()
        req.model_spec.name = name
        req.inputs["images"].CopyFrom(tf.make_tensor_proto([d], dtype=tf.string))
        out.append(req.SerializeToString())
    return out


class Clients:
    """``concurrency`` closed-loop clients driven from the calling thread, as lean as a load
    generator (``wrk``, ``ghz``): ``requests`` are built once. REST: one keep-alive socket per
    client and window, a selector, the answer's status line and ``Content-Length`` read. gRPC: one
    channel, the bytes sent through a bytes-in, bytes-out ``Predict``, answers collected from
    gRPC's callbacks (an answer that is not OK raises). ``window(seconds)`` runs them, then
    stops sending and waits for the answers still due: ``[(answered, latency), ...]``
    (``time.perf_counter()``)."""

    def __init__(self, api: str, rest: int, grpc_port: int, requests, concurrency: int):
        self.api, self.concurrency, self.requests = api, concurrency, requests
        self.rest = rest
        if api != "rest":
            import grpc

            self.channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
            self.predict = self.channel.unary_unary("/tensorflow.serving.PredictionService/Predict")

    def window(self, seconds: float) -> list[tuple[float, float]]:
        run = self._rest if self.api == "rest" else self._grpc
        return run(time.perf_counter() + seconds)

    def _rest(self, until: float) -> list[tuple[float, float]]:
        import selectors

        selector, done, sent = selectors.DefaultSelector(), [], {}
        # connections of their own each window: the server closes idle ones between windows
        sockets = [socket.create_connection(("127.0.0.1", self.rest), timeout=120)
                   for _ in range(self.concurrency)]  # fmt: skip
        for i, sock in enumerate(sockets):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sent[sock] = [time.perf_counter(), bytearray(), i]
            sock.sendall(self.requests[i % len(self.requests)])
            selector.register(sock, selectors.EVENT_READ)
        while sent:
            for key, _ in selector.select(120):
                sock = key.fileobj
                state = sent[sock]
                chunk = sock.recv(1 << 20)
                if not chunk:
                    raise ConnectionError("the server closed a keep-alive connection")
                buf = state[1]
                buf += chunk
                head = buf.find(b"\r\n\r\n")
                if head < 0:
                    continue
                at = buf.find(b"Content-Length: ", 0, head)
                if at < 0 or not buf.startswith(b"HTTP/1.1 200 "):
                    raise RuntimeError(f"unexpected answer: {bytes(buf[:200])!r}")
                length = int(buf[at + 16 : buf.find(b"\r\n", at)])
                if len(buf) < head + 4 + length:
                    continue
                now = time.perf_counter()
                done.append((now, now - state[0]))
                del buf[: head + 4 + length]
                if now < until:
                    state[0], state[2] = now, state[2] + 1
                    sock.sendall(self.requests[state[2] % len(self.requests)])
                else:
                    selector.unregister(sock)
                    del sent[sock]
                    sock.close()
        selector.close()
        return done

    def _grpc(self, until: float) -> list[tuple[float, float]]:
        import queue

        answers, done, running = queue.SimpleQueue(), [], 0

        def send(i):
            started = time.perf_counter()
            future = self.predict.future(self.requests[i % len(self.requests)], timeout=120)
            future.add_done_callback(lambda f: answers.put((time.perf_counter(), started, i, f)))

        for i in range(self.concurrency):
            send(i)
            running += 1
        while running:
            now, started, i, future = answers.get(timeout=120)
            future.result()  # raises the call's error
            done.append((now, now - started))
            running -= 1
            if now < until:
                send(i + self.concurrency)
                running += 1
        return done

    def close(self):
        if self.api != "rest":
            self.channel.close()


class ClientProcess:
    """``Clients`` in a process of their own at the lowest CPU priority (nice 19): they stand in
    for clients on other machines, and on cores shared with the server they run in the time the
    server leaves idle instead of taking it from the model. ``window`` as ``Clients.window``,
    plus the process's CPU seconds over the window."""

    def __init__(self, api: str, rest: int, grpc_port: int, requests, concurrency: int):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump([base64.b64encode(r).decode() for r in requests], f)
        cmd = [sys.executable, os.path.abspath(__file__), "--client-process",
               f"{api},{rest},{grpc_port},{concurrency},{f.name}"]  # fmt: skip
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, preexec_fn=_lowest
        )
        ready = self.proc.stdout.readline().strip()
        os.unlink(f.name)
        if ready != "ready":
            raise RuntimeError(f"the {api} client process did not start")

    def window(self, seconds: float) -> tuple[list[tuple[float, float]], float]:
        self.proc.stdin.write(f"{seconds}\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the client process ended; its error is above")
        reply = json.loads(line)
        return [tuple(a) for a in reply["answers"]], reply["cpu_seconds"]

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(60)


def _lowest():
    os.nice(19)


def client_process(spec: str) -> int:
    """The client process: a window per line of seconds on stdin, a JSON line per window."""
    api, rest, grpc_port, concurrency, path = spec.split(",")
    with open(path) as f:
        sent = [base64.b64decode(r) for r in json.load(f)]
    clients = Clients(api, int(rest), int(grpc_port), sent, int(concurrency))
    print("ready", flush=True)
    for line in sys.stdin:
        cpu = time.process_time()
        answers = clients.window(float(line))
        cpu = time.process_time() - cpu
        print(json.dumps({"answers": answers, "cpu_seconds": cpu}), flush=True)
    clients.close()
    return 0


def steady_rate(answered: list[float], skip: int = 2, gap: float = 0.005) -> float:
    """Answers a second in a window's steady state. A batch's answers come within ``gap`` of
    each other (a burst); counting runs from the last answer of burst ``skip`` (the ramp: the
    first request of a window runs alone, the next batches fill) to the last answer, so that no
    partial batch is counted at either end."""
    ends = sorted(answered)
    starts = [i for i in range(1, len(ends)) if ends[i] - ends[i - 1] > gap]
    if len(starts) < skip + 1:
        raise RuntimeError("a window holds too few batches; raise --slice-seconds")
    first = starts[skip - 1] - 1
    return (len(ends) - 1 - first) / (ends[-1] - ends[first])


def main(argv=None) -> int:
    if argv is None and sys.argv[1:2] == ["--client-process"]:
        return client_process(sys.argv[2])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="inception_resnet_v1")
    p.add_argument("--image-size", type=int, default=107)
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--concurrency", default="1,8,32")
    p.add_argument("--apis", default="rest,grpc")
    p.add_argument("--precision", default="float32",
                   help="export precision(s), comma-separated: float32,bfloat16 compares them, "
                   "interleaved, each against its own raw SavedModel")  # fmt: skip
    p.add_argument(
        "--seconds",
        type=float,
        default=8.0,
        help="time under load per point and round, in windows of --slice-seconds",
    )
    p.add_argument("--slice-seconds", type=float, default=2.0,
                   help="one window of load, then one of the raw model, alternating")  # fmt: skip
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
        shutil.rmtree(work, ignore_errors=True)  # the exports
    report(args, precisions, results)
    return 0


def baseline(raw: RawModel, seconds: float) -> tuple[float, float, float]:
    """The raw model's batch-1 p50 (ms), batch-16 rate (img/s) and CPU (ms/img), half the
    time each."""
    b1 = raw.batch1_p50_ms(seconds / 2)
    return (b1, *raw.batch16(seconds / 2))


def measure(args, precisions, raws, ports, pids, images) -> list[dict]:
    """Every (API, concurrency, precision) point once a round, ``--repeats`` rounds. Within a
    point, windows of the server under load alternate with windows of the raw model (the
    server idle meanwhile), ``--slice-seconds`` each, so that the machine's slow swings (this
    shared machine's raw rate moves by a fifth for tens of seconds) touch both alike: each
    server window is compared with the mean of the raw windows on either side. A round's figure
    for a point is the median over its windows."""
    points = [
        (api, c, precision)
        for api in args.apis.split(",")
        for c in (int(x) for x in args.concurrency.split(","))
        for precision in precisions
    ]
    sent = {api: requests(api, "bench", images) for api in {p[0] for p in points}}
    clients = {p: ClientProcess(p[0], *ports[p[2]], sent[p[0]], p[1]) for p in points}
    slices = max(1, round(args.seconds / args.slice_seconds))
    runs = {point: [] for point in points}
    try:
        for round_ in range(args.repeats):
            for point in points:
                api, c, precision = point
                raw, pid, windows = raws[precision], pids[precision], []
                before = baseline(raw, args.slice_seconds)
                for _ in range(slices):
                    cpu = cpu_seconds(pid)
                    answers, mine = clients[point].window(args.slice_seconds)
                    cpu = cpu_seconds(pid) - cpu
                    after = baseline(raw, args.slice_seconds)
                    b1, b16, raw_cpu = ((x + y) / 2 for x, y in zip(before, after))
                    rate = steady_rate([t for t, _ in answers])
                    windows.append(dict(
                        img_s=rate, vs_raw_b16=rate / b16, raw_b1_ms=b1, raw_b16_img_s=b16,
                        raw_cpu_ms=raw_cpu, server_cpu_ms=1e3 * cpu / len(answers),
                        client_cpu_ms=1e3 * mine / len(answers),
                        latencies=[lat for _, lat in answers[c:]],
                    ))  # fmt: skip
                    before = after
                lat = sorted(x for w in windows for x in w.pop("latencies"))
                r = {k: statistics.median(w[k] for w in windows) for k in windows[0]}
                r.update(p50_ms=1e3 * lat[len(lat) // 2],
                         p99_ms=1e3 * lat[min(len(lat) - 1, int(len(lat) * 0.99))])  # fmt: skip
                r.update(p50_vs_raw_b1=r["p50_ms"] / r["raw_b1_ms"],
                         cpu_vs_raw=r["server_cpu_ms"] / r["raw_cpu_ms"])  # fmt: skip
                runs[point].append(r)
                print(
                    f"round {round_ + 1}: {precision:<9}{api:<5} c={c:<3} {r['img_s']:7.1f} img/s "
                    f"({r['vs_raw_b16']:.0%} of raw b16 {r['raw_b16_img_s']:.1f})  "
                    f"p50 {r['p50_ms']:7.1f} ms ({r['p50_vs_raw_b1']:.2f}x raw b1 "
                    f"{r['raw_b1_ms']:.1f})  p99 {r['p99_ms']:7.1f} ms  server CPU "
                    f"{r['server_cpu_ms']:.1f} ms/img ({r['cpu_vs_raw']:.2f}x raw), clients "
                    f"{r['client_cpu_ms']:.2f} ms/img; windows "
                    + " ".join(f"{w['vs_raw_b16']:.0%}" for w in windows),
                    flush=True,
                )
    finally:
        for client in clients.values():
            client.close()
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
            f"{r['vs_raw_b16']:.1%} ({lo:.1%}-{hi:.1%}) | {r['p50_ms']:.1f} | "
            f"{r['p50_vs_raw_b1']:.2f}x ({lo1:.2f}-{hi1:.2f}x) | "
            f"{r['p99_ms']:.1f} | {r['server_cpu_ms']:.1f} | {r['cpu_vs_raw']:.2f}x | "
            f"{r['client_cpu_ms']:.2f} | {ratio} |"
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
