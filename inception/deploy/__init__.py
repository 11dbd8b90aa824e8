"""Deployment beyond TensorFlow Serving: ONNX (ONNX Runtime), LiteRT (``.tflite``) and OpenVINO
files on one contract (``artifact``), written by ``inception export --format`` (``export``)
and run by ``inception predict`` / ``eval`` in their own runtimes (``load_artifact``).

One module per format (``onnx_file``, ``litert_file``, ``openvino_file``); each imports its
runtime only when used and names the extra that installs it when missing
(``pip install 'inception[onnx]'``, ``[litert]``, ``[openvino]``).
"""

from .artifact import FORMATS, LABELS_FILE, SUFFIXES, Artifact, format_of
from .load import load_artifact

__all__ = ["FORMATS", "LABELS_FILE", "SUFFIXES", "Artifact", "format_of", "load_artifact"]
