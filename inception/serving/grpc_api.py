"""TensorFlow Serving's gRPC API on ``grpc.aio``, with the ``tensorflow-serving-api`` protos:
``PredictionService`` (Predict, Classify, GetModelMetadata; Regress and MultiInference answer
UNIMPLEMENTED) and ``ModelService`` (GetModelStatus). Errors abort with the request's gRPC
status code.

Predict and Classify receive the raw message, parsed and converted on a parse thread when it
is over ``SMALL_REQUEST_BYTES`` (over ``LARGE_REQUEST_BYTES``, one of ``--max-large-requests``),
on the event loop when smaller.
Input tensors are checked (dtype, declared shape against the signature, the row limit, the
values present, the bytes they expand to) before anything is allocated.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import math
import time

import grpc
import numpy as np
from google.protobuf.message import DecodeError
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    predict_pb2,
    regression_pb2,
)

from . import codec, protos
from .errors import ServingError, internal, invalid, too_large
from .limits import LARGE_REQUEST_BYTES

log = logging.getLogger("inception.serving")

# TensorProto dtype enum -> the repeated field holding its values (tensorflow/core/framework).
_VALUES = {
    1: "float_val",  # DT_FLOAT
    2: "double_val",  # DT_DOUBLE
    3: "int_val",  # DT_INT32
    4: "int_val",  # DT_UINT8
    5: "int_val",  # DT_INT16
    6: "int_val",  # DT_INT8
    7: "string_val",  # DT_STRING
    9: "int64_val",  # DT_INT64
    10: "bool_val",  # DT_BOOL
    14: "half_val",  # DT_BFLOAT16
    17: "int_val",  # DT_UINT16
    19: "half_val",  # DT_HALF
    22: "uint32_val",  # DT_UINT32
    23: "uint64_val",  # DT_UINT64
}


def _dtype_name(enum: int) -> str:
    from tensorflow.core.framework import types_pb2

    try:
        return types_pb2.DataType.Name(enum)
    except ValueError:
        return f"dtype {enum}"


@functools.cache
def _enum(dtype: np.dtype) -> int:
    """The ``TensorProto`` dtype enum of a signature's NumPy dtype (object: DT_STRING)."""
    import tensorflow as tf

    return (tf.string if dtype.kind == "O" else tf.as_dtype(dtype)).as_datatype_enum


def tensor_to_array(proto, info: codec.TensorInfo, max_rows: int, max_bytes: int) -> np.ndarray:
    """A request's ``TensorProto`` -> NumPy, refusing before allocating: another dtype than
    the signature's, a shape the signature does not take, more rows than ``max_rows``, more
    values than the shape holds, or a shape whose values (a short list is padded with its
    last value, as TensorFlow does) would take more than ``max_bytes``."""
    key, want = info.key, _enum(info.dtype)
    if proto.dtype != want:
        raise invalid(
            f"input {key!r} expects {info.describe()} ({_dtype_name(want)}), "
            f"got {_dtype_name(proto.dtype)}."
        )
    if proto.dtype not in _VALUES:
        raise invalid(f"input {key!r}: this server cannot read {_dtype_name(proto.dtype)} tensors.")
    if proto.tensor_shape.unknown_rank:
        raise invalid(f"input {key!r} has no shape (unknown_rank): give its dimensions.")
    dims = [d.size for d in proto.tensor_shape.dim]
    shown = f"[{', '.join(map(str, dims))}]"
    if any(d < 0 for d in dims):
        raise invalid(f"input {key!r} has a negative dimension in its shape {shown}.")
    codec.check_dims(dims, info)
    if dims:
        codec.check_rows(dims[0], max_rows)
    count = math.prod(dims)
    values = getattr(proto, _VALUES[proto.dtype])
    given = len(proto.tensor_content) if proto.tensor_content else len(values)
    if info.is_string:
        if proto.tensor_content or len(values) > count:
            raise invalid(
                f"input {key!r} has {len(values)} strings but its shape {shown} holds {count}."
            )
        last = values[-1] if len(values) else b""
        size = sum(len(v) for v in values) + (count - len(values)) * len(last)
        if size > max_bytes:
            raise too_large(
                f"input {key!r} of shape {shown} expands to {size} bytes of strings (its last "
                f"value repeated), over the limit of {max_bytes} bytes (--max-request-bytes)."
            )
        filler = itertools.repeat(last, count - len(values))
        return np.fromiter(itertools.chain(values, filler), dtype=object, count=count).reshape(dims)
    itemsize = np.dtype(info.dtype).itemsize
    if count * itemsize > max_bytes:
        raise too_large(
            f"input {key!r} declares shape {shown}: {count * itemsize} bytes of "
            f"{info.dtype.name}, over the limit of {max_bytes} bytes (--max-request-bytes)."
        )
    if proto.tensor_content and given != count * itemsize:
        raise invalid(
            f"input {key!r} has {given} bytes of tensor_content, but its shape {shown} of "
            f"{info.dtype.name} needs {count * itemsize}."
        )
    if not proto.tensor_content and given > count:
        raise invalid(f"input {key!r} has {given} values but its shape {shown} holds {count}.")
    import tensorflow as tf

    return tf.make_ndarray(proto)


def _parse(message_type, data: bytes):
    try:
        return message_type.FromString(data)
    except DecodeError:
        raise invalid(f"the request is not a valid {message_type.__name__} message.") from None


def _spec(model_spec):
    version = model_spec.version.value if model_spec.HasField("version") else None
    return model_spec.name, version, model_spec.version_label or None


def parse_predict(server, data: bytes):
    """A serialized ``PredictRequest`` -> ``(request, version, signature, inputs, rows)``."""
    request = _parse(predict_pb2.PredictRequest, data)
    v = server.resolve(*_spec(request.model_spec))
    sig = server.signature(v, request.model_spec.signature_name)
    inputs = {}
    for key, proto in request.inputs.items():
        if key not in sig.inputs:
            raise invalid(
                f"input {key!r} is not in signature {sig.name!r}; it expects {sorted(sig.inputs)}."
            )
        inputs[key] = tensor_to_array(
            proto, sig.inputs[key], server.max_rows, server.max_request_bytes
        )
    unknown = [k for k in request.output_filter if k not in sig.outputs]
    if unknown:
        raise invalid(
            f"output_filter names {unknown}, not outputs of signature "
            f"{sig.name!r} ({sorted(sig.outputs)})."
        )
    return request, v, sig, inputs, server.check_inputs(sig, inputs)


def parse_classify(server, data: bytes):
    """A serialized ``ClassificationRequest`` -> ``(request, version, signature, inputs,
    rows)``."""
    request = _parse(classification_pb2.ClassificationRequest, data)
    v = server.resolve(*_spec(request.model_spec))
    sig = server.classify_signature(v, request.model_spec.signature_name)
    kind = request.input.WhichOneof("kind")
    if kind == "example_list":
        examples = list(request.input.example_list.examples)
    elif kind == "example_list_with_context":
        listed = request.input.example_list_with_context
        codec.check_rows(len(listed.examples), server.max_rows, "examples")
        protos.check_context(listed.context, len(listed.examples), server.max_request_bytes)
        examples = []
        for ex in listed.examples:
            merged = type(ex)()
            merged.CopyFrom(listed.context)
            merged.MergeFrom(ex)
            examples.append(merged)
    else:
        raise invalid("the classify request has no input examples.")
    return request, v, sig, server.classify_inputs(sig, examples), len(examples)


# grpc's deadline timer may end a call a little before its deadline by the server's clock (by
# a few hundred milliseconds measured on a loaded machine): a call ended that close to its
# deadline is counted as expired, not as cancelled by its client.
DEADLINE_SLACK_SECONDS = 0.25


def _ended(context) -> str | None:
    """CANCELLED or DEADLINE_EXCEEDED when the call ended before its answer (the client left or
    its deadline passed), else None."""
    remaining = context.time_remaining()
    if remaining is not None and remaining <= DEADLINE_SLACK_SECONDS:
        return "DEADLINE_EXCEEDED"
    return "CANCELLED" if context.cancelled() else None


async def _observe(server, method, context, call):
    """Runs ``call(names)`` (``names`` takes the model name once known), counts the answer by
    its status code and then answers; errors become ``context.abort``. The count comes first, so
    a client that has its answer also finds it in ``/monitoring/prometheus/metrics``. A call
    whose client left or whose deadline passed is counted so, not OK. The abort happens outside
    the ``except`` block, so the error (and what its traceback holds) is freed at once: grpc
    keeps the abort's exception, whose traceback holds this frame and the method's, in a cycle
    with the call's context until a full GC; hence the methods hand their message over in a
    list that ``call`` empties, so that none of those frames keeps the message."""
    started, names = time.perf_counter(), ["?"]

    def observe(code):
        server.metrics.observe(names[0], "grpc", method, code, time.perf_counter() - started)

    error = None
    try:
        response = await call(names)
    except ServingError as exc:
        error = (exc.code, server.public(exc.message))
    except asyncio.CancelledError:
        observe(_ended(context) or "CANCELLED")
        raise
    except Exception:  # a bug: logged, answered INTERNAL and counted as such
        log.exception("gRPC %s failed", method)
        failure = internal("internal error while answering the request (see the log).")
        error = (failure.code, failure.message)
    if error is not None:
        observe(_ended(context) or error[0].name)
        await context.abort(*error)
    observe(_ended(context) or "OK")
    return response


class PredictionService:
    """``tensorflow.serving.PredictionService``; Predict and Classify take raw bytes."""

    def __init__(self, server):
        self.server = server

    async def Predict(self, message: bytes, context):
        box = [message]  # no frame of this call holds the message once parsed (see _observe)
        del message
        server = self.server

        async def call(names):
            data = box.pop()
            where = server.parser(len(data))
            async with server.admit(len(data) > LARGE_REQUEST_BYTES):
                request, v, sig, inputs, rows = await server.offload(
                    where, parse_predict, server, data
                )
                names[0] = request.model_spec.name
                outputs = await server.run(v, sig, inputs, rows)
                return await server.offload(where, _predict_response, request, v, sig, outputs)

        return await _observe(server, "predict", context, call)

    async def Classify(self, message: bytes, context):
        box = [message]  # no frame of this call holds the message once parsed (see _observe)
        del message
        server = self.server

        async def call(names):
            data = box.pop()
            async with server.admit(len(data) > LARGE_REQUEST_BYTES):
                request, v, sig, inputs, rows = await server.offload(
                    server.parser(len(data)), parse_classify, server, data
                )
                names[0] = request.model_spec.name
                outputs = await server.run(v, sig, inputs, rows)
            response = classification_pb2.ClassificationResponse()
            response.model_spec.name = request.model_spec.name
            response.model_spec.version.value = v.number
            response.model_spec.signature_name = sig.name
            result = protos.classification_result(
                outputs.get("classes"), outputs.get("scores"), rows
            )
            response.result.CopyFrom(result)
            return response.SerializeToString()

        return await _observe(server, "classify", context, call)

    async def GetModelMetadata(self, message: bytes, context):
        box = [message]  # no frame of this call holds the message once parsed (see _observe)
        del message

        async def call(names):
            data = box.pop()
            request = _parse(get_model_metadata_pb2.GetModelMetadataRequest, data)
            names[0] = request.model_spec.name
            name, version, label = _spec(request.model_spec)
            fields = list(request.metadata_field)
            if not fields:
                raise invalid("GetModelMetadataRequest must specify at least one metadata_field.")
            bad = [f for f in fields if f != "signature_def"]
            if bad:
                raise invalid(f"Metadata field {bad[0]} is not supported (only signature_def).")
            response = protos.metadata_response(name, self.server.resolve(name, version, label))
            return response.SerializeToString()

        return await _observe(self.server, "metadata", context, call)

    async def Regress(self, message: bytes, context):
        box = [message]  # no frame of this call holds the message once parsed (see _observe)
        del message

        async def call(names):
            data = box.pop()
            request = _parse(regression_pb2.RegressionRequest, data)
            names[0] = request.model_spec.name
            raise ServingError(grpc.StatusCode.UNIMPLEMENTED, "Regress is not served.")

        return await _observe(self.server, "regress", context, call)

    async def MultiInference(self, message: bytes, context):
        box = [message]  # no frame of this call holds the message once parsed (see _observe)
        del message

        async def call(names):
            data = box.pop()
            request = _parse(inference_pb2.MultiInferenceRequest, data)
            names[0] = request.tasks[0].model_spec.name if request.tasks else "?"
            raise ServingError(grpc.StatusCode.UNIMPLEMENTED, "MultiInference is not served.")

        return await _observe(self.server, "multi_inference", context, call)

    def handler(self) -> grpc.GenericRpcHandler:
        names = ("Predict", "Classify", "GetModelMetadata", "Regress", "MultiInference")
        return _raw_handlers("tensorflow.serving.PredictionService", self, names)


def _raw_handlers(service: str, servicer, names) -> grpc.GenericRpcHandler:
    """Handlers that take the request's bytes: each method parses them itself, so that a
    message that does not parse is answered INVALID_ARGUMENT and counted."""
    return grpc.method_handlers_generic_handler(
        service,
        {name: grpc.unary_unary_rpc_method_handler(getattr(servicer, name)) for name in names},
    )


def _predict_response(request, v, sig, outputs) -> bytes:
    response = predict_pb2.PredictResponse()
    response.model_spec.name = request.model_spec.name
    response.model_spec.version.value = v.number
    response.model_spec.signature_name = sig.name
    for key in list(request.output_filter) or outputs:
        protos.tensor_proto(outputs[key], response.outputs[key])
    return response.SerializeToString()


class ModelService:
    """``tensorflow.serving.ModelService``: GetModelStatus; reloading the config at run time
    is not served (restart with the new ``--model-config-file``)."""

    def __init__(self, server):
        self.server = server

    async def GetModelStatus(self, message: bytes, context):
        box = [message]  # no frame of this call holds the message once parsed (see _observe)
        del message

        async def call(names):
            data = box.pop()
            request = _parse(get_model_status_pb2.GetModelStatusRequest, data)
            names[0] = request.model_spec.name
            name, version, label = _spec(request.model_spec)
            response = protos.status_response(self.server.model(name), version, label)
            for entry in response.model_version_status:
                entry.status.error_message = self.server.public(entry.status.error_message)
            return response.SerializeToString()

        return await _observe(self.server, "status", context, call)

    async def HandleReloadConfigRequest(self, message: bytes, context):
        box = [message]  # no frame of this call holds the message once parsed (see _observe)
        del message

        async def call(names):
            data = box.pop()
            _parse(model_management_pb2.ReloadConfigRequest, data)
            raise ServingError(
                grpc.StatusCode.UNIMPLEMENTED,
                "reloading the model config at run time is not served; restart the server "
                "with the new --model-config-file.",
            )

        return await _observe(self.server, "reload_config", context, call)

    def handler(self) -> grpc.GenericRpcHandler:
        names = ("GetModelStatus", "HandleReloadConfigRequest")
        return _raw_handlers("tensorflow.serving.ModelService", self, names)


async def start(server, host: str, port: int):
    """Starts the gRPC server; returns it and the bound port."""
    limit = server.max_request_bytes
    grpc_server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", max(limit, 64 * 1024 * 1024)),
            ("grpc.so_reuseport", 0),
            ("grpc.max_connection_idle_ms", int(server.idle_timeout * 1000)),
            # Past the cap a new connection is closed before its handshake; a connection whose
            # HTTP/2 handshake does not finish in the header timeout is closed too.
            ("grpc.max_allowed_incoming_connections", server.max_grpc_connections),
            ("grpc.server_handshake_timeout_ms", int(server.header_timeout * 1000)),
        ]
    )
    grpc_server.add_generic_rpc_handlers(
        (PredictionService(server).handler(), ModelService(server).handler())
    )
    bound = grpc_server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot listen for gRPC on {host}:{port} (port in use?)")
    await grpc_server.start()
    return grpc_server, bound
