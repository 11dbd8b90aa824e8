"""`.keras` round trips without custom_objects, and the models build and run under JAX."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import inception


def test_keras_round_trip(tmp_path):
    model = inception.build("inception_resnet_v1", input_shape=(75, 75, 3), classes=7)
    x = np.random.default_rng(0).uniform(-1, 1, (2, 75, 75, 3)).astype("float32")
    path = tmp_path / "irv1.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)  # no custom_objects
    assert loaded.get_layer("block17_4.Scale").scale == 0.10
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(model(x)))


PLAIN_KERAS = textwrap.dedent(
    """
    import sys, keras, numpy as np
    model = keras.saving.load_model(sys.argv[1])
    assert "inception" not in sys.modules, "the file needed the inception package"
    print(float(np.asarray(model(np.zeros((1, 75, 75, 3), "float32"))).sum()))
    """
)


@pytest.mark.parametrize("name", ["inception_resnet_v1", "inception_resnet_v2", "inception_v4"])
def test_single_models_load_with_plain_keras(name, tmp_path):
    """A fresh process that never imports inception loads the .keras file."""
    model = inception.build(name, input_shape=(75, 75, 3), classes=3)
    path = inception.save_model(model, tmp_path / "m.keras")
    proc = subprocess.run(
        [sys.executable, "-c", PLAIN_KERAS, str(path)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert abs(float(proc.stdout.strip().splitlines()[-1]) - 1.0) < 1e-4


def test_weights_h5_round_trip_through_builder(tmp_path):
    model = inception.build("inception_v4", input_shape=(75, 75, 3), classes=4)
    path = tmp_path / "v4.weights.h5"
    model.save_weights(path)
    again = inception.build("inception_v4", input_shape=(75, 75, 3), classes=4, weights=str(path))
    for a, b in zip(model.weights, again.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# Inception-ResNet-v1 is built and run under JAX by the JAX training, evaluation and resume tests
# (tests/training/test_train_jax.py, test_train_distributed.py, tests/evaluation/test_eval.py);
# the other two networks only here (a JAX build of one takes about 25 s on 2 cores).
JAX_ONLY_HERE = ["inception_resnet_v2", "inception_v4"]

JAX_SCRIPT = textwrap.dedent(
    """
    import json, keras, numpy as np, inception
    JAX_ONLY_HERE = NAMES
    out = {"backend": keras.backend.backend()}
    x = np.random.default_rng(0).uniform(-1, 1, (1, 75, 75, 3)).astype("float32")
    for name in JAX_ONLY_HERE:
        model = inception.build(name, input_shape=(75, 75, 3), classes=5)
        y = np.asarray(model(x, training=False))  # eager: predict's compilation is tested
        # on JAX by test_eval.py::test_eval_and_predict_run_under_jax
        out[name] = [list(y.shape), float(y.sum())]
    print(json.dumps(out))
    """
).replace("NAMES", repr(JAX_ONLY_HERE))


@pytest.mark.slow  # Keras builds these graphs slowly under JAX: about a minute on 2 cores
def test_jax_backend_forward_pass():
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run(
        [sys.executable, "-c", JAX_SCRIPT], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["backend"] == "jax"
    for name in JAX_ONLY_HERE:
        shape, total = out[name]
        assert shape == [1, 5]
        assert abs(total - 1.0) < 1e-4  # softmax over the 5 classes
