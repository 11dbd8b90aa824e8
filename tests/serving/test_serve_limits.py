"""Serving limits that need no server: request splitting and the shutdown deadline in the
batcher, TensorProto checks before allocation, capped decompression, the JSON depth limit,
image headers (GIF frames included, in the server and in the graph) and error messages."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import struct
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest

from inception.serving import codec, protos, rest
from inception.serving.batching import Batcher, BatchingParameters
from inception.serving.errors import ServingError, _clean
from inception.serving.rest import MAX_JSON_DEPTH, decode_json, inflate, parse_json

MB = 1024 * 1024


def gif(canvas=(10, 10), frames=((12000, 12000),), block=b"\x02\x02\x4c\x01\x00"):
    """A hand-made GIF: a canvas and frames of the given sizes, each with a tiny data block."""
    out = b"GIF89a" + struct.pack("<HHBBB", *canvas, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    for w, h in frames:
        out += b"\x21\xf9\x04\x00\x00\x00\x00\x00"  # graphic control extension
        out += b"\x2c" + struct.pack("<HHHHB", 0, 0, w, h, 0) + block
    return out + b"\x3b"


def tiny_block_gif(blocks: int) -> bytes:
    """A 10x10 GIF whose data comes in ``blocks`` one-byte sub-blocks."""
    head = b"GIF89a" + struct.pack("<HHBBB", 10, 10, 0, 0, 0)
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, 10, 10, 0) + b"\x02" + b"\x01\x00" * blocks
    return head + frame + b"\x00\x3b"


def image(fmt: str, size=(37, 53)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buf, format=fmt)
    return buf.getvalue()


def failure(call) -> ServingError:
    with pytest.raises(ServingError) as err:
        call()
    return err.value


# ------------------------------------------------------------------------------------ batcher


class Doubler:
    """Doubles its input after ``delay`` seconds, recording batch sizes; negative input fails."""

    def __init__(self, delay=0.0):
        self.delay, self.sizes = delay, []

    def __call__(self, inputs):
        x = inputs["x"]
        if np.any(x < 0):
            raise ValueError("negative input")
        self.sizes.append(len(x))
        time.sleep(self.delay)
        return {"y": x * 2}


async def _submit_all(params, model, requests, deadline_in=None):
    with ThreadPoolExecutor(params.num_batch_threads) as pool:
        batcher = Batcher(model, params, pool, asyncio.Semaphore(params.num_batch_threads))
        if deadline_in is not None:
            batcher.deadline = time.monotonic() + deadline_in
        tasks = [batcher.submit({"x": r}, len(r)) for r in requests]
        results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 60)
        await batcher.close()
    return results


def test_large_requests_are_split_into_execution_batches():
    params = BatchingParameters(
        max_batch_size=40,
        enable_large_batch_splitting=True,
        max_execution_batch_size=4,
        max_enqueued_batches=10,
    )
    model = Doubler()
    request = np.arange(37, dtype=np.float32).reshape(37, 1)
    (out,) = asyncio.run(_submit_all(params, model, [request]))
    np.testing.assert_array_equal(out["y"], request * 2)  # in order, all rows
    assert max(model.sizes) == 4 and sum(model.sizes) == 37


def test_a_failing_part_of_a_split_request_stops_the_rest():
    params = BatchingParameters(
        max_batch_size=40,
        enable_large_batch_splitting=True,
        max_execution_batch_size=4,
        max_enqueued_batches=10,
    )
    model = Doubler(delay=0.02)
    request = np.ones((40, 1), np.float32)
    request[6] = -1  # in the second part
    (error,) = asyncio.run(_submit_all(params, model, [request]))
    assert isinstance(error, ServingError) and "negative input" in error.message
    assert sum(model.sizes) < 40  # the parts after the failing one were not run


def test_more_rows_than_max_batch_size_are_refused_naming_the_limit():
    params = BatchingParameters(max_batch_size=16)
    (error,) = asyncio.run(_submit_all(params, Doubler(), [np.ones((17, 1), np.float32)]))
    assert isinstance(error, ServingError) and error.http_status == 400
    assert "17 rows" in error.message and "16" in error.message
    assert "--max-batch-size" in error.message


def test_a_full_queue_says_how_full_it_is():
    params = BatchingParameters(max_batch_size=4, max_enqueued_batches=2)
    requests = [np.ones((4, 1), np.float32) for _ in range(6)]
    results = asyncio.run(_submit_all(params, Doubler(delay=0.05), requests))
    overloaded = [r for r in results if isinstance(r, ServingError)]
    assert overloaded and overloaded[0].code == grpc.StatusCode.UNAVAILABLE
    assert "holds 8 of its 8 rows" in overloaded[0].message
    assert "needs 4" in overloaded[0].message


def test_batching_parameters_for_splitting():
    params = BatchingParameters.parse(
        "max_batch_size { value: 64 } enable_large_batch_splitting { value: true }\n"
        "max_execution_batch_size { value: 8 } max_enqueued_batches { value: 8 }"
    )
    assert params.enable_large_batch_splitting and params.execution_batch_size == 8
    assert params.max_queued_rows == 64
    with pytest.raises(ValueError, match="raise max_enqueued_batches"):
        BatchingParameters(
            max_batch_size=64, enable_large_batch_splitting=True, max_execution_batch_size=2
        )
    assert BatchingParameters(max_execution_batch_size=4).execution_batch_size == 16  # no split


def test_shutdown_deadline_runs_what_fits_and_refuses_the_rest():
    params = BatchingParameters(max_batch_size=1, max_enqueued_batches=64)
    model = Doubler(delay=0.1)
    requests = [np.full((1, 1), i, np.float32) for i in range(30)]
    started = time.monotonic()
    results = asyncio.run(_submit_all(params, model, requests, deadline_in=0.5))
    elapsed = time.monotonic() - started
    done = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, ServingError)]
    assert done and refused and len(done) + len(refused) == 30
    assert all(r.code == grpc.StatusCode.UNAVAILABLE for r in refused)
    assert "shutting down" in refused[0].message and "--grace-seconds" in refused[0].message
    assert elapsed < 20  # not the 3 s all 30 would take, with a wide margin for slow machines
    assert len(done) < 30


# ----------------------------------------------------------------------------- TensorProtos


PIXELS = codec.TensorInfo("pixels", np.dtype("float32"), (None, 75, 75, 3))
IMAGES = codec.TensorInfo("images", np.dtype(object), (None,))


def _proto(dtype: int, dims, **values):
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2

    shape = tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims]
    )
    return tensor_pb2.TensorProto(dtype=dtype, tensor_shape=shape, **values)


def _convert(proto, info, max_rows=16, max_bytes=2 * MB):
    from inception.serving.grpc_api import tensor_to_array

    return tensor_to_array(proto, info, max_rows, max_bytes)


@pytest.mark.parametrize(
    "proto, info, code, words",
    [
        (lambda: _proto(1, [1000, 75, 75, 3]), PIXELS, "INVALID_ARGUMENT", ["1000 rows", "16"]),
        (lambda: _proto(7, [2**62], string_val=[b"x"]), IMAGES, "INVALID_ARGUMENT", ["rows"]),
        (
            lambda: _proto(7, [16], string_val=[b"x" * 200_000]),
            IMAGES,
            "RESOURCE_EXHAUSTED",
            ["expands to 3200000 bytes", "--max-request-bytes"],
        ),
        (
            lambda: _proto(1, [16, 2000, 2000, 3]),
            codec.TensorInfo("pixels", np.dtype("float32"), (None, None, None, 3)),
            "RESOURCE_EXHAUSTED",
            ["declares shape [16, 2000, 2000, 3]", "768000000 bytes"],
        ),
        (
            lambda: _proto(1, [1, 75, 75, 3], float_val=[0.0] * 16876),
            PIXELS,
            "INVALID_ARGUMENT",
            ["16876 values", "holds 16875"],
        ),
        (
            lambda: _proto(1, [1, 75, 75, 3], tensor_content=b"\0" * 12),
            PIXELS,
            "INVALID_ARGUMENT",
            ["12 bytes of tensor_content", "needs 67500"],
        ),
        (lambda: _proto(21, [1]), IMAGES, "INVALID_ARGUMENT", ["DT_STRING", "got DT_VARIANT"]),
        (lambda: _proto(20, [1]), PIXELS, "INVALID_ARGUMENT", ["DT_FLOAT", "got DT_RESOURCE"]),
        (lambda: _proto(7, [-1], string_val=[b"x"]), IMAGES, "INVALID_ARGUMENT", ["negative"]),
        (lambda: _proto(1, [1, 75, 3]), PIXELS, "INVALID_ARGUMENT", ["expects shape"]),
        (lambda: _proto(7, [2], string_val=[b"a", b"b", b"c"]), IMAGES, "INVALID_ARGUMENT", ["3"]),
    ],
)
def test_tensor_protos_are_checked_before_allocation(proto, info, code, words):
    error = failure(lambda: _convert(proto(), info))
    assert error.code.name == code, error.message
    for word in words:
        assert word in error.message, error.message


def test_valid_tensor_protos_convert_as_tensorflow_does():
    import tensorflow as tf

    pixels = np.random.default_rng(0).random((2, 75, 75, 3), dtype=np.float32)
    np.testing.assert_array_equal(_convert(tf.make_tensor_proto(pixels), PIXELS), pixels)
    filled = _convert(_proto(1, [2, 75, 75, 3], float_val=[0.5]), PIXELS)  # last value repeated
    assert filled.shape == (2, 75, 75, 3) and np.all(filled == 0.5)
    strings = _convert(_proto(7, [3], string_val=[b"a", b"bc"]), IMAGES)
    assert strings.dtype == object and list(strings) == [b"a", b"bc", b"bc"]


# --------------------------------------------------------------------------- request bodies


def _zeros_gzip(size: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(MB)
    return b"".join(packer.compress(block) for _ in range(size // MB)) + packer.flush()


def test_decompression_stops_at_the_limit():
    bomb = _zeros_gzip(256 * MB)  # 256 MB of zeros in about 250 KB
    assert len(bomb) < MB
    started = time.monotonic()
    error = failure(lambda: inflate(bomb, "gzip", 2 * MB))
    assert error.http_status == 413 and "too large once inflated" in error.message
    assert "--max-request-bytes" in error.message
    assert time.monotonic() - started < 20  # it stopped early (all of it takes seconds)
    body = json.dumps({"instances": [1, 2]}).encode()
    assert inflate(gzip.compress(body) * 2, "gzip", MB) == body * 2  # two gzip members
    assert inflate(zlib.compress(body), "deflate", MB) == body
    assert "cut short" in failure(lambda: inflate(gzip.compress(body)[:-9], "gzip", MB)).message
    assert "not valid gzip" in failure(lambda: inflate(b"plain text", "gzip", MB)).message


def test_json_depth_is_limited_before_parsing():
    deep = b'{"instances": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"
    error = failure(lambda: decode_json(deep, "identity", 10 * MB))
    assert error.http_status == 400
    assert "10001 levels deep" in error.message and str(MAX_JSON_DEPTH) in error.message
    quoted = {"instances": ["[" * 500 + '{"\\' * 500], "x": [[[1]]], "y": list(range(99))}
    assert parse_json(json.dumps(quoted).encode()) == quoted  # brackets in strings do not count
    assert "JSON Parse error" in failure(lambda: decode_json(b"\xff{", "identity", MB)).message
    for broken in (b"[" + b"[]," * 40 + b"[]", b'{"a": "' + b"[" * 70, b"]" * 70):
        assert "JSON Parse error" in failure(lambda b=broken: parse_json(b)).message


def test_large_json_is_parsed_a_chunk_at_a_time(monkeypatch):
    """No single json.loads call (which holds the GIL) sees more than JSON_CHUNK bytes, and
    the result is what json.loads gives for the whole text."""
    rng = np.random.default_rng(0)
    doc = {
        "signature_name": "predict_pixels",
        "instances": rng.random((4, 60, 60, 3)).round(3).tolist(),
        "extra": {"strings": ["[{,:}]" * 50] * 200, "big": {"x": list(range(60_000))}},
    }
    body = json.dumps(doc).encode()
    seen = []
    loads = json.loads

    def recording(text, *args, **kwargs):
        seen.append(len(text))
        return loads(text, *args, **kwargs)

    monkeypatch.setattr(rest.json, "loads", recording)
    monkeypatch.setattr(rest, "JSON_CHUNK", 16 * 1024)
    assert len(body) > 40 * 16 * 1024
    assert parse_json(body) == loads(body)
    assert len(seen) > 40 and max(seen) <= 16 * 1024 + 2
    # For predict bodies, runs of numeric rows become arrays as they are parsed: same values.
    parsed = parse_json(body, arrays=True)
    assert any(isinstance(row, np.ndarray) for row in parsed["instances"][0])
    info = codec.TensorInfo("pixels", np.dtype("float32"), (None, 60, 60, 3))
    np.testing.assert_array_equal(
        codec.to_array(parsed["instances"], info), np.asarray(doc["instances"], np.float32)
    )
    assert parsed["extra"] == doc["extra"]


def test_json_strings_become_object_arrays_without_padding():
    big, small = "A" * 4000, "b"
    arr = codec.to_array([big, small], codec.TensorInfo("t", np.dtype(object), (None,)))
    assert arr.dtype == object and arr.nbytes == 16  # two references, not 2 x 4000 bytes
    error = failure(
        lambda: codec.to_array([["a"], "b"], codec.TensorInfo("t", np.dtype(object), None))
    )
    assert "rectangular" in error.message


def test_classify_json_numbers_out_of_int64_range():
    error = failure(lambda: protos.examples_from_json({"examples": [{"n": 10**30}]}))
    assert error.http_status == 400 and "'n'" in error.message and "int64" in error.message
    error = failure(
        lambda: protos.examples_from_json(
            {"examples": [{}] * 10, "context": {"image/encoded": {"b64": "A" * 4000}}},
            max_bytes=20_000,
        )
    )
    assert error.http_status == 413 and "copied into each of the 10 examples" in error.message


# ----------------------------------------------------------------------------- image headers


def test_gif_frames_larger_than_the_canvas_are_counted():
    header = codec.inspect_image(gif())
    assert header.pixels == 144_000_000 and "GIF frame 1 is 12000 x 12000" in header.detail
    error = failure(lambda: codec.check_image(gif(), "image 0", 64_000_000, True))
    assert "too large" in error.message and "GIF frame 1 is 12000 x 12000" in error.message
    assert "--max-image-pixels" in error.message
    many = gif((1000, 1000), [(1000, 1000)] * 300)  # 300 frames buffered: 3e8 pixels
    assert codec.declared_pixels(many) == 75_000_000
    assert (
        "300 GIF frames" in failure(lambda: codec.check_image(many, "x", 64_000_000, True)).message
    )
    assert codec.declared_pixels(tiny_block_gif(20_000)) == codec.UNBOUNDED
    for fmt in ("GIF", "PNG", "JPEG", "BMP"):
        assert codec.declared_pixels(image(fmt)) == 37 * 53, fmt


def test_broken_and_foreign_images_are_named():
    jpeg = image("JPEG")
    error = failure(lambda: codec.check_image(b"\x89PNG\r\n\x1a\n" + jpeg, "image 0", 10**8, True))
    assert "not a valid PNG" in error.message and "IHDR" in error.message
    error = failure(lambda: codec.check_image(b"just some text", "image 3", 10**8, True))
    assert "image 3 is not a JPEG, PNG, GIF or BMP image" in error.message
    assert "WEBP" in failure(lambda: codec.check_image(image("WEBP"), "x", 10**8, True)).message
    codec.check_image(b"just some text", "a string input", 10**8, False)  # not an image input


def test_images_sent_to_the_classify_signature_through_predict():
    values = np.array([image("JPEG")], dtype=object)
    error = failure(lambda: codec.check_examples(values, "inputs", "classify", 10**8))
    assert "is a JPEG image" in error.message and "serialized tf.Example" in error.message
    assert ":classify" in error.message
    values = np.array([b"\x0a\xff\xff\xff\xff\x0f"], dtype=object)
    error = failure(lambda: codec.check_examples(values, "inputs", "classify", 10**8))
    assert "is not a serialized tf.Example" in error.message


def test_graph_counts_gif_frames_and_caps_the_walk():
    import tensorflow as tf

    from inception.serving import graph

    pixels = tf.function(graph.declared_pixels)
    assert int(pixels(tf.constant(gif()))) == 144_000_000
    many = gif((1000, 1000), [(1000, 1000)] * 300)
    assert int(pixels(tf.constant(many))) == codec.declared_pixels(many) == 75_000_000
    assert int(pixels(tf.constant(tiny_block_gif(20_000)))) == 2**62
    assert int(pixels(tf.constant(b"\x89PNG\r\n\x1a\n" + image("JPEG")))) == 0  # no IHDR
    from PIL import Image

    frames = [Image.new("RGB", (120, 90), (i * 40, 0, 0)) for i in range(4)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    assert int(pixels(tf.constant(buf.getvalue()))) == 120 * 90
    decode = tf.function(lambda data: graph.decode(data, 64_000_000))
    assert tuple(decode(tf.constant(buf.getvalue())).shape) == (90, 120, 3)
    with pytest.raises(tf.errors.InvalidArgumentError) as err:
        decode(tf.constant(gif()))
    assert _clean(str(err.value)).startswith("image too large: it declares more than 64000000")


def test_tensorflow_messages_keep_the_human_part():
    raw = (
        "{{function_node __inference_signature_wrapper_1}} assertion failed: [unsupported or "
        "broken image: send JPEG, PNG, GIF or BMP bytes.  ] [Condition x > 0 did not hold "
        "element-wise:] [x (map/while/cond/Identity:0) = ] [0]\n\t [[{{node map/Assert}}]] "
        "[Op:__inference_signature_wrapper_1]"
    )
    assert _clean(raw) == "unsupported or broken image: send JPEG, PNG, GIF or BMP bytes."


def test_memory_is_handed_back_after_large_requests_and_when_quiet(monkeypatch):
    from inception.serving import server

    now = [1000.0]
    monkeypatch.setattr(server.time, "monotonic", lambda: now[0])
    trim = server._MemoryTrim()
    assert trim._trim is not None  # glibc's malloc_trim was found
    assert not trim.due()  # nothing allocated yet
    trim.note()
    assert not trim.due()  # batches are running: their memory is about to be reused
    now[0] += 1.5
    assert trim.due()
    trim()
    trim.note(large=True)
    assert not trim.due()  # at most once a second
    now[0] += 1.0
    trim.note()  # busy, but a large request finished: trim anyway
    assert trim.due()


def test_cli_splitting_flags():
    from inception.cli import serve as cli

    args = cli.parse_serve_args(
        ["--model-base-path", "m", "--enable-large-batch-splitting", "--max-batch-size", "64"]
        + ["--max-execution-batch-size", "8"]
    )
    params = cli.batching_parameters(args)
    assert params.enable_large_batch_splitting and params.max_batch_size == 64
    assert params.execution_batch_size == 8 and params.max_queued_rows == 128
    lone = cli.parse_serve_args(["--model-base-path", "m", "--max-execution-batch-size", "8"])
    with pytest.raises(ValueError, match="add --enable-large-batch-splitting"):
        cli.batching_parameters(lone)
