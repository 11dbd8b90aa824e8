"""OpenVINO: ``NAME.xml`` + ``NAME.bin`` through Keras' exporter, the record in the model's
``rt_info``, run by OpenVINO's CPU plugin (float32 unless asked otherwise: on CPUs with AMX or
AVX512-BF16 OpenVINO would pick bfloat16 by itself); int8 by NNCF's post-training
quantization."""

from __future__ import annotations

import os
import tempfile

from .artifact import METADATA_KEY, Artifact, record, rejected, require

FORMAT = "openvino"
HINTS = {"float32": "f32", "bfloat16": "bf16", "float16": "f16"}


def export(model, path, info, calibration=None) -> str:
    """Writes ``model`` (a Keras model on the artifact contract) to ``path`` (``.xml``, its
    weights in ``.bin`` beside); ``calibration``: a float32 batch of pixels to quantize to int8
    with (``None``: float32)."""
    ov = require("openvino", FORMAT)
    with tempfile.TemporaryDirectory() as tmp:
        float_path = os.path.join(tmp, "float.xml")
        model.export(float_path, format="openvino", verbose=False)
        graph = ov.Core().read_model(float_path)
        if calibration is not None:
            nncf = require("nncf", FORMAT)
            rows = [calibration[i : i + 1] for i in range(len(calibration))]
            graph = nncf.quantize(graph, nncf.Dataset(rows), subset_size=len(rows))
        graph.set_rt_info(record(info), [METADATA_KEY])
        ov.save_model(graph, path, compress_to_fp16=False)
    return path


class OpenVinoArtifact(Artifact):
    format = FORMAT

    def __init__(self, path, precision: str = "float32"):
        ov = require("openvino", FORMAT)
        core = ov.Core()
        try:
            graph = core.read_model(os.fspath(path))
            stored = graph.get_rt_info([METADATA_KEY]).astype(str) if graph.has_rt_info(
                [METADATA_KEY]) else None  # fmt: skip
            config = {"INFERENCE_PRECISION_HINT": HINTS[precision]}
            self.compiled = core.compile_model(graph, "CPU", config)
        except Exception as exc:  # noqa: BLE001  (OpenVINO raises RuntimeError for bad files)
            raise rejected(path, FORMAT, exc) from None
        self.input_size = int(graph.inputs[0].get_partial_shape()[1].get_length())
        self.num_classes = int(graph.outputs[0].get_partial_shape()[-1].get_length())
        super().__init__(path, stored)

    def _run(self, batch):
        return self.compiled([batch])[0]


def load(path, precision: str = "float32") -> OpenVinoArtifact:
    return OpenVinoArtifact(path, precision)
