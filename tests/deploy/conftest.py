"""Fixtures of the deployment tests: a tiny classifier saved as ``.keras`` (its class names and
preprocessing inside) and its float32 exports in each format, written once per session."""

import numpy as np
import pytest
from helpers import colour_model

FORMATS = ("onnx", "litert", "openvino")
SIZE = 48


def run_cli(*argv) -> tuple[int, str, str]:
    """``inception ARGV`` in this process: (exit code, stdout, stderr) via capfd-free capture."""
    import contextlib
    import io

    from inception import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="session")
def colour_keras(tmp_path_factory):
    """``colour.keras``: ten classes c0..c9 (by the mean red level), 48 px, [-1, 1] input."""
    from inception.models.info import ModelInfo, save_model
    from inception.preprocessing import Preprocessing

    path = tmp_path_factory.mktemp("keras") / "colour.keras"
    info = ModelInfo(class_names=[f"c{i}" for i in range(10)],
                     preprocessing=Preprocessing(input_size=SIZE))  # fmt: skip
    save_model(colour_model(SIZE), path, info)
    return path


@pytest.fixture(scope="session")
def exported(colour_keras, tmp_path_factory):
    """``{format: path}`` of the float32 exports of ``colour.keras`` (default file name)."""
    paths = {}
    for fmt in FORMATS:
        out = tmp_path_factory.mktemp(fmt)
        code, stdout, stderr = run_cli("export", "--format", fmt, "--model", colour_keras,
                                       "--out", out, "--quiet")  # fmt: skip
        assert code == 0, stderr
        paths[fmt] = out / f"colour{ {'onnx': '.onnx', 'litert': '.tflite'}.get(fmt, '.xml') }"
        assert paths[fmt].is_file(), stdout
    return paths


@pytest.fixture(scope="session")
def pixels():
    """Eight random 48 x 48 images, float32 pixels in [0, 255]."""
    return np.random.default_rng(0).uniform(0, 255, (8, SIZE, SIZE, 3)).astype(np.float32)
