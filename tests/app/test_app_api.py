"""The Python API of the operations: ``inception.evaluate``, ``predict``, ``export`` and
``convert`` take one model spec (a registered name with ``weights=``, a ``.keras`` path, a built
model, or a list of those) and refuse a bad one before anything is built or read."""

import numpy as np
import pytest
from helpers import CASES, colour_model, write_colour_folder
from PIL import Image
from weights_fixtures import SPECS, random_tensors

import inception
from inception.models.info import read_info

NAMES = [f"colour {i}" for i in range(10)]
CALLS = {
    "evaluate": lambda spec, tmp, **kw: inception.evaluate(spec, str(tmp), **kw),
    "predict": lambda spec, tmp, **kw: inception.predict(spec, str(tmp / "x.png"), **kw),
    "export": lambda spec, tmp, **kw: inception.export(spec, tmp / "models", name="m", **kw),
    "convert": lambda spec, tmp, **kw: inception.convert(spec, tmp / "m.keras", **kw),
}


@pytest.mark.parametrize("operation", CALLS)
@pytest.mark.parametrize(
    "spec, weights, error, message",
    [
        (42, "imagenet", TypeError, "models must be a registered model name"),
        ([None], "imagenet", TypeError, "each model must be a registered name"),
        ("no_such_net", "imagenet", ValueError, "unknown model 'no_such_net'"),
        ([], "imagenet", ValueError, "no model given"),
        ("missing.keras", "imagenet", FileNotFoundError, "missing.keras"),
        ("inception_v4", 3, TypeError, "weights must be 'imagenet'"),
        ("inception_v4,inception_v4", ["none"] * 3, ValueError, "got 3 weights values for 2"),
    ],
)
def test_a_bad_spec_fails_first_with_one_clear_error(
    operation, spec, weights, error, message, tmp_path
):
    with pytest.raises(error, match=message):
        CALLS[operation](spec, tmp_path, weights=weights)
    assert list(tmp_path.iterdir()) == []  # nothing was read, built or written


def test_evaluate_and_predict_take_a_built_model(tmp_path):
    data = write_colour_folder(tmp_path / "data")
    (row,) = inception.evaluate(colour_model(), str(data), progress=False)["models"]
    assert row["num_images"] == len(CASES) and row["top1"] == pytest.approx(40.0)

    image = np.full((40, 50, 3), 90, np.uint8)
    image[..., 0] = 20 + 20 * 6 + 5
    Image.fromarray(image).save(tmp_path / "c6.png")
    (result,) = inception.predict(colour_model(), tmp_path / "c6.png", top=2, class_names=NAMES)
    assert [p["class"] for p in result["predictions"]] == ["colour 6", "colour 7"]


def test_export_takes_an_ensemble_of_built_models(tmp_path):
    members = [colour_model(name="a"), colour_model(name="b")]
    path = inception.export(
        members, tmp_path / "models", name="pair", version=3, class_names=NAMES,
        ensemble_weights=[1, 3], precision=None, warmup=False,
    )  # fmt: skip
    assert path == tmp_path / "models" / "pair" / "3"
    assert (path / "saved_model.pb").is_file()


def test_convert_a_source_checkpoint_named_by_model_and_weights(tmp_path):
    from safetensors.numpy import save_file

    tensors = random_tensors(SPECS["inception_v4"]().timm, seed=3)
    source = tmp_path / "timm_v4.safetensors"
    save_file(tensors, str(source))
    out = inception.convert("inception_v4", tmp_path / "v4.weights.h5", weights=source,
                            image_size=75)  # fmt: skip
    info = read_info(out)  # the record written with the weights (no second build)
    assert info.weights == str(source) and info.model == "inception_v4"
    assert len(info.class_names) == 1000 and info.preprocessing.input_size == 75


def test_convert_a_list_into_one_ensemble_file(tmp_path):
    with pytest.raises(ValueError, match="in a .keras file"):
        inception.convert([colour_model(), colour_model()], tmp_path / "pair.weights.h5")
    out = inception.convert([colour_model(), colour_model()], tmp_path / "pair.keras",
                            ensemble_weights=[1, 1])  # fmt: skip
    loaded = inception.load_model(out)
    assert isinstance(loaded, inception.Ensemble) and len(loaded.members) == 2
    x = np.random.default_rng(0).uniform(0, 255, (2, 48, 48, 3)).astype("float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0).sum(-1), 1.0, rtol=1e-5)
