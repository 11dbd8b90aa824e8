"""``inception plot``: a training run's curves and the model zoo as PNG files."""

import json

import numpy as np
import pytest
from PIL import Image

from inception import cli


def write_run(folder, steps=40, every=10):
    folder.mkdir()
    lines = []
    for step in range(1, steps + 1):
        lines.append({"step": step, "loss": 2.0 / step, "top1": min(100, 2.5 * step),
                      "top5": min(100, 5.0 * step), "lr": 0.1 * 0.94 ** (step // 10),
                      "images_per_sec": 30.0, "time": 1e9 + step})  # fmt: skip
        if step % every == 0:
            lines.append({"step": step, "val_loss": 2.5 / step, "val_top1": 2.0 * step,
                          "val_top5": 4.0 * step})  # fmt: skip
    text = "\n".join(json.dumps(r) for r in lines) + '\n{"step": 41, "loss": 0.0'  # a cut line
    (folder / "metrics.jsonl").write_text(text)
    return folder


def test_plot_of_a_training_run(tmp_path, capsys):
    run = write_run(tmp_path / "run")
    assert cli.main(["plot", str(run)]) == 0
    assert f"wrote {run / 'training.png'}" in capsys.readouterr().out
    picture = np.asarray(Image.open(run / "training.png").convert("L"))
    assert picture.shape[1] > 1000 and picture.std() > 10  # three panels, not a blank image
    out = tmp_path / "other.png"
    assert cli.main(["plot", str(run), "--out", str(out)]) == 0 and out.stat().st_size > 10_000


@pytest.mark.parametrize(
    "args, message",
    [
        (["{tmp}/none"], "is not a folder"),
        (["{tmp}/empty"], "metrics.jsonl does not exist"),
        (["{tmp}/run", "--zoo"], "give a training run folder"),
        ([], "give a training run folder"),
        (["{tmp}/run", "--out", "x.jpg"], "--out must be a .png"),
    ],
)
def test_plot_bad_input(tmp_path, capsys, args, message):
    write_run(tmp_path / "run")
    (tmp_path / "empty").mkdir()
    assert cli.main(["plot", *(a.format(tmp=tmp_path) for a in args)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_plot_of_the_zoo(tmp_path):
    out = tmp_path / "zoo.png"
    assert cli.main(["plot", "--zoo", "--out", str(out)]) == 0
    picture = np.asarray(Image.open(out).convert("L"))
    assert picture.std() > 10
