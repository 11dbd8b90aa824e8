"""TensorFlow Serving's REST JSON format <-> NumPy, the per-request row limit, and the checks
of encoded images from their headers (pixels the decoder would allocate, GIF frames included;
broken or foreign formats) before anything is decoded.

Predict requests come in the row format (``{"instances": [...]}``, one entry per batch row, an
object per row when the signature has several inputs) or the columnar format
(``{"inputs": {...}}`` or a bare value for a one-input signature). Bytes are written
``{"b64": "..."}``. Answers mirror the request: ``{"predictions": [...]}`` or
``{"outputs": ...}``; string outputs come back as text, or ``{"b64": ...}`` when they are not
UTF-8 or the output's name ends in ``_bytes`` (TF-Serving's rule).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import warnings
from dataclasses import dataclass

import numpy as np

from .errors import invalid
from .limits import DEFAULT_MAX_JPEG_SCANS


@dataclass(frozen=True)
class TensorInfo:
    """One input or output of a signature: its dtype and shape (``None`` = any size)."""

    key: str
    dtype: np.dtype
    shape: tuple | None  # None: unknown rank

    @property
    def is_string(self) -> bool:
        return self.dtype == np.dtype(object)

    def describe(self) -> str:
        dims = (
            "?"
            if self.shape is None
            else "[" + ", ".join("-1" if d is None else str(d) for d in self.shape) + "]"
        )
        kind = "string" if self.is_string else self.dtype.name
        return f"{kind}{dims}"


def b64_bytes(value: dict) -> bytes:
    if set(value) != {"b64"} or not isinstance(value["b64"], str):
        raise invalid(f'a bytes value must be {{"b64": "<base64 text>"}}, got {str(value)[:80]}')
    try:
        return base64.b64decode(value["b64"], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise invalid(f"invalid base64 in a b64 value: {exc}") from None


def _one_string(value) -> bytes:
    if isinstance(value, dict):
        return b64_bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    kind = "numbers" if isinstance(value, np.ndarray) else type(value).__name__
    raise invalid(f'expected a string or {{"b64": ...}} value, got {kind}')


def _strings(value, key: str) -> np.ndarray:
    """Nested JSON lists of strings -> an object array of bytes, checked to be rectangular.

    (``np.array`` of bytes would make a fixed-width array, as wide as the longest string for
    every element.)"""
    shape, level = [], value
    while isinstance(level, list):
        shape.append(len(level))
        level = level[0] if level else None
    rows = [value]
    for depth, size in enumerate(shape):
        below = []
        for row in rows:
            if not isinstance(row, list) or len(row) != size:
                raise invalid(
                    f"input {key!r}: the lists at depth {depth} are not all {size} long "
                    "(a tensor must be rectangular)."
                )
            below.extend(row)
        rows = below
    flat = [_one_string(v) for v in rows]
    return np.fromiter(flat, dtype=object, count=len(flat)).reshape(shape)


def to_array(value, info: TensorInfo) -> np.ndarray:
    """A JSON value -> an array of ``info``'s dtype, its shape checked against the signature
    (from the nesting of the lists, before converting anything)."""
    if info.is_string:
        arr = _strings(value, info.key)
        check_shape(arr, info)
        return arr
    dims, leaf = [], value
    while isinstance(leaf, list):
        dims.append(len(leaf))
        leaf = leaf[0] if leaf else None
    if isinstance(leaf, np.ndarray):  # numeric rows already converted while parsing
        dims.extend(leaf.shape)
    if isinstance(leaf, (str, dict)):
        raise invalid(f"input {info.key!r} expects {info.describe()} numbers, got text")
    check_dims(dims, info)
    try:
        arr = np.asarray(value, dtype=info.dtype)
    except (ValueError, TypeError, OverflowError) as exc:
        text = isinstance(exc, TypeError) or "could not convert string" in str(exc)
        raise invalid(
            f"input {info.key!r} expects {info.describe()} numbers, got text: {exc}"
            if text
            else f"input {info.key!r} ({info.describe()}) cannot hold the given value: {exc}"
        ) from None
    check_shape(arr, info)
    return arr


def check_shape(arr: np.ndarray, info: TensorInfo) -> None:
    check_dims(arr.shape, info)


def check_dims(dims, info: TensorInfo) -> None:
    """Rank and fixed sizes of ``dims`` against the signature (before anything is allocated)."""
    if info.shape is None:
        return
    if len(dims) != len(info.shape) or any(
        want is not None and want != got for want, got in zip(info.shape, dims, strict=True)
    ):
        raise invalid(
            f"input {info.key!r} expects shape {info.describe()}, got [{', '.join(map(str, dims))}]"
        )


def check_rows(rows: int, max_rows: int, what: str = "rows") -> None:
    """TF Serving's per-request limit (``max_batch_size``; larger requests are split into
    batches only up to it)."""
    if rows > max_rows:
        raise invalid(
            f"the request has {rows} {what}; the most one request may carry is {max_rows} "
            "(max_batch_size: --max-batch-size or the batching parameters file); send several "
            "smaller requests."
        )


def parse_predict(body, inputs: dict[str, TensorInfo], max_rows: int = 2**31):
    """A REST predict body -> ``(arrays by input name, rows, columnar)``; more than
    ``max_rows`` rows are refused before anything is converted."""
    if not isinstance(body, dict):
        raise invalid("the request body must be a JSON object with 'instances' or 'inputs'.")
    has_rows, has_cols = "instances" in body, "inputs" in body
    if has_rows == has_cols:
        raise invalid(
            "the request must have exactly one of 'instances' (row format) or "
            "'inputs' (columnar format)."
        )
    if has_rows:
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise invalid("'instances' must be a non-empty list, one entry per example.")
        check_rows(len(instances), max_rows, "instances")
        named = all(isinstance(r, dict) and "b64" not in r for r in instances)
        if named:
            columns = {}
            for i, row in enumerate(instances):
                if set(row) != set(inputs):
                    raise invalid(
                        f"instance {i} has inputs {sorted(row)}; the signature expects "
                        f"{sorted(inputs)}."
                    )
                for k, v in row.items():
                    columns.setdefault(k, []).append(v)
        elif len(inputs) == 1:
            columns = {next(iter(inputs)): instances}
        else:
            raise invalid(
                f"the signature has inputs {sorted(inputs)}: each instance must be an "
                "object keyed by input name."
            )
        arrays = {k: to_array(v, inputs[k]) for k, v in columns.items()}
        return arrays, len(instances), False
    values = body["inputs"]
    if isinstance(values, dict) and "b64" not in values:
        if set(values) != set(inputs):
            raise invalid(
                f"'inputs' names {sorted(values)}; the signature expects {sorted(inputs)}."
            )
    elif len(inputs) == 1:
        values = {next(iter(inputs)): values}
    else:
        raise invalid(
            f"the signature has inputs {sorted(inputs)}: 'inputs' must be an object "
            "keyed by input name."
        )
    for v in values.values():
        if isinstance(v, list):
            check_rows(len(v), max_rows)
    arrays = {k: to_array(v, inputs[k]) for k, v in values.items()}
    rows = {a.shape[0] if a.ndim else None for a in arrays.values()}
    if len(rows) != 1 or None in rows or 0 in rows:
        raise invalid("every input must have the same, non-zero batch size (first dimension).")
    return arrays, rows.pop(), True


def _native(arr: np.ndarray) -> bool:
    """Whether orjson writes ``arr`` itself as TF Serving would: booleans, integers, and
    finite IEEE floats (shortest round-trip digits; NaN and Infinity, which TF Serving writes
    bare, are left to the standard encoder)."""
    kind = arr.dtype.kind
    if kind in "OSUbiu":
        return True
    return kind == "f" and arr.dtype.itemsize in (2, 4, 8) and bool(np.isfinite(arr).all())


def _jsonable(arr: np.ndarray, name: str, native: bool = False):
    if arr.dtype == object or arr.dtype.kind == "S":
        as_b64 = name.endswith("_bytes")

        def one(v):
            if isinstance(v, list):
                return [one(x) for x in v]
            if isinstance(v, str):
                return v
            if not as_b64:
                try:
                    return v.decode("utf-8")
                except UnicodeDecodeError:
                    pass
            return {"b64": base64.b64encode(v).decode("ascii")}

        return one(arr.tolist())
    return np.ascontiguousarray(arr) if native else arr.tolist()


def predict_body(outputs: dict[str, np.ndarray], columnar: bool) -> bytes:
    """The JSON answer to a predict request (``predict_response``), written by orjson when
    it writes every output as TF Serving does (it writes 1000 float32 probabilities in about
    20 us, the standard encoder in 500 us), else by the standard encoder."""
    if all(_native(v) for v in outputs.values()):
        import orjson  # the serve extra's

        body = predict_response(outputs, columnar, native=True)
        return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    return json.dumps(predict_response(outputs, columnar), separators=(",", ":")).encode()


def predict_response(outputs: dict[str, np.ndarray], columnar: bool, native: bool = False) -> dict:
    """Outputs -> ``{"outputs": ...}`` (columnar) or ``{"predictions": [...]}`` (rows);
    numbers as lists, or as NumPy arrays for orjson (``native``)."""
    values = {k: _jsonable(v, k, native) for k, v in outputs.items()}
    if columnar:
        return {"outputs": next(iter(values.values())) if len(values) == 1 else values}
    if len(values) == 1:
        return {"predictions": next(iter(values.values()))}
    names = list(values)
    return {
        "predictions": [
            dict(zip(names, row, strict=True)) for row in zip(*values.values(), strict=True)
        ]
    }


# ----------------------------------------------------------------------------- image limits

IMAGE_FORMATS = ("JPEG", "PNG", "GIF", "BMP")  # what the exported graph decodes
IMAGE_KEYS = ("images", "image/encoded")  # inputs / tf.Example features of `inception export`
GIF_MAX_STEPS = 10_000  # + 1 per KiB: blocks and short sub-blocks a GIF may have
UNBOUNDED = 2**62


@dataclass(frozen=True)
class Layout:
    """Where a format's header declares the image size: the one description followed by both
    header readers, ``inspect_image`` here and ``graph.declared_pixels`` in the SavedModel.

    ``magic`` opens the file, which has at least ``min_length`` bytes (and ``tag`` at its
    offset); width and height are ``(offset, bytes)`` integers in ``byteorder``, ``signed`` ones
    counting by their magnitude (a BMP's negative height means top-down rows).
    """

    magic: bytes
    min_length: int
    width: tuple[int, int]
    height: tuple[int, int]
    byteorder: str
    signed: bool = False
    tag: tuple[int, bytes] | None = None

    def complete(self, data: bytes) -> bool:
        """Whether ``data``, which starts with ``magic``, holds the whole size header."""
        if len(data) < self.min_length:
            return False
        return self.tag is None or data[self.tag[0] : self.tag[0] + len(self.tag[1])] == self.tag[1]

    def size(self, data: bytes) -> tuple[int, int]:
        """``(width, height)`` declared by a complete header."""

        def read(offset, count):
            value = data[offset : offset + count]
            return abs(int.from_bytes(value, self.byteorder, signed=self.signed))

        return read(*self.width), read(*self.height)


PNG = Layout(b"\x89PNG", 24, (16, 4), (20, 4), "big", tag=(12, b"IHDR"))
GIF = Layout(b"GIF", 13, (6, 2), (8, 2), "little")
BMP = Layout(b"BM", 26, (18, 4), (22, 4), "little", signed=True)


@dataclass(frozen=True)
class Header:
    """What an encoded image's headers say: its format, the pixels the decoder allocates, and
    that count in words (``pixels`` is None when the header is broken)."""

    format: str
    pixels: int | None
    detail: str


def _jpeg(data: bytes) -> Header | None:
    i, steps = 2, 0
    while i + 9 < len(data) and steps < 10_000:
        steps += 1
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD9)):  # standalone markers
            i += 2
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
            h, w = int.from_bytes(data[i + 5 : i + 7], "big"), int.from_bytes(data[i + 7 : i + 9])
            return Header("JPEG", w * h, f"its header declares {w} x {h} pixels")
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return None  # no frame header found quickly: the graph's decoder reports it


def _gif(data: bytes) -> Header:
    n = len(data)
    canvas_w, canvas_h = GIF.size(data)
    pos = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    frames, widest, tallest, area, steps = 0, 0, 0, 0, 0
    big = None  # the first frame over the canvas size, for the message
    budget = GIF_MAX_STEPS + n // 1024
    while pos < n:
        kind = data[pos]
        if kind == 0x2C and pos + 10 <= n:  # image descriptor
            w, h = (
                int.from_bytes(data[pos + 5 : pos + 7], "little"),
                int.from_bytes(data[pos + 7 : pos + 9], "little"),
            )
            frames, area = frames + 1, area + w * h
            widest, tallest = max(widest, w), max(tallest, h)
            if big is None and w * h > canvas_w * canvas_h:
                big = (frames, w, h)
            flags = data[pos + 9]
            pos += 11 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
        elif kind == 0x21:  # extension
            pos += 2
        else:  # trailer, or a broken file (the decoder reports it)
            break
        while pos < n:  # data sub-blocks
            size = data[pos]
            pos += 1 + size
            if size == 0:
                break
            if size != 255:
                steps += 1
            if steps > budget:
                return Header(
                    "GIF", UNBOUNDED, f"it has more than {budget} GIF data blocks; re-encode it"
                )
    pixels = max(canvas_w * canvas_h, widest * tallest, (area + 3) // 4)
    if pixels == canvas_w * canvas_h:
        detail = f"its header declares {canvas_w} x {canvas_h} pixels"
    elif pixels == widest * tallest:
        where = f"GIF frame {big[0]} is {big[1]} x {big[2]} pixels" if big else "GIF frames"
        detail = f"{where} (the decoder allocates {widest} x {tallest} pixels)"
    else:
        detail = (
            f"its {frames} GIF frames hold {area} pixels together (the decoder buffers all of "
            "them; counted as a quarter)"
        )
    return Header("GIF", pixels, detail)


def inspect_image(data: bytes) -> Header | None:
    """The header of a JPEG, PNG, GIF or BMP (other formats through Pillow's header parser),
    read without decoding anything; None when the bytes are not an image Pillow knows."""
    if data[:2] == b"\xff\xd8":
        return _jpeg(data)
    if data.startswith(PNG.magic):
        if not PNG.complete(data):
            return Header("PNG", None, "is not a valid PNG: its IHDR header is missing")
        w, h = PNG.size(data)
        return Header("PNG", w * h, f"its header declares {w} x {h} pixels")
    if data.startswith(GIF.magic):
        if not GIF.complete(data):
            return Header("GIF", None, "is not a valid GIF: its header is cut short")
        return _gif(data)
    if data.startswith(BMP.magic) and BMP.complete(data):
        w, h = BMP.size(data)
        return Header("BMP", w * h, f"its header declares {w} x {h} pixels")
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as image:
                w, h = image.size
                return Header(image.format, w * h, f"its header declares {w} x {h} pixels")
    except Image.DecompressionBombError:
        return Header("image", UNBOUNDED, "its header declares too many pixels")
    except Exception:  # not an image, or a broken one
        return None


def declared_pixels(data: bytes) -> int | None:
    """Pixels the decoder would allocate for ``data`` (see ``inspect_image``), or None."""
    header = inspect_image(data)
    return None if header is None else header.pixels


SCAN_CHUNK = 1 << 20


def jpeg_scans(data: bytes) -> int:
    """Scans of a JPEG: its start-of-scan markers (``FF DA``; entropy-coded data never holds
    one, as every ``FF`` there is followed by ``00`` or a restart marker). A progressive JPEG's
    decoder passes over every pixel once per scan, so this multiplies its work; an embedded
    thumbnail's scans are counted too (a few). Counted with NumPy (a third of the time of
    ``bytes.count`` on a 16 KB image, a seventh on 600 KB: this runs on every image served),
    ``SCAN_CHUNK`` bytes at a time, so that its masks take at most 3 MiB whatever the size."""
    codes, scans = np.frombuffer(data, np.uint8), 0
    for start in range(0, len(codes) - 1, SCAN_CHUNK):  # pairs that start in the chunk
        chunk = codes[start : start + SCAN_CHUNK + 1]
        scans += int(np.count_nonzero((chunk[:-1] == 0xFF) & (chunk[1:] == 0xDA)))
    return scans


def check_image(
    data, where: str, max_pixels: int, required: bool, max_scans: int = DEFAULT_MAX_JPEG_SCANS
) -> None:
    """Refuses an encoded image whose headers declare more than ``max_pixels`` pixels (or a
    broken header), or a JPEG of more than ``max_scans`` scans; with ``required``, also
    anything but JPEG, PNG, GIF and BMP bytes."""
    header = inspect_image(data) if isinstance(data, bytes) and len(data) > 8 else None
    if header is None:
        if required:
            raise invalid(
                f"{where} is not a JPEG, PNG, GIF or BMP image (it starts with "
                f"{bytes(data[:8])!r}); send the image file's bytes."
            )
        return
    if header.pixels is None:
        raise invalid(f"{where} {header.detail}.")
    if header.pixels > max_pixels:
        raise invalid(
            f"{where} is too large: {header.detail}, over the limit of {max_pixels} pixels "
            "(--max-image-pixels); send a smaller image."
        )
    if header.format == "JPEG":
        scans = jpeg_scans(data)
        if scans > max_scans:
            raise invalid(
                f"{where} is a JPEG of {scans} scans, over the limit of {max_scans} "
                "(--max-jpeg-scans; each scan is a pass over every pixel); re-encode it as a "
                "baseline JPEG or with a standard progressive script."
            )
    if required and header.format not in IMAGE_FORMATS:
        raise invalid(f"{where} is a {header.format} image; send JPEG, PNG, GIF or BMP bytes.")


def check_images(
    arr: np.ndarray, key: str, max_pixels: int, max_scans: int = DEFAULT_MAX_JPEG_SCANS
) -> None:
    """``check_image`` on every value of a string input (required to be images when the
    input is named as ``inception export`` names image inputs)."""
    for i, data in enumerate(arr.reshape(-1)):
        where = f"image {i} of input {key!r}"
        check_image(data, where, max_pixels, key in IMAGE_KEYS, max_scans)


def check_examples(
    arr: np.ndarray,
    key: str,
    signature: str,
    max_pixels: int,
    max_scans: int = DEFAULT_MAX_JPEG_SCANS,
) -> None:
    """Serialized ``tf.Example``s for a classify signature called through Predict: each must
    parse, and its ``image/encoded`` feature passes ``check_image``."""
    from google.protobuf.message import DecodeError
    from tensorflow.core.example import example_pb2

    for i, data in enumerate(arr.reshape(-1)):
        where = f"value {i} of input {key!r} of signature {signature!r}"
        header = inspect_image(data) if isinstance(data, bytes) else None
        if header is not None:
            raise invalid(
                f"{where} is a {header.format} image, but this signature takes serialized "
                "tf.Example protos: send images to the serving_default signature, or use "
                ':classify with {"examples": [{"image/encoded": {"b64": ...}}]}.'
            )
        try:
            example = example_pb2.Example.FromString(data)
        except (DecodeError, TypeError):
            raise invalid(f"{where} is not a serialized tf.Example.") from None
        check_example(example, i, max_pixels, max_scans)


def check_example(
    example, index: int, max_pixels: int, max_scans: int = DEFAULT_MAX_JPEG_SCANS
) -> None:
    feature = example.features.feature.get("image/encoded")
    if feature is not None:
        for data in feature.bytes_list.value:
            check_image(data, f"'image/encoded' of example {index}", max_pixels, True, max_scans)
