"""``inception predict``: files, walked folders and URLs (a local server), bad files skipped."""

import functools
import http.server
import json
import threading

import numpy as np
import pytest
from helpers import colour_model
from PIL import Image

from inception import cli
from inception.evaluation.predict import predict


def red_image(path, level):
    image = np.full((40, 50, 3), 90, np.uint8)
    image[..., 0] = level
    Image.fromarray(image).save(path)
    return path


@pytest.fixture
def images(tmp_path):
    """c5.png (red of class 5), folder/ with c2.png, a nested c7.png and a text file."""
    red_image(tmp_path / "c5.png", 20 + 20 * 5 + 5)
    folder = tmp_path / "folder"
    (folder / "nested").mkdir(parents=True)
    red_image(folder / "c2.png", 20 + 20 * 2 + 5)
    red_image(folder / "nested" / "c7.png", 20 + 20 * 7 + 5)
    (folder / "readme.txt").write_text("not an image")
    return tmp_path


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server(images):
    handler = functools.partial(Quiet, directory=str(images))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_predict_files_folders_and_urls_with_known_classes(images, server):
    names = [f"colour {i}" for i in range(10)]
    inputs = [images / "c5.png", images / "folder", f"{server}/c5.png", f"{server}/missing.png"]
    results = predict(inputs, colour_model(), top=3, class_names=names)
    by_input = {r["input"]: r for r in results}
    assert [r["input"] for r in results] == [
        str(images / "c5.png"),
        str(images / "folder" / "c2.png"),
        str(images / "folder" / "readme.txt"),
        str(images / "folder" / "nested" / "c7.png"),
        f"{server}/c5.png",
        f"{server}/missing.png",
    ]
    top = [p["label"] for p in by_input[str(images / "c5.png")]["predictions"]]
    assert top == [5, 6, 4]  # red R_5 + 5: nearest centres 5, then 6, then 4
    assert by_input[str(images / "c5.png")]["predictions"][0]["class"] == "colour 5"
    assert by_input[str(images / "folder" / "c2.png")]["predictions"][0]["label"] == 2
    assert by_input[str(images / "folder" / "nested" / "c7.png")]["predictions"][0]["label"] == 7
    assert (
        by_input[f"{server}/c5.png"]["predictions"]
        == by_input[str(images / "c5.png")]["predictions"]
    )
    assert by_input[str(images / "folder" / "readme.txt")]["error"] == "not a readable image"
    assert "cannot fetch URL" in by_input[f"{server}/missing.png"]["error"]
    probs = [p["probability"] for p in by_input[str(images / "c5.png")]["predictions"]]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6


def test_predict_ensemble_aligns_a_background_column(images):
    slim = colour_model(background=2.0)
    results = predict([images / "c5.png"], [slim, colour_model()], top=2)  # a 2-model ensemble
    assert [p["label"] for p in results[0]["predictions"]] == [5, 6]
    assert results[0]["predictions"][0]["class"] == "class_5"  # 10 classes: no ImageNet names
    (result,) = predict([images / "c5.png"], slim, top=2)  # alone: its 11 classes are kept
    assert [p["label"] for p in result["predictions"]] == [0, 6]  # background first, then 5


def test_predict_cli_with_a_random_inception_model(images, capsys):
    argv = ["predict", str(images / "folder"), str(images / "c5.png"), "--model"]
    argv += ["inception_resnet_v1", "--weights", "none", "--image-size", "75", "--top", "3"]
    assert cli.main(argv + ["--json"]) == 0
    captured = capsys.readouterr()
    results = json.loads(captured.out)
    assert len(results) == 4 and sum("error" in r for r in results) == 1
    good = [r for r in results if "predictions" in r]
    assert all(len(r["predictions"]) == 3 for r in good)
    assert all(
        p["class"] in __import__("inception").class_names(1000) for p in good[0]["predictions"]
    )
    assert "skipped" in captured.err and "readme.txt" in captured.err


def test_predict_cli_errors(tmp_path, capsys):
    (tmp_path / "a.txt").write_text("text")
    code = cli.main(["predict", str(tmp_path / "a.txt"), "--model", "inception_resnet_v1",
                     "--weights", "none", "--image-size", "75"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "none of the inputs is a readable image" in err
    image = red_image(tmp_path / "b.png", 10)
    code = cli.main(["predict", str(image), "--model", "inception_v9"])
    assert code == 2 and "unknown model 'inception_v9'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--top-k must be at least 1"):
        predict([tmp_path / "a.txt"], colour_model(), top=0)
