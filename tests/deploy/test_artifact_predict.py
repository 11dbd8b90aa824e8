"""``inception predict`` and ``eval`` on exported files: the same answers, in the same form, as
on the Keras model; and every bad input is one sentence, not a traceback."""

import json
import sys

import numpy as np
import pytest
from conftest import FORMATS, run_cli
from helpers import write_colour_folder

import inception


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_colour_folder(tmp_path_factory.mktemp("colours"))


@pytest.fixture(scope="module")
def keras_answers(colour_keras, folder):
    return inception.predict(colour_keras, folder), inception.evaluate(colour_keras, folder)


def same_predictions(got, expected):
    assert [r["input"] for r in got] == [r["input"] for r in expected]
    for g, e in zip(got, expected):
        assert [p["class"] for p in g["predictions"]] == [p["class"] for p in e["predictions"]]
        probabilities = [[p["probability"] for p in r["predictions"]] for r in (g, e)]
        assert np.allclose(*probabilities, atol=1e-4)


@pytest.mark.parametrize("fmt", FORMATS)
def test_predict_and_eval_on_an_export_equal_the_keras_model(fmt, exported, folder, keras_answers):
    predictions, accuracy = keras_answers
    same_predictions(inception.predict(str(exported[fmt]), folder), predictions)
    got = inception.evaluate(str(exported[fmt]), folder)
    assert (got["models"][0]["top1"], got["models"][0]["top5"]) == (
        accuracy["models"][0]["top1"], accuracy["models"][0]["top5"])  # fmt: skip
    assert got["models"][0]["top1"] == 40.0 and got["precision"] == "as exported"


def test_the_commands_print_the_same_for_an_export(exported, colour_keras, folder):
    runs = [run_cli("predict", folder, "--model", m, "--json", "--top-k", "3")
            for m in (colour_keras, exported["onnx"])]  # fmt: skip
    assert all(code == 0 for code, _, _ in runs)
    same_predictions(*(json.loads(out) for _, out, _ in runs))
    tables = [run_cli("eval", "--model", m, "--data", folder, "--quiet")[1].splitlines()
              for m in (colour_keras, exported["litert"])]  # fmt: skip
    assert [t[2].split()[1:] for t in tables][0] == [t[2].split()[1:] for t in tables][1]
    assert "40.00%" in tables[1][2]


def test_an_export_and_a_keras_model_make_an_ensemble(exported, colour_keras, folder):
    got = inception.evaluate([colour_keras, str(exported["openvino"])], folder)
    assert got["ensemble"]["top1"] == got["models"][1]["top1"] == 40.0


def one_error(argv, expected: str):
    code, out, err = run_cli(*argv)
    assert code == 2 and "Traceback" not in err, err
    (line,) = err.strip().splitlines()[-1:]
    assert expected in line, line
    return line


def test_bad_input_is_one_sentence(exported, colour_keras, folder, tmp_path):
    export = ["export", "--model", colour_keras, "--out", tmp_path]
    one_error([*export, "--format", "onnx", "--version", "2"], "--version: for SavedModels only")
    one_error([*export, "--format", "onnx", "--precision", "bfloat16"], "onnx files are float32")
    one_error([*export, "--format", "litert", "--quantize", "int8"], "needs --calibration-data")
    one_error([*export, "--format", "litert", "--calibration-data", folder], "is for --quantize")
    one_error([*export, "--name", "m", "--version", "1", "--quantize", "int8"], "not SavedModels")
    one_error([*export, "--format", "onnx", "--model", exported["onnx"]], "already an exported")
    empty = tmp_path / "empty"
    (empty / "a").mkdir(parents=True)
    (empty / "a" / "x.txt").write_text("not an image")
    for folder_, said in ((empty, "holds no readable image"), (tmp_path / "nope", "not a folder")):
        one_error([*export, "--format", "openvino", "--quantize", "int8",
                   "--calibration-data", folder_], said)  # fmt: skip
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    one_error(["predict", folder, "--model", broken], "is not a valid onnx model")
    one_error(["predict", folder, "--model", tmp_path / "missing.tflite"], "does not exist")
    one_error(["eval", "--model", exported["litert"], "--data", folder, "--precision",
               "bfloat16"], "runs as it was exported")  # fmt: skip
    one_error(["predict", folder, "--model", exported["onnx"], "--image-size", "64"],
              "takes 48x48 images")  # fmt: skip
    assert not list(tmp_path.glob("colour.*"))  # nothing was written by a refused export


def test_a_missing_extra_is_named(colour_keras, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # import fails as if not installed
    line = one_error(["export", "--format", "onnx", "--model", colour_keras, "--out", tmp_path],
                     "pip install 'inception[onnx]'")  # fmt: skip
    assert "tf2onnx" in line


def test_convert_format_is_renamed_from(capsys):
    from inception.cli import convert

    args = convert.parser().parse_args(["src", "--format", "timm"])
    assert args.source_format == "timm" and "--from" in capsys.readouterr().err
