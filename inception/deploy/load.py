"""Loading an exported file in its own runtime, by its suffix."""

from __future__ import annotations

import os

from ..errors import UsageError
from .artifact import Artifact, format_of
from .litert_file import load as load_litert
from .onnx_file import load as load_onnx
from .openvino_file import load as load_openvino


def load_artifact(path, image_size=None) -> Artifact:
    """An ``.onnx``, ``.tflite`` or OpenVINO ``.xml`` file, loaded in its own runtime."""
    path = os.fspath(path)
    fmt = format_of(path)
    if fmt is None:
        raise UsageError(f"{path} is not an exported model (.onnx, .tflite or .xml).")
    if not os.path.isfile(path):
        raise UsageError(f"model file {path!r} does not exist.")
    load = {"onnx": load_onnx, "litert": load_litert, "openvino": load_openvino}[fmt]
    artifact = load(path)
    if image_size and int(image_size) != artifact.input_size:
        raise UsageError(
            f"{artifact.name} takes {artifact.input_size}x{artifact.input_size} images; drop "
            f"--image-size {image_size}."
        )
    return artifact
