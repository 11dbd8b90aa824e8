"""The paper's recipe as Keras objects: loss, metric, schedule, and PaperRMSProp checked against a
NumPy reference on TensorFlow (one device and MirroredStrategy over 2 logical CPUs) and on JAX
(one device and DataParallel over 2 host devices)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from helpers import ROOT

import inception
from inception.training import (
    LinearWarmup,
    PaperRMSProp,
    SparseSmoothedCrossEntropy,
    TopKAccuracy,
    load_recipe,
    paper_schedule,
)


def test_smoothed_cross_entropy_is_keras_categorical_with_smoothing():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (6, 5)).astype("float32")
    labels = rng.integers(0, 5, 6)
    ours = SparseSmoothedCrossEntropy(0.1)(labels, logits)
    keras_ce = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)
    expected = keras_ce(keras.ops.one_hot(labels, 5), logits)
    np.testing.assert_allclose(float(ours), float(expected), rtol=1e-6)
    plain = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)
    np.testing.assert_allclose(float(SparseSmoothedCrossEntropy(0.0)(labels, logits)), plain,
                               rtol=1e-6)  # fmt: skip
    probs = keras.ops.softmax(logits)
    from_probs = SparseSmoothedCrossEntropy(0.1, from_logits=False)(labels, probs)
    np.testing.assert_allclose(float(from_probs), float(ours), rtol=1e-5)
    half = SparseSmoothedCrossEntropy(0.1)(labels[:, None], logits.astype("float16"))
    assert half.dtype == "float32" and abs(float(half) - float(ours)) < 0.01
    with pytest.raises(ValueError, match="label_smoothing"):
        SparseSmoothedCrossEntropy(1.0)


def test_top_k_accuracy_is_in_percent():
    metric = TopKAccuracy(2)
    metric.update_state([0, 1, 2, 0], [[0.9, 0.1, 0.0], [0.8, 0.15, 0.05], [0.1, 0.2, 0.7],
                                       [0.1, 0.3, 0.6]])  # fmt: skip
    assert metric.name == "top2" and float(metric.result()) == pytest.approx(75.0)


def test_paper_schedule_and_warmup():
    schedule = paper_schedule(0.36, decay_steps=10, decay_rate=0.94)
    lrs = [float(schedule(step)) for step in (0, 9, 10, 25)]
    np.testing.assert_allclose(lrs, [0.36, 0.36, 0.36 * 0.94, 0.36 * 0.94**2], rtol=1e-6)
    warm = paper_schedule(0.36, 10, 0.94, warmup_steps=4)
    assert isinstance(warm, LinearWarmup)
    np.testing.assert_allclose([float(warm(s)) for s in (0, 1, 3, 12)],
                               [0.09, 0.18, 0.36, 0.36 * 0.94], rtol=1e-6)  # fmt: skip
    again = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(warm))
    assert float(again(1)) == pytest.approx(0.18)


def test_recipe_compile_arguments_follow_the_model():
    recipe = load_recipe("paper")
    conv_bn = recipe.conv_bn()
    assert conv_bn.l2 == pytest.approx(2e-5) and conv_bn.momentum == 0.9997
    assert load_recipe("demo").conv_bn().momentum == 0.9
    schedule = recipe.schedule(global_batch_size=256, steps_per_epoch=100)
    assert float(schedule(0)) == pytest.approx(0.045 * 8) and schedule.decay_steps == 200
    aux = inception.build("inception_resnet_v1", input_shape=(107, 107, 3), classes=7,
                          classifier_activation=None, aux_logits=True)  # fmt: skip
    args = recipe.compile_arguments(aux, 64, 100)
    assert isinstance(args["optimizer"], PaperRMSProp)
    assert args["loss_weights"] == [1.0, 0.4] and len(args["loss"]) == 2
    assert [m.name for m in args["metrics"][0]] == ["top1", "top5"] and args["metrics"][1] == []
    plain = inception.build("inception_resnet_v1", input_shape=(75, 75, 3), classes=3,
                            classifier_activation=None)  # fmt: skip
    args = recipe.compile_arguments(plain, 64, 100)
    assert isinstance(args["loss"], SparseSmoothedCrossEntropy) and "loss_weights" not in args
    assert [m.k for m in args["metrics"]] == [1, 3]  # top-5 of 3 classes is top-3
    optimizer = args["optimizer"]
    config = optimizer.get_config()
    assert (config["rho"], config["momentum"], config["epsilon"]) == (0.9, 0.9, 1.0)
    assert (config["global_clipnorm"], config["ema_decay"]) == (2.0, 0.9999)
    assert PaperRMSProp.from_config(config).clip_norm == 2.0


def test_the_paper_recipe_is_stated_once():
    """recipes/paper.json is the one home of the paper's numbers: Recipe's defaults and those of
    the Keras objects read it."""
    import inspect

    from inception.training import Recipe
    from inception.training.paper import PAPER

    paper = load_recipe("paper")
    assert dataclasses.replace(paper, description="") == Recipe()
    assert {k: getattr(Recipe(), k) for k in PAPER if k != "description"} == {
        k: v for k, v in PAPER.items() if k != "description"
    }
    assert (paper.base_learning_rate, paper.lr_decay_rate, paper.ema_decay) == (0.045, 0.94, 0.9999)
    rms = PaperRMSProp()
    assert (rms.rho, rms.momentum, rms.epsilon) == (
        paper.rmsprop_rho,
        paper.rmsprop_momentum,
        paper.rmsprop_epsilon,
    )
    assert (rms.clip_norm, rms.ema_decay) == (paper.gradient_clip_norm, paper.ema_decay)
    assert float(rms.learning_rate) == pytest.approx(paper.base_learning_rate)
    assert SparseSmoothedCrossEntropy().label_smoothing == paper.label_smoothing
    default = inspect.signature(paper_schedule).parameters["decay_rate"].default
    assert default == paper.lr_decay_rate
    demo = load_recipe("demo")  # "base": "paper" and its own overrides
    assert (demo.batch_size, demo.bn_momentum, demo.rmsprop_epsilon) == (16, 0.9, 1.0)


def test_train_takes_the_inference_precision_names(tmp_path):
    """``precision=`` speaks auto|float32|bfloat16|float16; ``mixed_precision=`` and the former
    ``mixed_*`` names still work, with a DeprecationWarning."""
    from inception.errors import UsageError
    from inception.training.loop import _precision_argument

    assert _precision_argument("bfloat16", None) == "bfloat16"
    with pytest.warns(DeprecationWarning, match=r"mixed_precision=\) is deprecated"):
        assert _precision_argument("auto", "mixed_bfloat16") == "bfloat16"
    with pytest.warns(DeprecationWarning, match="'mixed_float16' is deprecated"):
        assert _precision_argument("mixed_float16", None) == "float16"
    with pytest.raises(UsageError, match="precision= only"):
        _precision_argument("float32", "mixed_bfloat16")
    with pytest.warns(DeprecationWarning, match="use precision="):
        with pytest.raises(UsageError):  # the warning comes first, the missing data after
            inception.train("inception_v4", str(tmp_path / "none"), tmp_path / "run", steps=1,
                            mixed_precision="mixed_float16", verbose=0)  # fmt: skip


# The NumPy reference: TensorFlow's RMSProp (ms from 1), global-norm clipping of the whole batch's
# gradient, slim's warmed-up moving average, on a linear softmax classifier whose gradient is
# known in closed form. The same script runs under every backend and distribution.
OPTIMIZER_CHECK = r"""
import json, os, sys
import numpy as np
import keras
from inception.training import PaperRMSProp, SparseSmoothedCrossEntropy

B, D, K, STEPS, LR, CLIP, SMOOTH, EMA = 4, 5, 3, 4, 0.1, 0.05, 0.1, 0.9999
rng = np.random.default_rng(0)
x = rng.normal(size=(B, D)).astype("float32")
y = np.array([0, 2, 1, 2], "int32")
w0 = rng.normal(0, 0.5, (D, K)).astype("float32")
b0 = rng.normal(0, 0.1, (K,)).astype("float32")

def reference():
    params = [w0.astype(np.float64), b0.astype(np.float64)]
    ms = [np.ones_like(p) for p in params]
    mom = [np.zeros_like(p) for p in params]
    avg = [p.copy() for p in params]
    target = np.eye(K)[y] * (1 - SMOOTH) + SMOOTH / K
    for t in range(STEPS):
        logits = x @ params[0] + params[1]
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        d = (p - target) / B
        grads = [x.T @ d, d.sum(0)]
        norm = np.sqrt(sum((g ** 2).sum() for g in grads))
        grads = [g * CLIP / max(norm, CLIP) for g in grads]
        decay = min(EMA, (1 + t) / (10 + t))
        for i, g in enumerate(grads):
            ms[i] = 0.9 * ms[i] + 0.1 * g * g
            mom[i] = 0.9 * mom[i] + LR * g / np.sqrt(ms[i] + 1.0)
            params[i] = params[i] - mom[i]
            avg[i] = decay * avg[i] + (1 - decay) * params[i]
    return avg, mom, norm

def run(scope):
    with scope:
        model = keras.Sequential([keras.Input((D,)), keras.layers.Dense(K)])
        model.set_weights([w0, b0])
        optimizer = PaperRMSProp(LR, global_clipnorm=CLIP, ema_decay=EMA)
        model.compile(optimizer=optimizer, loss=SparseSmoothedCrossEntropy(SMOOTH))
    model.fit(x, y, batch_size=B, epochs=STEPS, shuffle=False, verbose=0)
    avg, mom, norm = reference()
    got_avg = [np.asarray(v) for v in model.get_weights()]  # fit ends with the averages
    got_mom = [keras.ops.convert_to_numpy(v) for v in optimizer.momenta]
    return {
        "avg": max(float(np.abs(a - b).max()) for a, b in zip(got_avg, avg)),
        "mom": max(float(np.abs(a - b).max()) for a, b in zip(got_mom, mom)),
        "mom_size": float(np.abs(mom[0]).max()), "last_norm": float(norm),
        "iterations": int(keras.ops.convert_to_numpy(optimizer.iterations)),
    }

out = {}
if keras.backend.backend() == "tensorflow":
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    out["one"] = run(tf.distribute.OneDeviceStrategy("/cpu:0").scope())
    out["two"] = run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]).scope())
else:
    import contextlib
    out["one"] = run(contextlib.nullcontext())
    devices = keras.distribution.list_devices()
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    out["two"] = run(contextlib.nullcontext())
    out["devices"] = len(devices)
print("CHECK", json.dumps(out))
"""


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_paper_rmsprop_matches_reference_on_one_and_two_devices(backend):
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2",
           "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(ROOT),
           "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", OPTIMIZER_CHECK], env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.split("CHECK", 1)[1])
    if backend == "jax":
        assert out["devices"] == 2
    for name in ("one", "two"):
        # float32 against float64 over 4 steps; the clipping is active (the gradient's norm is
        # several times the clip norm), so clipping each replica's share instead of the global
        # gradient (Keras' own global_clipnorm under MirroredStrategy) would change the
        # momentum by about its own size (~1e-2), far above 1e-6.
        assert out[name]["last_norm"] > 3 * 0.05 and out[name]["mom_size"] > 1e-3
        assert out[name]["avg"] < 1e-6 and out[name]["mom"] < 1e-6, out
        assert out[name]["iterations"] == 4
