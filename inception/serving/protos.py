"""Responses built with the ``tensorflow-serving-api`` protos, shared by REST (as JSON) and
gRPC: model status, model metadata, classification results."""

from __future__ import annotations

import numpy as np
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
)

from .errors import not_found

STATES = {"LOADING": 20, "AVAILABLE": 30, "UNLOADING": 40, "END": 50}


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
        raise not_found(
            f"Servable not found for request: Latest({model.name}): no version is "
            f"loaded from {model.base}."
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
