"""Errors in TensorFlow Serving's shape: one gRPC status code, mapped to an HTTP status for REST
(where the body is ``{"error": "message"}``)."""

from __future__ import annotations

import re

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
    grpc.StatusCode.CANCELLED: 499,  # the client went away (nginx's code; never delivered)
}


class ServingError(Exception):
    """A request that cannot be answered: ``code`` is a ``grpc.StatusCode``; ``http`` overrides
    the HTTP status mapped from it (408 for a body sent too slowly, 415 for an unknown
    ``Content-Encoding``)."""

    def __init__(self, code: grpc.StatusCode, message: str, http: int | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.http = http

    @property
    def http_status(self) -> int:
        return self.http or HTTP_STATUS.get(self.code, 500)


def invalid(message: str, http: int | None = None) -> ServingError:
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message, http)


def not_found(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.NOT_FOUND, message)


def unavailable(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.UNAVAILABLE, message)


def too_large(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.RESOURCE_EXHAUSTED, message)


def internal(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.INTERNAL, message)


def from_tensorflow(exc: Exception) -> ServingError:
    """Maps an exception raised while running a signature: TensorFlow's InvalidArgumentError
    (undecodable image, failed size check, bad shape) is the client's fault, anything else not."""
    import tensorflow as tf

    if isinstance(exc, ServingError):
        return exc
    if isinstance(exc, UnicodeDecodeError):  # TF could not even format its message
        return invalid(
            "the model could not read the given value (TensorFlow's message held bytes that are "
            "not text); check that each input holds what the signature expects."
        )
    if isinstance(exc, (tf.errors.InvalidArgumentError, TypeError, ValueError)):
        return invalid(_clean(str(exc)))
    return internal(_clean(str(exc)) or type(exc).__name__)


_ASSERTION = re.compile(r"assertion failed: \[(.*?)\]")
_NODES = re.compile(r"\s*(\{\{function_node [^}]*\}\}|\[\[\{\{.*?\]\]|\[Op:[^\]]*\])\s*")


def _clean(message: str) -> str:
    """TensorFlow messages wrap the cause in graph-node traces and, for a failed in-graph
    check, the assertion's operands; keep the human part."""
    found = _ASSERTION.search(message)
    if found:
        return found.group(1).strip().rstrip(". ") + "."
    lines = [ln for ln in message.strip().splitlines() if ln.strip()]
    keep = []
    for line in lines:
        if line.lstrip().startswith(("[[", "Graph execution error", "Detected at node")):
            continue
        if line.lstrip().startswith(("File ", "Traceback")):
            break
        keep.append(_NODES.sub(" ", line).strip())
    return " ".join(k for k in keep if k)[:1000]
