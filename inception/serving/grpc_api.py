"""TensorFlow Serving's gRPC API on ``grpc.aio``, with the ``tensorflow-serving-api`` stubs:
``PredictionService`` (Predict, Classify, GetModelMetadata) and ``ModelService``
(GetModelStatus). Errors abort with the request's gRPC status code."""

from __future__ import annotations

import time

import grpc
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from . import codec, protos
from .errors import ServingError, invalid


def _spec(model_spec):
    version = model_spec.version.value if model_spec.HasField("version") else None
    return model_spec.name, version, model_spec.version_label or None


class _Observed:
    """Times one RPC and turns ``ServingError`` into ``context.abort``."""

    def __init__(self, server, method):
        self.server, self.method = server, method

    async def __call__(self, fn, request, context):
        started, code = time.perf_counter(), "OK"
        try:
            return await fn(request)
        except ServingError as exc:
            code = exc.code.name
            await context.abort(exc.code, exc.message)
        finally:
            self.server.metrics.observe(
                request.model_spec.name, "grpc", self.method, code, time.perf_counter() - started
            )


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, server):
        self.server = server

    async def Predict(self, request, context):
        return await _Observed(self.server, "predict")(self._predict, request, context)

    async def _predict(self, request):
        import tensorflow as tf

        name, version, label = _spec(request.model_spec)
        v = self.server.resolve(name, version, label)
        sig = self.server.signature(v, request.model_spec.signature_name)
        inputs = {}
        for key, proto in request.inputs.items():
            if key not in sig.inputs:
                raise invalid(
                    f"input {key!r} is not in signature {sig.name!r}; it expects "
                    f"{sorted(sig.inputs)}."
                )
            try:
                arr = tf.make_ndarray(proto)
            except (ValueError, TypeError) as exc:
                raise invalid(f"input {key!r} is not a valid TensorProto: {exc}") from None
            inputs[key] = codec.check_dtype(arr, sig.inputs[key])
        wanted = list(request.output_filter)
        unknown = [k for k in wanted if k not in sig.outputs]
        if unknown:
            raise invalid(
                f"output_filter names {unknown}, not outputs of signature "
                f"{sig.name!r} ({sorted(sig.outputs)})."
            )
        _, _, outputs = await self.server.predict(name, v.number, None, sig.name, inputs)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = name
        response.model_spec.version.value = v.number
        response.model_spec.signature_name = sig.name
        for key in wanted or outputs:
            response.outputs[key].CopyFrom(tf.make_tensor_proto(outputs[key]))
        return response

    async def Classify(self, request, context):
        return await _Observed(self.server, "classify")(self._classify, request, context)

    async def _classify(self, request):
        name, version, label = _spec(request.model_spec)
        kind = request.input.WhichOneof("kind")
        if kind == "example_list":
            examples = list(request.input.example_list.examples)
        elif kind == "example_list_with_context":
            ctx = request.input.example_list_with_context.context
            examples = []
            for ex in request.input.example_list_with_context.examples:
                merged = type(ex)()
                merged.CopyFrom(ctx)
                merged.MergeFrom(ex)
                examples.append(merged)
        else:
            raise invalid("the classify request has no input examples.")
        v, sig, classes, scores = await self.server.classify(
            name, version, label, request.model_spec.signature_name, examples
        )
        response = classification_pb2.ClassificationResponse()
        response.model_spec.name = name
        response.model_spec.version.value = v.number
        response.model_spec.signature_name = sig.name
        response.result.CopyFrom(protos.classification_result(classes, scores, len(examples)))
        return response

    async def GetModelMetadata(self, request, context):
        return await _Observed(self.server, "metadata")(self._metadata, request, context)

    async def _metadata(self, request: get_model_metadata_pb2.GetModelMetadataRequest):
        name, version, label = _spec(request.model_spec)
        fields = list(request.metadata_field)
        if not fields:
            raise invalid("GetModelMetadataRequest must specify at least one metadata_field.")
        bad = [f for f in fields if f != "signature_def"]
        if bad:
            raise invalid(f"Metadata field {bad[0]} is not supported (only signature_def).")
        return protos.metadata_response(name, self.server.resolve(name, version, label))


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, server):
        self.server = server

    async def GetModelStatus(self, request, context):
        return await _Observed(self.server, "status")(self._status, request, context)

    async def _status(self, request):
        name, version, label = _spec(request.model_spec)
        return protos.status_response(self.server.model(name), version, label)


async def start(server, host: str, port: int):
    """Starts the gRPC server; returns it and the bound port."""
    limit = server.max_request_bytes
    grpc_server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", max(limit, 64 * 1024 * 1024)),
            ("grpc.so_reuseport", 0),
        ]
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(server), grpc_server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(server), grpc_server)
    bound = grpc_server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot listen for gRPC on {host}:{port} (port in use?)")
    await grpc_server.start()
    return grpc_server, bound
