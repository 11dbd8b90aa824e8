"""Errors in TensorFlow Serving's shape: one gRPC status code, mapped to an HTTP status for REST
(where the body is ``{"error": "message"}``)."""

from __future__ import annotations

import grpc

HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 413,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
}


class ServingError(Exception):
    """A request that cannot be answered: ``code`` is a ``grpc.StatusCode``."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.code, 500)


def invalid(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.NOT_FOUND, message)


def unavailable(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.UNAVAILABLE, message)


def from_tensorflow(exc: Exception) -> ServingError:
    """Maps an exception raised while running a signature: TensorFlow's InvalidArgumentError
    (undecodable image, failed size check, bad shape) is the client's fault, anything else not."""
    import tensorflow as tf

    if isinstance(exc, ServingError):
        return exc
    if isinstance(exc, (tf.errors.InvalidArgumentError, TypeError, ValueError)):
        return invalid(_clean(str(exc)))
    return ServingError(grpc.StatusCode.INTERNAL, _clean(str(exc)) or type(exc).__name__)


def _clean(message: str) -> str:
    """TensorFlow messages carry graph-node traces after the first lines; keep the cause."""
    lines = [ln for ln in message.strip().splitlines() if ln.strip()]
    keep = []
    for line in lines:
        if line.lstrip().startswith(("[[", "Graph execution error", "Detected at node")):
            continue
        if line.lstrip().startswith(("File ", "Traceback")):
            break
        keep.append(line.strip())
    return " ".join(keep)[:1000]
