"""``inception convert`` and Keras parity: keras.applications.InceptionResNetV2 saved as h5 ->
``inception convert`` -> our model's logits equal keras' own."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import h5py  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import inception  # noqa: E402
from inception.cli import main  # noqa: E402
from inception.weights import convert_into, load_weights  # noqa: E402

SIZE = (75, 75, 3)


@pytest.fixture(scope="module")
def keras_reference(tmp_path_factory):
    """keras.applications.InceptionResNetV2 with random weights and BN statistics, saved as a
    legacy .h5 file; returns (path, model, inputs, logits)."""
    rng = np.random.default_rng(0)
    keras.backend.clear_session()  # auto names from conv2d, as in a file written by a fresh session
    ref = keras.applications.InceptionResNetV2(
        weights=None, input_shape=SIZE, classes=1000, classifier_activation=None
    )
    for layer in ref.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            beta, mean, var = layer.get_weights()
            new = [rng.uniform(-0.5, 0.5, beta.shape), rng.uniform(-0.5, 0.5, mean.shape)]
            layer.set_weights([*new, rng.uniform(0.5, 2.0, var.shape)])
    folder = tmp_path_factory.mktemp("keras")
    path = str(folder / "irv2.h5")
    ref.save(path)
    ref.save_weights(folder / "irv2.weights.h5")  # a Keras 3 weights file too
    x = rng.uniform(-1, 1, (2, *SIZE)).astype("float32")
    return path, x, ref.predict(x, verbose=0)


@pytest.fixture(scope="module")
def ours():
    return inception.build("inception_resnet_v2", input_shape=SIZE, classifier_activation=None)


def test_keras_h5_converts_to_equal_logits(keras_reference, ours, tmp_path, capsys):
    path, x, expected = keras_reference
    out = str(tmp_path / "irv2.weights.h5")
    assert main(["convert", path, "--model", "inception_resnet_v2", "--out", out]) == 0
    assert len(capsys.readouterr().out.splitlines()) <= 5  # a summary, not every tensor
    rc = main(["convert", path, "--model", "inception_resnet_v2", "--out", out, "--verbose"])
    printed = capsys.readouterr().out
    assert rc == 0
    assert "used 898 source tensors, skipped 0 on purpose." in printed
    assert "  used    block8_10_conv/kernel  ->  block8_10.Conv2d_1x1/kernel" in printed
    assert "  used    predictions/bias  ->  Logits.Logits/bias" in printed
    ours.load_weights(out)  # loads into the model as users build it
    logits = ours.predict(x, verbose=0)
    assert np.abs(logits - expected).max() <= 1e-4
    assert np.abs(expected).max() > 0.1  # a non-trivial comparison
    info = inception.models.info.read_info(out)  # the file says what it holds
    assert info.model == "inception_resnet_v2" and info.class_names[0] == "n01440764"


def test_keras3_weights_file_converts(keras_reference, tmp_path, capsys):
    """``model.save_weights`` of keras.applications' model (Keras 3 format) converts too."""
    path, x, expected = keras_reference
    keras3 = path.replace("irv2.h5", "irv2.weights.h5")
    out = str(tmp_path / "ours.weights.h5")
    assert main(["convert", keras3, "--model", "inception_resnet_v2", "--out", out]) == 0
    model = inception.build("inception_resnet_v2", input_shape=SIZE, weights=out,
                            classifier_activation=None)  # fmt: skip
    assert np.abs(model.predict(x, verbose=0) - expected).max() <= 1e-4
    wrong = ["convert", keras3, "--model", "inception_v4", "--out", out]
    assert main(wrong) == 2
    assert "does not fit this model" in capsys.readouterr().err


def test_keras_archive_loads_with_safe_mode(tmp_path):
    """weights="model.keras": loaded with safe_mode=True, copied layer by layer."""
    kw = dict(input_shape=SIZE, classes=3, classifier_activation=None)
    source = inception.build("inception_resnet_v1", **kw)
    archive = str(tmp_path / "v1.keras")
    source.save(archive)
    target = inception.build("inception_resnet_v1", **kw)
    x = np.random.default_rng(1).uniform(-1, 1, (2, *SIZE)).astype("float32")
    assert not np.allclose(target.predict(x, verbose=0), source.predict(x, verbose=0))
    load_weights(target, "inception_resnet_v1", archive, variant="paper")
    np.testing.assert_array_equal(target.predict(x, verbose=0), source.predict(x, verbose=0))


def text(x):
    return x.decode() if isinstance(x, bytes) else str(x)


def test_keras2_style_names_map_the_same(keras_reference, ours, tmp_path):
    """The downloadable keras file was written by Keras 2: auto names start at ``conv2d_1`` and
    weights end in ``:0``. Rewrite our h5 that way; the conversion must give the same weights."""
    path, x, expected = keras_reference
    legacy = tmp_path / "keras2.h5"
    with h5py.File(path, "r") as src, h5py.File(legacy, "w") as dst:
        group = src["model_weights"]
        names = [text(n) for n in group.attrs["layer_names"]]

        def rename(n):
            for prefix in ("conv2d", "batch_normalization"):
                if n == prefix:
                    return f"{prefix}_1"
                if n.startswith(prefix + "_") and n[len(prefix) + 1 :].isdigit():
                    return f"{prefix}_{int(n[len(prefix) + 1 :]) + 1}"
            return n

        dst.attrs["layer_names"] = [rename(n).encode() for n in names]
        for n in names:
            g = dst.create_group(rename(n))
            wnames = [text(w) for w in group[n].attrs["weight_names"]]
            new = [f"{rename(n)}/{w.split('/')[-1]}:0" for w in wnames]
            g.attrs["weight_names"] = [w.encode() for w in new]
            for w, nw in zip(wnames, new):
                g.create_dataset(nw, data=group[n][w][()])
    report = convert_into(ours, "inception_resnet_v2", str(legacy))
    assert "conv2d_1/kernel" in report.used and "conv2d/kernel" not in report.used
    assert np.abs(ours.predict(x, verbose=0) - expected).max() <= 1e-4


def test_convert_usage_errors_are_one_line(tmp_path, capsys):
    assert main(["convert", "x.ckpt", "--model", "inception_v4"]) == 2
    assert "convert needs SRC, --model and --out" in capsys.readouterr().err
    assert main(["convert", "x.ckpt", "--model", "inception_v4", "--out", "x.h5"]) == 2
    assert "--out must end with .weights.h5" in capsys.readouterr().err
    missing = str(tmp_path / "none.safetensors")
    assert main(["convert", missing, "--model", "inception_v4", "--out", "a.weights.h5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"checkpoint {missing!r} does not exist" in err
    bad = ["convert", "a.ckpt", "--model", "inception_v4", "--out", "a.weights.h5"]
    assert main([*bad, "--keras", "a.h5"]) == 2
    assert "--keras must end with .keras" in capsys.readouterr().err
    assert main([*bad, "--aux-logits", "--no-top"]) == 2
    assert "--aux-logits needs the classifier" in capsys.readouterr().err
    assert main(["convert", "--list"]) == 0
    listed = capsys.readouterr().out
    assert "* slim:inception_v4_2016_09_09" in listed  # defaults are marked
    assert (
        "slim:inception_resnet_v2_2016_08_30" in listed
        and "md5:9e0f18e1259acf943e30690460d96123" in listed
    )
