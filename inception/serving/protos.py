"""Protos shared by REST (as JSON) and gRPC: model status, model metadata and classification
results (``tensorflow-serving-api``), and ``tf.train.Example``s from REST's JSON."""

from __future__ import annotations

import numpy as np
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
)

from .codec import b64_bytes, check_rows
from .errors import invalid, not_found, too_large

# NumPy dtype -> TensorProto dtype enum, for the outputs a signature answers with
_DTYPES = {
    np.dtype(np.float32): types_pb2.DT_FLOAT,
    np.dtype(np.float64): types_pb2.DT_DOUBLE,
    np.dtype(np.float16): types_pb2.DT_HALF,
    np.dtype(np.int32): types_pb2.DT_INT32,
    np.dtype(np.int64): types_pb2.DT_INT64,
    np.dtype(np.uint8): types_pb2.DT_UINT8,
    np.dtype(np.bool_): types_pb2.DT_BOOL,
}

_LITTLE_ENDIAN = {dtype: dtype.newbyteorder("<") for dtype in _DTYPES}

STATES = {"LOADING": 20, "AVAILABLE": 30, "UNLOADING": 40, "END": 50}


def tensor_proto(array: np.ndarray, out=None):
    """``array`` as a ``TensorProto`` (into ``out`` when given): numbers as little-endian
    ``tensor_content``, strings as ``string_val``. The same message ``tf.make_tensor_proto``
    writes, built directly (a fifth of its time, which counts on every answer); other dtypes
    (bfloat16, say) go through ``tf.make_tensor_proto``."""
    proto = tensor_pb2.TensorProto() if out is None else out
    array = np.asarray(array)
    enum = _DTYPES.get(array.dtype)
    if enum is None and array.dtype.kind not in "OSU":
        import tensorflow as tf

        proto.CopyFrom(tf.make_tensor_proto(array))
        return proto
    dims = proto.tensor_shape.dim
    for d in array.shape:
        dims.add(size=d)
    if enum is None:  # strings
        proto.dtype = types_pb2.DT_STRING
        proto.string_val.extend(
            v if isinstance(v, bytes) else str(v).encode() for v in array.ravel()
        )
    else:
        proto.dtype = enum
        proto.tensor_content = array.astype(_LITTLE_ENDIAN[array.dtype], copy=False).tobytes()
    return proto


def status_response(model, version=None, label=None):
    """``GetModelStatusResponse``: every known version, or the one requested."""
    response = get_model_status_pb2.GetModelStatusResponse()
    if label is not None:
        version = model.resolve(None, label).number
    versions = sorted(model.versions.items(), reverse=True)
    if version is not None:
        versions = [(n, v) for n, v in versions if n == int(version)]
        if not versions:
            raise not_found(f"Servable not found for request: Specific({model.name}, {version})")
    if not versions:
        why = f" ({model.problem})" if model.problem else ""
        raise not_found(
            f"Servable not found for request: Latest({model.name}): no version is "
            f"loaded from {model.base}{why}."
        )
    for number, v in versions:
        entry = response.model_version_status.add()
        entry.version = number
        entry.state = STATES.get(v.state, 0)
        entry.status.SetInParent()  # TF-Serving always reports a status (OK when empty)
        if v.error:
            entry.status.error_code = 13  # tensorflow.error.INTERNAL
            entry.status.error_message = v.error
    return response


def metadata_response(name, version):
    """``GetModelMetadataResponse`` with the ``signature_def`` map (the only metadata field)."""
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = name
    response.model_spec.version.value = version.number
    defs = get_model_metadata_pb2.SignatureDefMap()
    for sig_name, sig in version.signatures.items():
        defs.signature_def[sig_name].CopyFrom(sig.proto)
    response.metadata["signature_def"].Pack(defs)
    return response


def _rows(classes, scores, count):
    for i in range(count):
        labels = (
            []
            if classes is None
            else [
                c.decode("utf-8", "replace") if isinstance(c, bytes) else str(c) for c in classes[i]
            ]
        )
        values = [] if scores is None else [float(s) for s in np.ravel(scores[i])]
        if not labels:
            labels = [""] * len(values)
        if not values:
            values = [0.0] * len(labels)
        yield labels, values


def classify_rows(classes, scores, count):
    """REST ``result``: per example a list of ``[label, score]``."""
    return [
        [[lab, val] for lab, val in zip(labels, values, strict=True)]
        for labels, values in _rows(classes, scores, count)
    ]


def classification_result(classes, scores, count):
    result = classification_pb2.ClassificationResult()
    for labels, values in _rows(classes, scores, count):
        item = result.classifications.add()
        for lab, val in zip(labels, values, strict=True):
            item.classes.add(label=lab, score=val)
    return result


# ------------------------------------------------------------------------- tf.Example (REST)


def _feature(name, value):
    from tensorflow.core.example import feature_pb2

    values = value if isinstance(value, list) else [value]
    if not values:
        raise invalid(f"example feature {name!r} must have at least one value.")
    try:
        if all(isinstance(v, bool) for v in values) or all(
            isinstance(v, int) and not isinstance(v, bool) for v in values
        ):
            return feature_pb2.Feature(
                int64_list=feature_pb2.Int64List(value=[int(v) for v in values])
            )
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            return feature_pb2.Feature(float_list=feature_pb2.FloatList(value=values))
    except (ValueError, TypeError, OverflowError):
        raise invalid(
            f"example feature {name!r} has a number outside the int64 / float range "
            f"({str(value)[:60]}); integers must lie within +-9223372036854775807."
        ) from None
    if all(isinstance(v, (str, dict)) for v in values):
        data = [b64_bytes(v) if isinstance(v, dict) else v.encode("utf-8") for v in values]
        return feature_pb2.Feature(bytes_list=feature_pb2.BytesList(value=data))
    raise invalid(
        f"example feature {name!r} mixes value types or has unsupported ones "
        f'(use numbers, strings or {{"b64": ...}}): {str(value)[:80]}'
    )


def examples_from_json(body, max_rows: int = 2**31, max_bytes: int = 2**62) -> list:
    """A REST classify body (``examples`` and optional ``context``) -> ``tf.train.Example``s
    (at most ``max_rows``, whose serialized size, with the context copied into each, is at
    most ``max_bytes``)."""
    from tensorflow.core.example import example_pb2

    if (
        not isinstance(body, dict)
        or not isinstance(body.get("examples"), list)
        or not body["examples"]
    ):
        raise invalid("a classify request needs 'examples': a non-empty list of feature objects.")
    examples = body["examples"]
    check_rows(len(examples), max_rows, "examples")
    context = body.get("context", {})
    if not isinstance(context, dict):
        raise invalid("'context' must be an object of features shared by every example.")
    shared = example_pb2.Example()
    for name, value in context.items():
        shared.features.feature[name].CopyFrom(_feature(name, value))
    check_context(shared, len(examples), max_bytes)
    out = []
    for i, ex in enumerate(examples):
        if not isinstance(ex, dict):
            raise invalid(f"example {i} must be an object of features.")
        example = example_pb2.Example()
        example.CopyFrom(shared)
        for name, value in ex.items():
            example.features.feature[name].CopyFrom(_feature(name, value))
        out.append(example)
    return out


def check_context(context, count: int, max_bytes: int) -> None:
    """The context is copied into each example: refuse when the copies pass ``max_bytes``."""
    size = context.ByteSize() * count
    if size > max_bytes:
        raise too_large(
            f"the context is copied into each of the {count} examples: {size} bytes, over the "
            f"limit of {max_bytes} bytes (--max-request-bytes); send the shared features "
            "with fewer examples per request.",
        )
