"""``inception.demo.evaluate.run``: the ``make demo`` step on a small saved model."""

import numpy as np
import pytest
from helpers import CASES
from helpers import write_colour_folder as write_folder

import inception
from inception.demo import evaluate as demo


def test_demo_evaluates_the_trained_model_and_its_ensemble(tmp_path, capsys):
    data = write_folder(tmp_path / "data", CASES[:5])
    model = inception.build("inception_resnet_v1", input_shape=(75, 75, 3), classes=10)
    names = [f"c{i}" for i in range(10)]
    info = inception.model_info(model).replace(class_names=names)
    inception.save_model(model, tmp_path / "model.keras", info)  # the record: names, 75 px
    model.save_weights(tmp_path / "model.weights.h5")  # no record: sized by the .keras one
    trained = dict(
        data_dir=str(data), model="inception_resnet_v1", image_size=75, num_classes=10,
        class_names=[f"c{i}" for i in range(10)], weights=str(tmp_path / "model.weights.h5"),
        keras_model=str(tmp_path / "model.keras"),
    )  # fmt: skip
    result = demo.run(tmp_path / "work", trained)
    one, ens = result["1_crop"], result["12_crops"]
    assert one["num_images"] == ens["num_images"] == 5 and ens["crops"] == 12
    # the saved model and the one rebuilt from its weights agree, and so does their ensemble
    top1 = [m["top1"] for m in ens["models"]] + [ens["ensemble"]["top1"]]
    assert np.ptp(top1) == 0 and 0 <= one["models"][0]["top1"] <= 100
    assert len(result["predictions"]) == 2
    assert all(p["predictions"][0]["class"] in names for p in result["predictions"])
    # Ensemble([saved, rebuilt]) of one model answers as the model (scaled once, not twice)
    for p, q in zip(result["predictions"], result["member_predictions"]):
        got = {x["class"]: x["probability"] for x in p["predictions"]}
        for x in q["predictions"]:
            assert got[x["class"]] == pytest.approx(x["probability"], abs=1e-5)
    printed = capsys.readouterr().out
    assert "ensemble (saved + rebuilt)" in printed and "12 crops at 75px" in printed
