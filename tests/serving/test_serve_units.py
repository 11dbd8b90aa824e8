"""Serving parts that need no model: the batcher, TF-Serving config files, the JSON codec, and
the rule that the server path does not import the model-building or training code."""

from __future__ import annotations

import ast
import asyncio
import base64
import gc
import io
import json
import threading
import time
import weakref

import grpc
import ml_dtypes
import numpy as np
import pytest
from helpers import ROOT

from inception.serving import codec
from inception.serving.batching import Batcher, BatchingParameters
from inception.serving.errors import ServingError, invalid
from inception.serving.repository import parse_model_config


class FakeModel:
    """Doubles its input, slowly, recording the batch sizes it was called with."""

    def __init__(self, delay=0.02):
        self.delay, self.sizes, self.lock = delay, [], threading.Lock()

    def __call__(self, inputs):
        x = inputs["x"]
        if np.any(x < 0):
            raise ValueError("negative input")
        with self.lock:
            self.sizes.append(len(x))
        time.sleep(self.delay)
        return {"y": x * 2}


async def _gather(params, model, requests):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(params.num_batch_threads) as pool:
        batcher = Batcher(
            model, params, pool, asyncio.Semaphore(params.num_batch_threads), name="fake"
        )
        results = await asyncio.wait_for(
            asyncio.gather(
                *(batcher.submit({"x": r}, len(r)) for r in requests), return_exceptions=True
            ),
            30,
        )
        await batcher.close()
    return results


def test_concurrent_requests_are_merged_and_split_back():
    model = FakeModel()
    requests = [np.full((1 + i % 3, 2), i, np.float32) for i in range(30)]
    results = asyncio.run(_gather(BatchingParameters(max_batch_size=8), model, requests))
    for r, out in zip(requests, results, strict=True):
        np.testing.assert_array_equal(out["y"], r * 2)
    assert max(model.sizes) > 1 and max(model.sizes) <= 8
    assert sum(model.sizes) == sum(len(r) for r in requests)


def test_a_bad_request_fails_alone():
    model = FakeModel(delay=0.01)
    requests = [np.ones((1, 2), np.float32) * (-1 if i == 3 else i) for i in range(12)]
    results = asyncio.run(_gather(BatchingParameters(max_batch_size=16), model, requests))
    assert isinstance(results[3], ServingError) and "negative input" in results[3].message
    assert results[3].code == grpc.StatusCode.INVALID_ARGUMENT
    for i, out in enumerate(results):
        if i != 3:
            np.testing.assert_array_equal(out["y"], requests[i] * 2)


def test_full_queue_answers_overloaded():
    model = FakeModel(delay=0.05)
    params = BatchingParameters(max_batch_size=2, max_enqueued_batches=2)
    requests = [np.ones((1, 1), np.float32) * i for i in range(40)]
    results = asyncio.run(_gather(params, model, requests))
    overloaded = [r for r in results if isinstance(r, ServingError)]
    assert overloaded and all(r.code == grpc.StatusCode.UNAVAILABLE for r in overloaded)
    assert "overloaded" in overloaded[0].message
    served = [r for r in results if not isinstance(r, ServingError)]
    assert len(served) >= 4  # the queue (4 rows) and the running batch were answered


def test_batches_are_padded_to_allowed_sizes():
    model = FakeModel(delay=0.0)
    params = BatchingParameters(max_batch_size=4, allowed_batch_sizes=[2, 4])
    out = asyncio.run(_gather(params, model, [np.ones((3, 1), np.float32)]))
    assert model.sizes == [4] and out[0]["y"].shape == (3, 1)


def test_batch_timeout_waits_for_more_rows():
    model = FakeModel(delay=0.0)
    params = BatchingParameters(max_batch_size=4, batch_timeout_micros=2_000_000)  # >> 50 ms

    async def staggered():
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1) as pool:
            b = Batcher(model, params, pool, asyncio.Semaphore(1))
            first = asyncio.ensure_future(b.submit({"x": np.ones((1, 1))}, 1))
            await asyncio.sleep(0.05)
            second = asyncio.ensure_future(b.submit({"x": np.ones((1, 1))}, 1))
            await asyncio.gather(first, second)
            await b.close()

    asyncio.run(staggered())
    assert model.sizes == [2]


def test_batching_parameters_file():
    params = BatchingParameters.from_file(ROOT / "serve" / "batching.config")
    assert params.max_batch_size == 16 and params.num_batch_threads == 2
    assert params.batch_timeout_micros == 0 and params.max_enqueued_batches == 16
    assert params.allowed_batch_sizes == [1, 2, 4, 8, 16]
    with pytest.raises(ValueError, match="end with the execution batch size"):
        BatchingParameters.parse("max_batch_size { value: 8 } allowed_batch_sizes: 4")
    with pytest.raises(ValueError, match="at least 1"):
        BatchingParameters.parse("max_batch_size { value: 0 }")


def test_model_config_file():
    (spec,) = parse_model_config((ROOT / "serve" / "models.config").read_text())
    assert (spec.name, spec.base_path, spec.policy) == ("inception", "/models/inception", "all")
    text = """model_config_list { config { name: "a" base_path: "rel/a"
              model_version_policy { specific { versions: 2 versions: 3 } }
              version_labels { key: "stable" value: 2 } } }"""
    (spec,) = parse_model_config(text, "/base")
    assert spec.base_path == "/base/rel/a" and spec.versions == (2, 3)
    assert spec.labels == {"stable": 2}
    with pytest.raises(ValueError, match="invalid model config"):
        parse_model_config("model_config_list { oops }")


def test_a_container_base_path_is_named_with_the_fix(capsys):
    """serve/models.config names the container's /models/inception: outside the container
    `inception serve --model-config-file` says which path and how to change it."""
    from inception.cli import main

    config = str(ROOT / "serve" / "models.config")
    assert main(["serve", "--model-config-file", config]) != 0
    err = capsys.readouterr().err.strip()
    assert f"model 'inception' of {config}: base_path /models/inception does not exist" in err
    assert "--model-base-path" not in err and "read from the config file's folder" in err
    assert "Traceback" not in err


def test_compose_file_runs_the_official_image_with_both_configs():
    text = (ROOT / "serve" / "compose.yaml").read_text()
    assert "image: tensorflow/serving:" in text
    for flag in (
        "--model_config_file=/config/models.config",
        "--enable_batching=true",
        "--batching_parameters_file=/config/batching.config",
    ):
        assert flag in text
    assert "8500:8500" in text and "8501:8501" in text


STRING = codec.TensorInfo("images", np.dtype(object), (None,))
PIXELS = codec.TensorInfo("pixels", np.dtype("float32"), (None, 2, 2, 3))


def test_row_and_columnar_formats():
    b64 = base64.b64encode(b"\x00\xffdata").decode()
    arrays, rows, columnar = codec.parse_predict(
        {"instances": [{"b64": b64}, "text"]}, {"images": STRING}
    )
    assert rows == 2 and not columnar and list(arrays["images"]) == [b"\x00\xffdata", b"text"]
    arrays, rows, columnar = codec.parse_predict(
        {"inputs": {"pixels": np.zeros((3, 2, 2, 3)).tolist()}}, {"pixels": PIXELS}
    )
    assert rows == 3 and columnar and arrays["pixels"].dtype == np.float32
    out = {
        "classes": np.array([[b"cat"], [b"\xff"]], dtype=object),
        "scores": np.array([[0.5], [0.25]], np.float32),
    }
    rows_json = json.loads(codec.predict_body(out, columnar=False))["predictions"]
    assert rows_json[0] == {"classes": ["cat"], "scores": [0.5]}
    assert rows_json[1]["classes"] == [{"b64": base64.b64encode(b"\xff").decode()}]
    assert json.loads(codec.predict_body({"scores": out["scores"]}, True)) == {
        "outputs": [[0.5], [0.25]]
    }


def test_answers_write_floats_as_tf_serving_does():
    """Shortest digits that give back the same float32 (TF Serving writes 0.2, not
    0.20000000298023224), whole numbers with ".0", NaN and Infinity bare."""
    rng = np.random.default_rng(0)
    probabilities = rng.random((2, 1000)).astype(np.float32)
    out = {"probabilities": probabilities, "class_ids": np.array([[3], [7]], np.int64)}
    text = codec.predict_body(out, columnar=False).decode()
    rows = json.loads(text)["predictions"]
    np.testing.assert_array_equal(
        np.array([r["probabilities"] for r in rows], np.float32), probabilities
    )
    assert [r["class_ids"] for r in rows] == [[3], [7]]
    scores = np.array([[0.2, 1.0, 3e-5]], np.float32)
    assert codec.predict_body({"scores": scores}, True) == b'{"outputs":[[0.2,1.0,0.00003]]}'
    odd = np.array([[np.nan, np.inf, 0.5]], np.float32)
    assert codec.predict_body({"scores": odd}, True) == b'{"outputs":[[NaN,Infinity,0.5]]}'


@pytest.mark.parametrize(
    "body, message",
    [
        ({"instances": [{"b64": "@@not base64@@"}]}, "invalid base64"),
        ({"instances": []}, "non-empty"),
        ({"instances": [1], "inputs": [1]}, "exactly one"),
        ({"instances": [[1, 2, 3]]}, "expects shape"),
        ({"inputs": {"pixels": [[[["a", "b", "c"]] * 2] * 2]}}, "numbers, got text"),
        ({"inputs": {"other": [1]}}, "expects ['pixels']"),
        ({"inputs": [[[[1, 2, 3], [1, 2]]] * 2]}, "cannot hold"),
    ],
)
def test_bad_json_bodies(body, message):
    with pytest.raises(ServingError, match=None) as err:
        codec.parse_predict(
            body, {"pixels": PIXELS} if "b64" not in str(body) else {"images": STRING}
        )
    assert message in err.value.message and err.value.http_status == 400


def test_image_limit_reads_only_the_header():
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    png = (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", 13)
        + b"IHDR"
        + ihdr
        + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    )
    with pytest.raises(ServingError, match="too large"):
        codec.check_images(np.array([png], dtype=object), "images", 64_000_000)
    from PIL import Image

    for fmt in ("JPEG", "PNG", "GIF", "BMP", "WEBP"):
        buf = io.BytesIO()
        Image.new("RGB", (37, 53)).save(buf, format=fmt)
        assert codec.declared_pixels(buf.getvalue()) == 37 * 53, fmt
    codec.check_images(np.array([b"not an image, left to the graph"], dtype=object), "x", 10)


def test_errors_map_to_http_statuses():
    assert invalid("x").http_status == 400
    assert ServingError(grpc.StatusCode.NOT_FOUND, "x").http_status == 404
    assert ServingError(grpc.StatusCode.UNAVAILABLE, "x").http_status == 503


SERVER_MODULES = [
    "../cli/serve",  # the `inception serve` command (inception/cli/serve.py)
    "server",
    "rest",
    "grpc_api",
    "repository",
    "batching",
    "codec",
    "protos",
    "metrics",
    "errors",
]


EXPORT_FUNCTIONS = {"export_main", "parse_export_args"}  # cli.py's export command may


@pytest.mark.parametrize("module", SERVER_MODULES)
def test_server_path_does_not_import_model_code(module):
    tree = ast.parse((ROOT / "inception" / "serving" / f"{module}.py").read_text())
    for node in list(tree.body):
        if isinstance(node, ast.FunctionDef) and node.name in EXPORT_FUNCTIONS:
            tree.body.remove(node)
    imported = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            imported.append(("." * node.level) + (node.module or ""))
    for name in imported:
        assert not name.startswith(
            (
                "keras",
                "inception.models",
                "inception.training",
                "inception.evaluation",
                "..models",
                "..training",
                ".export",
                ".graph",
            )
        ), f"{module} imports {name}"


@pytest.mark.parametrize(
    "array",
    [
        np.linspace(0, 1, 3000, dtype=np.float32).reshape(3, 1000),
        np.arange(6, dtype=np.int64).reshape(2, 3),
        np.array([[b"n01440764", b"tench"]], dtype=object),
        np.zeros((0, 5), np.float32),
        np.float32(3.5),
        np.array([True, False]),
        np.array([0.5, 2.0], np.float16),
        np.array([1.5, -2.0], ml_dtypes.bfloat16),
    ],
    ids=str,
)
def test_answer_tensors_are_the_messages_tensorflow_writes(array):
    import tensorflow as tf

    from inception.serving.protos import tensor_proto

    mine, theirs = tensor_proto(array), tf.make_tensor_proto(array)
    assert mine.dtype == theirs.dtype
    assert mine.tensor_shape == theirs.tensor_shape
    np.testing.assert_array_equal(tf.make_ndarray(mine), tf.make_ndarray(theirs))


def test_settling_the_heap_frees_cycles_frozen_at_an_earlier_load():
    """``settle_heap`` runs after versions load or unload: what an unloaded version left in
    reference cycles was frozen when it loaded, and must be collected now."""
    from inception.serving.server import settle_heap

    class Node:
        pass

    node = Node()
    node.me = node  # a cycle: only the collector frees it
    gone = weakref.ref(node)
    gc.freeze()  # as after the version's load
    try:
        del node
        gc.collect()
        assert gone() is not None  # frozen: out of the collector's view
        settle_heap()
        assert gone() is None
        assert gc.get_freeze_count() > 0  # what survives is frozen again
    finally:
        gc.unfreeze()
