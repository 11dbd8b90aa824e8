"""TensorFlow Serving's REST JSON format <-> NumPy, ``tf.Example`` construction, and the
decoded-image size check on string inputs.

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
import warnings
from dataclasses import dataclass

import numpy as np

from .errors import invalid


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


def _b64(value: dict):
    if set(value) != {"b64"} or not isinstance(value["b64"], str):
        raise invalid(f'a bytes value must be {{"b64": "<base64 text>"}}, got {str(value)[:80]}')
    try:
        return base64.b64decode(value["b64"], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise invalid(f"invalid base64 in a b64 value: {exc}") from None


def _strings(value):
    if isinstance(value, list):
        return [_strings(v) for v in value]
    if isinstance(value, dict):
        return _b64(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    raise invalid(f'expected a string or {{"b64": ...}} value, got {type(value).__name__}')


def to_array(value, info: TensorInfo) -> np.ndarray:
    """A JSON value -> an array of ``info``'s dtype, its shape checked against the signature."""
    try:
        if info.is_string:
            strings = _strings(value)
            arr = np.empty(np.shape(strings) if strings != [] else (0,), dtype=object)
            if arr.ndim == 0:
                arr = np.array(strings, dtype=object)
            else:
                arr[...] = strings
        else:
            if _has_strings(value):
                raise invalid(f"input {info.key!r} expects {info.describe()} numbers, got text")
            arr = np.asarray(value, dtype=info.dtype)
    except (ValueError, TypeError) as exc:
        raise invalid(
            f"input {info.key!r} ({info.describe()}) cannot hold the given value: {exc}"
        ) from None
    check_shape(arr, info)
    return arr


def _has_strings(value) -> bool:
    if isinstance(value, list):
        return any(_has_strings(v) for v in value[:4]) or (
            len(value) > 4 and any(_has_strings(v) for v in value)
        )
    return isinstance(value, (str, dict))


def check_shape(arr: np.ndarray, info: TensorInfo) -> None:
    if info.shape is None:
        return
    if arr.ndim != len(info.shape) or any(
        want is not None and want != got for want, got in zip(info.shape, arr.shape, strict=True)
    ):
        raise invalid(
            f"input {info.key!r} expects shape {info.describe()}, got "
            f"[{', '.join(map(str, arr.shape))}]"
        )


def check_dtype(arr: np.ndarray, info: TensorInfo) -> np.ndarray:
    """For gRPC tensors: the dtype must match the signature exactly (as TF-Serving)."""
    if info.is_string:
        if arr.dtype != object and arr.dtype.kind not in "SU":
            raise invalid(f"input {info.key!r} expects {info.describe()}, got {arr.dtype.name}")
        return arr.astype(object)
    if arr.dtype != info.dtype:
        raise invalid(f"input {info.key!r} expects {info.describe()}, got {arr.dtype.name}")
    return arr


def parse_predict(body, inputs: dict[str, TensorInfo]):
    """A REST predict body -> ``(arrays by input name, rows, columnar)``."""
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
    arrays = {k: to_array(v, inputs[k]) for k, v in values.items()}
    rows = {a.shape[0] if a.ndim else None for a in arrays.values()}
    if len(rows) != 1 or None in rows or 0 in rows:
        raise invalid("every input must have the same, non-zero batch size (first dimension).")
    return arrays, rows.pop(), True


def _jsonable(arr: np.ndarray, name: str):
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
    return arr.tolist()


def predict_response(outputs: dict[str, np.ndarray], columnar: bool) -> dict:
    """Outputs -> ``{"outputs": ...}`` (columnar) or ``{"predictions": [...]}`` (rows)."""
    values = {k: _jsonable(v, k) for k, v in outputs.items()}
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


# ------------------------------------------------------------------------------- tf.Example


def _feature(value):
    from tensorflow.core.example import feature_pb2

    values = value if isinstance(value, list) else [value]
    if not values:
        raise invalid("an example feature must have at least one value.")
    if all(isinstance(v, bool) for v in values) or all(
        isinstance(v, int) and not isinstance(v, bool) for v in values
    ):
        return feature_pb2.Feature(int64_list=feature_pb2.Int64List(value=[int(v) for v in values]))
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return feature_pb2.Feature(float_list=feature_pb2.FloatList(value=values))
    if all(isinstance(v, (str, dict)) for v in values):
        data = [_b64(v) if isinstance(v, dict) else v.encode("utf-8") for v in values]
        return feature_pb2.Feature(bytes_list=feature_pb2.BytesList(value=data))
    raise invalid(f"an example feature mixes value types or has unsupported ones: {value!r:.80}")


def examples_from_json(body) -> list:
    """A REST classify body (``examples`` and optional ``context``) -> ``tf.train.Example``s."""
    from tensorflow.core.example import example_pb2

    if (
        not isinstance(body, dict)
        or not isinstance(body.get("examples"), list)
        or not body["examples"]
    ):
        raise invalid("a classify request needs 'examples': a non-empty list of feature objects.")
    context = body.get("context", {})
    if not isinstance(context, dict):
        raise invalid("'context' must be an object of features shared by every example.")
    out = []
    for i, ex in enumerate(body["examples"]):
        if not isinstance(ex, dict):
            raise invalid(f"example {i} must be an object of features.")
        example = example_pb2.Example()
        for name, value in {**context, **ex}.items():
            example.features.feature[name].CopyFrom(_feature(value))
        out.append(example)
    return out


# ----------------------------------------------------------------------------- image limits


def _jpeg_size(data: bytes) -> int | None:
    i = 2
    while i + 9 < len(data):
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
            h, w = (
                int.from_bytes(data[i + 5 : i + 7], "big"),
                int.from_bytes(data[i + 7 : i + 9], "big"),
            )
            return h * w
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return None


def declared_pixels(data: bytes) -> int | None:
    """Width x height from the header of a JPEG, PNG, GIF or BMP (nothing is decoded; other
    formats through Pillow's header parser), or None when unknown."""
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    if data[:4] == b"\x89PNG" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big") * int.from_bytes(data[20:24], "big")
    if data[:3] == b"GIF" and len(data) >= 10:
        return int.from_bytes(data[6:8], "little") * int.from_bytes(data[8:10], "little")
    if data[:2] == b"BM" and len(data) >= 26:
        w = int.from_bytes(data[18:22], "little", signed=True)
        h = int.from_bytes(data[22:26], "little", signed=True)
        return abs(w * h)
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as image:
                w, h = image.size
                return int(w) * int(h)
    except Image.DecompressionBombError:
        return 2**62
    except Exception:  # not an image, or a broken one: the graph reports it
        return None


def check_images(arr: np.ndarray, key: str, max_pixels: int) -> None:
    """Refuses encoded images whose header declares more than ``max_pixels`` pixels."""
    for i, data in enumerate(arr.reshape(-1)):
        if isinstance(data, bytes) and len(data) > 8:
            pixels = declared_pixels(data)
            if pixels is not None and pixels > max_pixels:
                raise invalid(
                    f"image {i} of input {key!r} is too large: its header declares "
                    f"{pixels if pixels < 2**62 else 'too many'} pixels (limit {max_pixels}); "
                    "send a smaller image."
                )
