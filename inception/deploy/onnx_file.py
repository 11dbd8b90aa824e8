"""ONNX: ``NAME.onnx`` through Keras' exporter (tf2onnx), the record in ``metadata_props``, run
in ONNX Runtime; int8 by ONNX Runtime's static quantization (QDQ, per channel)."""

from __future__ import annotations

import os
import tempfile

from .artifact import METADATA_KEY, Artifact, record, rejected, require

FORMAT = "onnx"


def export(model, path, info, calibration=None) -> str:
    """Writes ``model`` (a Keras model on the artifact contract) to ``path``; ``calibration``:
    a float32 batch of pixels to quantize to int8 with (``None``: float32)."""
    require("tf2onnx", FORMAT)
    onnx = require("onnx", FORMAT)
    if calibration is None:
        model.export(path, format="onnx", verbose=False)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            float_path = os.path.join(tmp, "float.onnx")
            model.export(float_path, format="onnx", verbose=False)
            _quantize(float_path, path, calibration)
    proto = onnx.load(path)
    del proto.metadata_props[:]
    for key, value in ((METADATA_KEY, record(info)), ("labels", "\n".join(info.class_names))):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, path)
    return path


def _quantize(source, target, calibration) -> None:
    require("onnxruntime", FORMAT)
    from onnxruntime import quantization as q

    class Reader(q.CalibrationDataReader):
        def __init__(self, name):
            self.rows = iter({name: calibration[i : i + 1]} for i in range(len(calibration)))

        def get_next(self):
            return next(self.rows, None)

    name = _session(source).get_inputs()[0].name
    q.quantize_static(
        source, target, Reader(name), quant_format=q.QuantFormat.QDQ, per_channel=True,
        activation_type=q.QuantType.QInt8, weight_type=q.QuantType.QInt8,
    )  # fmt: skip


def _session(path):
    ort = require("onnxruntime", FORMAT)
    try:
        return ort.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001  (ONNX Runtime raises its own exception types)
        raise rejected(path, FORMAT, exc) from None


class OnnxArtifact(Artifact):
    format = FORMAT

    def __init__(self, path):
        self.session = _session(path)
        first = self.session.get_inputs()[0]
        self.input_name = first.name
        self.input_size = int(first.shape[1])
        self.num_classes = int(self.session.get_outputs()[0].shape[-1])
        meta = self.session.get_modelmeta().custom_metadata_map
        super().__init__(path, meta.get(METADATA_KEY))

    def _run(self, batch):
        return self.session.run(None, {self.input_name: batch})[0]


def load(path) -> OnnxArtifact:
    return OnnxArtifact(path)
