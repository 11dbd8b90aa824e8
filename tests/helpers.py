"""Helpers shared by the test modules: the repository root, free ports, small image folders and
image headers, and a classifier whose predictions are known in advance. (Fixtures live in
``conftest.py``.) Keras loads only when a model is made."""

from __future__ import annotations

import io
import json
import re
import socket
import struct
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import numpy as np
from ilsvrc import synthetic_jpeg
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]  # the repository


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports free on 127.0.0.1 right now (all bound at once, then released)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def free_port() -> int:
    return free_ports(1)[0]


def png_header(width: int, height: int) -> bytes:
    """The first 33 bytes of an RGB PNG of ``width`` x ``height``: signature and IHDR, no data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
    )


def write_class_folder(root, classes=("cat", "dog", "eel"), per_class=3, seed=0):
    """``root/<class>/<i>.jpg``: synthetic JPEGs, one colour per class."""
    rng = np.random.default_rng(seed)
    for label, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            (root / name / f"{i}.jpg").write_bytes(synthetic_jpeg(label, rng))
    return root


def png_bytes(colour=(10, 200, 30), mode="RGB"):
    buffer = io.BytesIO()
    Image.new(mode, (20, 16), colour if mode == "RGB" else 128).save(buffer, "PNG")
    return buffer.getvalue()


# A "colour" classifier: class j is the red level R_j = 20 + 20 j; logits -(r - c_j)^2 up to a
# per-image constant, linear in the mean red r (in the [-1, 1] model input), so the ranking of
# an image of red R_p + 5 is p, p+1, p-1, p+2, p-2, p+3, ...
NUM = 10
CENTRES = (20 + 20 * np.arange(NUM)) / 127.5 - 1
# (predicted class p, true label): top-1 right 4 times; label in the top 5 (|label - p| <= 2)
# 3 more times; 3 times not in the top 5.
CASES = [(3, 3), (5, 5), (0, 0), (9, 9), (5, 6), (5, 3), (0, 4), (5, 8), (1, 7), (9, 2)]


def colour_model(size=48, background=None, name="colour"):
    import keras

    images = keras.Input((size, size, 3))
    x = keras.layers.GlobalAveragePooling2D()(images)
    kernel = np.zeros((3, NUM), np.float32)
    kernel[0] = 20 * 2 * CENTRES
    bias = -20 * CENTRES**2
    if background is not None:  # slim's layout: an extra class 0 in front
        kernel, bias = np.concatenate([np.zeros((3, 1)), kernel], 1), np.r_[background, bias]
    dense = keras.layers.Dense(len(bias), activation="softmax")
    model = keras.Model(images, dense(x), name=name)
    dense.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
    return model


def write_colour_folder(root, cases=CASES, size=(40, 56)):
    """PNG images (exact colours) in class sub-folders c0..c9 for ``colour_model``."""
    for i, (pred, label) in enumerate(cases):
        folder = root / f"c{label}"
        folder.mkdir(parents=True, exist_ok=True)
        image = np.zeros((*size, 3), np.uint8)
        image[..., 0] = 20 + 20 * pred + 5
        image[..., 1] = 90
        Image.fromarray(image).save(folder / f"{i}.png")
    for label in range(NUM):
        (root / f"c{label}").mkdir(exist_ok=True)
    return root


def randomize_batchnorm(model, seed=0):
    """Gives every BatchNormalization of ``model`` (and of nested models) random statistics, so
    that folding it away is a real test."""
    from keras import layers

    rng = np.random.default_rng(seed)
    for layer in all_layers(model):
        if isinstance(layer, layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0, 0.5, n))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, n))
            if layer.center:
                layer.beta.assign(rng.normal(0, 0.2, n))
            if layer.scale:
                layer.gamma.assign(rng.uniform(0.5, 1.5, n))
    return model


def all_layers(model):
    import keras

    for layer in model.layers:
        yield from all_layers(layer) if isinstance(layer, keras.Model) else [layer]


def fake_runner_clock(monkeypatch):
    """The evaluation runner's clock made exact: the first forward pass (which compiles) takes
    100 s, every later one 1 s."""
    from types import SimpleNamespace

    from inception.evaluation import runner

    clock = {"now": 0.0}
    monkeypatch.setattr(runner, "time", SimpleNamespace(perf_counter=lambda: clock["now"]))
    forward = runner.Runner.forward

    def timed(self, batch, eager=False):
        clock["now"] += 100.0 if self.steady_since is None else 1.0
        return forward(self, batch, eager)

    monkeypatch.setattr(runner.Runner, "forward", timed)


# --- clients of a running server ----------------------------------------------------------------


def post(url, path, body, headers=None, timeout=60):
    """``(status, JSON answer)`` of a POST of ``body`` (bytes, or an object sent as JSON)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def metric_counts(url) -> dict:
    """``inception_serving_requests_total`` by ``(api, method, code)``, from ``url/metrics``."""
    with urllib.request.urlopen(url + "/metrics", timeout=30) as r:
        text = r.read().decode()
    counts = {}
    for labels, value in re.findall(r"inception_serving_requests_total\{([^}]*)\} (\S+)", text):
        fields = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        key = (fields["api"], fields["method"], fields["code"])
        counts[key] = counts.get(key, 0) + float(value)
    return counts


def wait_for(predicate, seconds=60.0, every=0.05):
    """Polls ``predicate`` until it holds or ``seconds`` pass; returns whether it held."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return False
