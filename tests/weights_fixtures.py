"""Test fixtures for the weight converters: the reference checkpoints' exact tensor names and
shapes, transcribed by hand from TF-slim's ``research/slim/nets/inception_v4.py`` /
``inception_resnet_v2.py`` and timm's ``timm/models/inception_v4.py`` / ``inception_resnet_v2.py``
(NOT derived from this project's layer names), writers for each source format, and a local HTTP
server for download tests.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading

import numpy as np


class Spec:
    """Collects (slim name, shape) and (timm key, shape) pairs: conv-BN units, dense layers."""

    def __init__(self, slim_root):
        self.root = slim_root
        self.slim: dict[str, tuple] = {}
        self.timm: dict[str, tuple] = {}

    def conv(self, scope, timm, k, cin, cout):
        """A slim ``conv2d`` + ``batch_norm(scale=False)`` / a timm ``ConvNormAct``."""
        kh, kw = (k, k) if isinstance(k, int) else k
        s = f"{self.root}/{scope}"
        self.slim[f"{s}/weights"] = (kh, kw, cin, cout)
        for v in ("beta", "moving_mean", "moving_variance"):
            self.slim[f"{s}/BatchNorm/{v}"] = (cout,)
        if timm is not None:
            self.timm[f"{timm}.conv.weight"] = (cout, cin, kh, kw)
            for v in ("weight", "bias", "running_mean", "running_var"):
                self.timm[f"{timm}.bn.{v}"] = (cout,)
            self.timm[f"{timm}.bn.num_batches_tracked"] = ()

    def linear_conv(self, scope, timm, cin, cout):
        """The residual blocks' 1x1 conv with bias, no BN."""
        self.slim[f"{self.root}/{scope}/weights"] = (1, 1, cin, cout)
        self.slim[f"{self.root}/{scope}/biases"] = (cout,)
        self.timm[f"{timm}.weight"] = (cout, cin, 1, 1)
        self.timm[f"{timm}.bias"] = (cout,)

    def dense(self, scope, timm, cin, classes, timm_classes=1000):
        self.slim[f"{self.root}/{scope}/weights"] = (cin, classes)
        self.slim[f"{self.root}/{scope}/biases"] = (classes,)
        if timm is not None:
            self.timm[f"{timm}.weight"] = (timm_classes, cin)
            self.timm[f"{timm}.bias"] = (timm_classes,)


@functools.cache
def inception_v4_spec(classes=1001):
    s = Spec("InceptionV4")
    s.conv("Conv2d_1a_3x3", "features.0", 3, 3, 32)
    s.conv("Conv2d_2a_3x3", "features.1", 3, 32, 32)
    s.conv("Conv2d_2b_3x3", "features.2", 3, 32, 64)
    s.conv("Mixed_3a/Branch_1/Conv2d_0a_3x3", "features.3.conv", 3, 64, 96)
    f = "features.4"
    s.conv("Mixed_4a/Branch_0/Conv2d_0a_1x1", f"{f}.branch0.0", 1, 160, 64)
    s.conv("Mixed_4a/Branch_0/Conv2d_1a_3x3", f"{f}.branch0.1", 3, 64, 96)
    s.conv("Mixed_4a/Branch_1/Conv2d_0a_1x1", f"{f}.branch1.0", 1, 160, 64)
    s.conv("Mixed_4a/Branch_1/Conv2d_0b_1x7", f"{f}.branch1.1", (1, 7), 64, 64)
    s.conv("Mixed_4a/Branch_1/Conv2d_0c_7x1", f"{f}.branch1.2", (7, 1), 64, 64)
    s.conv("Mixed_4a/Branch_1/Conv2d_1a_3x3", f"{f}.branch1.3", 3, 64, 96)
    s.conv("Mixed_5a/Branch_0/Conv2d_1a_3x3", "features.5.conv", 3, 192, 192)
    for i, c in enumerate("bcde"):
        b, f = f"Mixed_5{c}", f"features.{6 + i}"
        s.conv(f"{b}/Branch_0/Conv2d_0a_1x1", f"{f}.branch0", 1, 384, 96)
        s.conv(f"{b}/Branch_1/Conv2d_0a_1x1", f"{f}.branch1.0", 1, 384, 64)
        s.conv(f"{b}/Branch_1/Conv2d_0b_3x3", f"{f}.branch1.1", 3, 64, 96)
        s.conv(f"{b}/Branch_2/Conv2d_0a_1x1", f"{f}.branch2.0", 1, 384, 64)
        s.conv(f"{b}/Branch_2/Conv2d_0b_3x3", f"{f}.branch2.1", 3, 64, 96)
        s.conv(f"{b}/Branch_2/Conv2d_0c_3x3", f"{f}.branch2.2", 3, 96, 96)
        s.conv(f"{b}/Branch_3/Conv2d_0b_1x1", f"{f}.branch3.1", 1, 384, 96)
    b, f = "Mixed_6a", "features.10"
    s.conv(f"{b}/Branch_0/Conv2d_1a_3x3", f"{f}.branch0", 3, 384, 384)
    s.conv(f"{b}/Branch_1/Conv2d_0a_1x1", f"{f}.branch1.0", 1, 384, 192)
    s.conv(f"{b}/Branch_1/Conv2d_0b_3x3", f"{f}.branch1.1", 3, 192, 224)
    s.conv(f"{b}/Branch_1/Conv2d_1a_3x3", f"{f}.branch1.2", 3, 224, 256)
    for i, c in enumerate("bcdefgh"):
        b, f = f"Mixed_6{c}", f"features.{11 + i}"
        s.conv(f"{b}/Branch_0/Conv2d_0a_1x1", f"{f}.branch0", 1, 1024, 384)
        s.conv(f"{b}/Branch_1/Conv2d_0a_1x1", f"{f}.branch1.0", 1, 1024, 192)
        s.conv(f"{b}/Branch_1/Conv2d_0b_1x7", f"{f}.branch1.1", (1, 7), 192, 224)
        s.conv(f"{b}/Branch_1/Conv2d_0c_7x1", f"{f}.branch1.2", (7, 1), 224, 256)
        s.conv(f"{b}/Branch_2/Conv2d_0a_1x1", f"{f}.branch2.0", 1, 1024, 192)
        s.conv(f"{b}/Branch_2/Conv2d_0b_7x1", f"{f}.branch2.1", (7, 1), 192, 192)
        s.conv(f"{b}/Branch_2/Conv2d_0c_1x7", f"{f}.branch2.2", (1, 7), 192, 224)
        s.conv(f"{b}/Branch_2/Conv2d_0d_7x1", f"{f}.branch2.3", (7, 1), 224, 224)
        s.conv(f"{b}/Branch_2/Conv2d_0e_1x7", f"{f}.branch2.4", (1, 7), 224, 256)
        s.conv(f"{b}/Branch_3/Conv2d_0b_1x1", f"{f}.branch3.1", 1, 1024, 128)
    b, f = "Mixed_7a", "features.18"
    s.conv(f"{b}/Branch_0/Conv2d_0a_1x1", f"{f}.branch0.0", 1, 1024, 192)
    s.conv(f"{b}/Branch_0/Conv2d_1a_3x3", f"{f}.branch0.1", 3, 192, 192)
    s.conv(f"{b}/Branch_1/Conv2d_0a_1x1", f"{f}.branch1.0", 1, 1024, 256)
    s.conv(f"{b}/Branch_1/Conv2d_0b_1x7", f"{f}.branch1.1", (1, 7), 256, 256)
    s.conv(f"{b}/Branch_1/Conv2d_0c_7x1", f"{f}.branch1.2", (7, 1), 256, 320)
    s.conv(f"{b}/Branch_1/Conv2d_1a_3x3", f"{f}.branch1.3", 3, 320, 320)
    for i, c in enumerate("bcd"):
        b, f = f"Mixed_7{c}", f"features.{19 + i}"
        s.conv(f"{b}/Branch_0/Conv2d_0a_1x1", f"{f}.branch0", 1, 1536, 256)
        s.conv(f"{b}/Branch_1/Conv2d_0a_1x1", f"{f}.branch1_0", 1, 1536, 384)
        s.conv(f"{b}/Branch_1/Conv2d_0b_1x3", f"{f}.branch1_1a", (1, 3), 384, 256)
        s.conv(f"{b}/Branch_1/Conv2d_0c_3x1", f"{f}.branch1_1b", (3, 1), 384, 256)
        s.conv(f"{b}/Branch_2/Conv2d_0a_1x1", f"{f}.branch2_0", 1, 1536, 384)
        s.conv(f"{b}/Branch_2/Conv2d_0b_3x1", f"{f}.branch2_1", (3, 1), 384, 448)
        s.conv(f"{b}/Branch_2/Conv2d_0c_1x3", f"{f}.branch2_2", (1, 3), 448, 512)
        s.conv(f"{b}/Branch_2/Conv2d_0d_1x3", f"{f}.branch2_3a", (1, 3), 512, 256)
        s.conv(f"{b}/Branch_2/Conv2d_0e_3x1", f"{f}.branch2_3b", (3, 1), 512, 256)
        s.conv(f"{b}/Branch_3/Conv2d_0b_1x1", f"{f}.branch3.1", 1, 1536, 256)
    s.conv("AuxLogits/Conv2d_1b_1x1", None, 1, 1024, 128)
    s.conv("AuxLogits/Conv2d_2a", None, 5, 128, 768)
    s.dense("AuxLogits/Aux_logits", None, 768, classes)
    s.dense("Logits/Logits", "last_linear", 1536, classes)
    return s


@functools.cache
def inception_resnet_v2_spec(classes=1001):
    s = Spec("InceptionResnetV2")
    s.conv("Conv2d_1a_3x3", "conv2d_1a", 3, 3, 32)
    s.conv("Conv2d_2a_3x3", "conv2d_2a", 3, 32, 32)
    s.conv("Conv2d_2b_3x3", "conv2d_2b", 3, 32, 64)
    s.conv("Conv2d_3b_1x1", "conv2d_3b", 1, 64, 80)
    s.conv("Conv2d_4a_3x3", "conv2d_4a", 3, 80, 192)
    b, t = "Mixed_5b", "mixed_5b"
    s.conv(f"{b}/Branch_0/Conv2d_1x1", f"{t}.branch0", 1, 192, 96)
    s.conv(f"{b}/Branch_1/Conv2d_0a_1x1", f"{t}.branch1.0", 1, 192, 48)
    s.conv(f"{b}/Branch_1/Conv2d_0b_5x5", f"{t}.branch1.1", 5, 48, 64)
    s.conv(f"{b}/Branch_2/Conv2d_0a_1x1", f"{t}.branch2.0", 1, 192, 64)
    s.conv(f"{b}/Branch_2/Conv2d_0b_3x3", f"{t}.branch2.1", 3, 64, 96)
    s.conv(f"{b}/Branch_2/Conv2d_0c_3x3", f"{t}.branch2.2", 3, 96, 96)
    s.conv(f"{b}/Branch_3/Conv2d_0b_1x1", f"{t}.branch3.1", 1, 192, 64)
    for i in range(10):
        b, t = f"Repeat/block35_{i + 1}", f"repeat.{i}"
        s.conv(f"{b}/Branch_0/Conv2d_1x1", f"{t}.branch0", 1, 320, 32)
        s.conv(f"{b}/Branch_1/Conv2d_0a_1x1", f"{t}.branch1.0", 1, 320, 32)
        s.conv(f"{b}/Branch_1/Conv2d_0b_3x3", f"{t}.branch1.1", 3, 32, 32)
        s.conv(f"{b}/Branch_2/Conv2d_0a_1x1", f"{t}.branch2.0", 1, 320, 32)
        s.conv(f"{b}/Branch_2/Conv2d_0b_3x3", f"{t}.branch2.1", 3, 32, 48)
        s.conv(f"{b}/Branch_2/Conv2d_0c_3x3", f"{t}.branch2.2", 3, 48, 64)
        s.linear_conv(f"{b}/Conv2d_1x1", f"{t}.conv2d", 128, 320)
    b, t = "Mixed_6a", "mixed_6a"
    s.conv(f"{b}/Branch_0/Conv2d_1a_3x3", f"{t}.branch0", 3, 320, 384)
    s.conv(f"{b}/Branch_1/Conv2d_0a_1x1", f"{t}.branch1.0", 1, 320, 256)
    s.conv(f"{b}/Branch_1/Conv2d_0b_3x3", f"{t}.branch1.1", 3, 256, 256)
    s.conv(f"{b}/Branch_1/Conv2d_1a_3x3", f"{t}.branch1.2", 3, 256, 384)
    for i in range(20):
        b, t = f"Repeat_1/block17_{i + 1}", f"repeat_1.{i}"
        s.conv(f"{b}/Branch_0/Conv2d_1x1", f"{t}.branch0", 1, 1088, 192)
        s.conv(f"{b}/Branch_1/Conv2d_0a_1x1", f"{t}.branch1.0", 1, 1088, 128)
        s.conv(f"{b}/Branch_1/Conv2d_0b_1x7", f"{t}.branch1.1", (1, 7), 128, 160)
        s.conv(f"{b}/Branch_1/Conv2d_0c_7x1", f"{t}.branch1.2", (7, 1), 160, 192)
        s.linear_conv(f"{b}/Conv2d_1x1", f"{t}.conv2d", 384, 1088)
    b, t = "Mixed_7a", "mixed_7a"
    s.conv(f"{b}/Branch_0/Conv2d_0a_1x1", f"{t}.branch0.0", 1, 1088, 256)
    s.conv(f"{b}/Branch_0/Conv2d_1a_3x3", f"{t}.branch0.1", 3, 256, 384)
    s.conv(f"{b}/Branch_1/Conv2d_0a_1x1", f"{t}.branch1.0", 1, 1088, 256)
    s.conv(f"{b}/Branch_1/Conv2d_1a_3x3", f"{t}.branch1.1", 3, 256, 288)
    s.conv(f"{b}/Branch_2/Conv2d_0a_1x1", f"{t}.branch2.0", 1, 1088, 256)
    s.conv(f"{b}/Branch_2/Conv2d_0b_3x3", f"{t}.branch2.1", 3, 256, 288)
    s.conv(f"{b}/Branch_2/Conv2d_1a_3x3", f"{t}.branch2.2", 3, 288, 320)
    blocks = [(f"Repeat_2/block8_{i + 1}", f"repeat_2.{i}") for i in range(9)]
    for b, t in [*blocks, ("Block8", "block8")]:
        s.conv(f"{b}/Branch_0/Conv2d_1x1", f"{t}.branch0", 1, 2080, 192)
        s.conv(f"{b}/Branch_1/Conv2d_0a_1x1", f"{t}.branch1.0", 1, 2080, 192)
        s.conv(f"{b}/Branch_1/Conv2d_0b_1x3", f"{t}.branch1.1", (1, 3), 192, 224)
        s.conv(f"{b}/Branch_1/Conv2d_0c_3x1", f"{t}.branch1.2", (3, 1), 224, 256)
        s.linear_conv(f"{b}/Conv2d_1x1", f"{t}.conv2d", 448, 2080)
    s.conv("Conv2d_7b_1x1", "conv2d_7b", 1, 2080, 1536)
    s.conv("AuxLogits/Conv2d_1b_1x1", None, 1, 1088, 128)
    s.conv("AuxLogits/Conv2d_2a_5x5", None, 5, 128, 768)
    s.dense("AuxLogits/Logits", None, 768, classes)
    s.dense("Logits/Logits", "classif", 1536, classes)
    return s


SPECS = {"inception_v4": inception_v4_spec, "inception_resnet_v2": inception_resnet_v2_spec}


def random_tensors(shapes: dict, seed=0) -> dict:
    """Distinct random values per tensor (variances positive, counters int64)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in shapes.items():
        if shape == ():
            out[name] = np.asarray(7, dtype=np.int64)
        elif name.endswith(("moving_variance", "running_var")):
            out[name] = rng.uniform(0.5, 2.0, shape).astype(np.float32)
        else:
            out[name] = rng.normal(0.0, 0.05, shape).astype(np.float32)
    return out


def write_slim_checkpoint(prefix: str, tensors: dict, global_step=True) -> str:
    """Writes a TF1 name-based checkpoint with ``tf.compat.v1.train.Saver`` (as slim's
    ``train_image_classifier.py`` did), under exactly the given variable names."""
    import tensorflow as tf

    with tf.Graph().as_default():
        feeds, variables = {}, {}
        for name, value in tensors.items():  # fed, not embedded: keeps the graph small
            ph = tf.compat.v1.placeholder(tf.as_dtype(value.dtype), value.shape)
            variables[name] = tf.compat.v1.Variable(ph, name=name.replace("/", "_"))
            feeds[ph] = value
        if global_step:
            variables["global_step"] = tf.compat.v1.Variable(np.int64(1000), name="global_step")
        saver = tf.compat.v1.train.Saver(var_list=variables)
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer(), feed_dict=feeds)
            return saver.save(sess, prefix, write_meta_graph=False)


def file_hash(path, algorithm="sha256") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class LocalServer:
    """An HTTP server on 127.0.0.1 serving ``files`` (url path -> bytes). A path listed in
    ``truncate`` announces the full Content-Length but sends only half the bytes."""

    def __init__(self, files: dict[str, bytes], truncate=()):
        files, truncate = dict(files), set(truncate)
        self.requests: list[str] = []
        requests = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                requests.append(self.path)
                body = files.get(self.path)
                if body is None:
                    self.send_error(404, "File not found")
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if self.path in truncate else body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


# --- pytest fixtures (import them into a test module to use them) --------------------------------

import pytest  # noqa: E402

_SLIM: dict[str, tuple] = {}


def slim_checkpoint(name):
    """A TF-slim checkpoint of ``name`` (1001 classes, aux head, global_step), written once per
    test session and shared by all modules: (prefix, tensors)."""
    if name not in _SLIM:
        import atexit
        import shutil
        import tempfile

        root = tempfile.mkdtemp(prefix="inception-slim-")
        atexit.register(shutil.rmtree, root, True)
        tensors = random_tensors(SPECS[name]().slim, seed=len(name))
        _SLIM[name] = (write_slim_checkpoint(f"{root}/model.ckpt", tensors), tensors)
    return _SLIM[name]


@pytest.fixture(scope="session")
def slim_checkpoints():
    """Both networks' TF-slim checkpoints: name -> (prefix, tensors)."""
    return {name: slim_checkpoint(name) for name in SPECS}


@pytest.fixture(scope="session")
def timm_files(tmp_path_factory):
    """timm safetensors (1000 classes) with BN scales != 1: name -> (path, tensors)."""
    from safetensors.numpy import save_file

    root = tmp_path_factory.mktemp("timm")
    out = {}
    for i, (name, spec) in enumerate(SPECS.items()):
        tensors = random_tensors(spec().timm, seed=10 + i)
        for key in tensors:
            if key.endswith(".bn.weight"):
                tensors[key] = np.random.default_rng(i).uniform(0.5, 1.5, tensors[key].shape)
                tensors[key] = tensors[key].astype(np.float32)
        path = str(root / f"{name}.safetensors")
        save_file(tensors, path)
        out[name] = (path, tensors)
    return out
