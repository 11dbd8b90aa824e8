"""LiteRT: ``NAME.tflite`` through Keras' exporter (the TFLite converter), the record as a
flatbuffer metadata entry (``inception``, beside the converter's own), run in ``ai-edge-litert``
(XNNPACK on CPU); int8 by the converter's post-training quantization with a representative
data set (float32 input and output, int8 inside)."""

from __future__ import annotations

import os

import numpy as np

from .artifact import METADATA_KEY, Artifact, record, rejected, require

FORMAT = "litert"


def export(model, path, info, calibration=None) -> str:
    """Writes ``model`` (a Keras model on the artifact contract) to ``path``; ``calibration``:
    a float32 batch of pixels to quantize to int8 with (``None``: float32)."""
    require("ai_edge_litert.interpreter", FORMAT)
    options = {}
    if calibration is not None:
        import tensorflow as tf

        def representative():
            for i in range(len(calibration)):
                yield [calibration[i : i + 1]]

        options = dict(optimizations=[tf.lite.Optimize.DEFAULT],
                       representative_dataset=representative)  # fmt: skip
    model.export(path, format="litert", verbose=False, **options)
    write_metadata(path, record(info))
    return path


def write_metadata(path, text: str) -> None:
    """Adds ``text`` as the flatbuffer metadata entry ``inception`` (LiteRT's own place for
    named byte strings; the TFLite Support ``TFLITE_METADATA`` schema is not used)."""
    from tensorflow.lite.python import schema_py_generated as fb
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(path)
    buffer = fb.BufferT()
    buffer.data = np.frombuffer(text.encode(), dtype=np.uint8)
    model.buffers.append(buffer)
    entry = fb.MetadataT()
    entry.name, entry.buffer = METADATA_KEY, len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if m.name != METADATA_KEY.encode()]
    model.metadata.append(entry)
    flatbuffer_utils.write_model(model, path)


def read_metadata(path) -> str | None:
    from tensorflow.lite.python import schema_py_generated as fb

    with open(path, "rb") as f:
        data = f.read()
    model = fb.Model.GetRootAs(data, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name().decode() == METADATA_KEY:
            return model.Buffers(entry.Buffer()).DataAsNumpy().tobytes().decode()
    return None


class LiteRtArtifact(Artifact):
    format = FORMAT

    def __init__(self, path):
        interpreter = require("ai_edge_litert.interpreter", FORMAT)
        try:
            self.interpreter = interpreter.Interpreter(
                model_path=os.fspath(path), num_threads=os.cpu_count()
            )
            self.interpreter.allocate_tensors()
            stored = read_metadata(path)
        except Exception as exc:  # noqa: BLE001  (the interpreter raises ValueError/RuntimeError)
            raise rejected(path, FORMAT, exc) from None
        first = self.interpreter.get_input_details()[0]
        self.input_index = first["index"]
        self.output_index = self.interpreter.get_output_details()[0]["index"]
        self.input_size = int(first["shape"][1])
        self.num_classes = int(self.interpreter.get_output_details()[0]["shape"][-1])
        self.batch = int(first["shape"][0])
        super().__init__(path, stored)

    def _run(self, batch):
        if len(batch) != self.batch:
            self.interpreter.resize_tensor_input(self.input_index, batch.shape)
            self.interpreter.allocate_tensors()
            self.batch = len(batch)
        self.interpreter.set_tensor(self.input_index, batch)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output_index).copy()


def load(path) -> LiteRtArtifact:
    return LiteRtArtifact(path)
