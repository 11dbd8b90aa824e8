"""``inception finetune``: a small "pretrained" Inception-ResNet-v1 (75 px, task A's classes)
fine-tuned on a different generated task B, killed with SIGKILL in the
whole-network phase on TensorFlow and in the head phase on JAX over 2 devices, then resumed; the
checkpoints show where the backbone started, that the head phase leaves it (BatchNorm statistics
included) as it was and that the second phase moves it. Also: the head kept by class name, the
recipe's optimizers freezing and unfreezing layers on both backends, MixUp and CutMix (the train
map, the loss and accuracy on soft targets, a fit on a mixed batch on both backends), and bad
input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import keras
import numpy as np
import pytest
import shallow
from helpers import ROOT, randomize_batchnorm
from helpers import write_class_folder as write_folder
from shallow import MODEL, shallow_network  # noqa: F401  (autouse: the shallow network)

import inception
from inception.cli import main as cli_main
from inception.preprocessing.mix import mix_batch
from inception.training import load_finetune_recipe
from inception.training.checkpoints import Checkpoints
from inception.training.finetune import _train_map, _transfer
from inception.training.finetune_recipe import HEAD, block_of, finetune_schedule
from inception.training.objectives import SparseSmoothedCrossEntropy, TopKAccuracy

TASK_A, TASK_B = ("a0", "a1", "a2"), ("x", "y")
ENV = shallow.env({**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "",
                   "KERAS_BACKEND": "tensorflow", "PYTHONPATH": str(ROOT)})  # fmt: skip


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    """Folders of tasks A and B (B with a corrupt file) and a "pretrained" model of task A's
    classes whose weights and BN statistics are none of the initial ones (random, saved with
    its record: training one here would add a minute of compiling to the 4 the suite allows)."""
    root = tmp_path_factory.mktemp("finetune")
    for split, n in (("train", 4), ("validation", 2)):
        write_folder(root / "A" / split, classes=TASK_A, per_class=n, seed=1)
        write_folder(root / "B" / split, classes=TASK_B, per_class=n, seed=2)
    (root / "B" / "train" / "x" / "broken.jpg").write_bytes(b"\xff\xd8\xff not a JPEG")
    model = randomize_batchnorm(inception.build(MODEL, input_shape=(75, 75, 3), classes=3))
    info = inception.model_info(model).replace(class_names=TASK_A, weights="task A")
    path = inception.save_model(model, root / "A.keras", info)
    return root, Path(path)


def kill_at_checkpoint(cmd, model_dir, step, env):
    """Runs ``cmd`` and kills it with SIGKILL as soon as checkpoint ``step`` exists; returns the
    newest checkpoint's step and the time of the kill."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    target, deadline = model_dir / "checkpoints" / f"ckpt-{step}.weights.h5", time.time() + 600
    try:
        while time.time() < deadline and not target.exists():
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    return Checkpoints(model_dir / "checkpoints").steps()[-1], time.time()


def command(model, data, model_dir, steps, head_steps, every=1):
    return shallow.cli("finetune", "--model", str(model), "--data", str(data), "--model-dir",
                       str(model_dir), "--steps", str(steps), "--head-steps", str(head_steps),
                       "--batch-size", "4", "--checkpoint-every", str(every),
                       "--keep-checkpoints", "20", "--seed", "0", "--quiet")  # fmt: skip


def resume(cmd, env, model_dir, saved, killed_at, total):
    """Reruns ``cmd``; checks it resumed at ``saved`` and logged each step once, on the
    recipe's schedule (the learning rate of every step as one uninterrupted run has it)."""
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    summary = json.loads(rerun.stdout.strip().splitlines()[-1])
    assert summary["steps"] == total and summary["resumed_from"] == saved and saved < total
    records = [json.loads(x) for x in (model_dir / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if "loss" in r]
    assert [r["step"] for r in train] == list(range(1, total + 1))
    assert all((r["time"] < killed_at) == (r["step"] <= saved) for r in train)
    recipe = load_finetune_recipe("finetune")
    schedule = finetune_schedule(recipe.learning_rate(4), total,
                                 round(recipe.warmup_fraction * total))  # fmt: skip
    expected = [float(keras.ops.convert_to_numpy(schedule(s - 1))) for s in range(1, total + 1)]
    np.testing.assert_allclose([r["lr"] for r in train], expected, rtol=1e-6)
    return summary


def checkpoint_weights(model_dir, steps):
    """``{step: {layer name: [arrays]}}`` of the run's checkpoints, read into the network the
    run trains (compiled with the recipe, so the optimizer's variables load too)."""
    recipe = load_finetune_recipe("finetune")
    net = inception.build(MODEL, input_shape=(75, 75, 3), classes=len(TASK_B),
                          classifier_activation=None, conv_bn=recipe.conv_bn())  # fmt: skip
    net.compile(**recipe.compile_arguments(net, 4, 2, total_steps=4))
    checkpoints = Checkpoints(model_dir / "checkpoints")
    out = {}
    for step in steps:
        assert checkpoints.restore(net, checkpoints.path(step)) == step  # the optimizer's count
        out[step] = {ly.name: [np.array(w) for w in ly.get_weights()] for ly in net.layers}
    return out


def backbone_of(weights: dict) -> dict:
    return {k: v for k, v in weights.items() if v and block_of(k) != HEAD}


def same(a: dict, b: dict, part: str) -> bool:
    """Whether the weights named ``part`` (``kernel``, ``moving_mean``...) are equal in a and b."""
    index = {"kernel": 0, "moving_mean": 2}[part]
    keys = [k for k in a if k.endswith(".BatchNorm") == (part != "kernel") and len(a[k]) > index]
    assert len(keys) > 20
    return all(np.array_equal(a[k][index], b[k][index]) for k in keys)


@pytest.mark.slow
def test_two_phases_resume_in_the_second_phase_on_tensorflow(tasks, tmp_path):
    root, pretrained = tasks
    run = tmp_path / "run"
    cmd = command(pretrained, root / "B", run, steps=8, head_steps=3, every=2)
    saved, killed_at = kill_at_checkpoint(cmd, run, 4, ENV)
    assert saved >= 4  # killed in the second phase
    summary = resume(cmd, ENV, run, saved, killed_at, 8)
    assert summary["head"] == "new" and summary["head_steps"] == 3
    # A phase boundary off the checkpoint grid is saved too; the grid goes on after it.
    assert Checkpoints(run / "checkpoints").steps() == [2, 3, 4, 6, 8]
    assert summary["best_step"] == json.loads((run / "best.json").read_text())["step"]
    # The backbone starts from A's weights; the head phase leaves every weight and BN statistic
    # below the head as it was; the second phase moves them.
    a = {ly.name: ly.get_weights() for ly in inception.load_model(pretrained).layers}
    ckpt = checkpoint_weights(run, [2, 3, 6])
    for step in (2, 3):
        assert same(backbone_of(ckpt[step]), a, "kernel"), step
        assert same(backbone_of(ckpt[step]), a, "moving_mean"), step
    assert not np.array_equal(ckpt[2]["Logits.Logits"][0], ckpt[3]["Logits.Logits"][0])
    assert not same(backbone_of(ckpt[6]), a, "kernel")
    assert not same(backbone_of(ckpt[6]), a, "moving_mean")
    # A normal run directory: the model has B's classes; the corrupt file was skipped, listed.
    model = inception.load_model(run / "model.keras")
    info = inception.model_info(model)
    assert info.class_names == TASK_B and model.outputs[0].shape[-1] == 2
    assert str(pretrained) in info.weights and f"step {summary['best_step']}" in info.weights
    assert (run / "skipped_files.txt").read_text().strip().endswith("broken.jpg")
    assert json.loads((run / "eval.json").read_text())["num_images"] == 4


@pytest.mark.slow
def test_resume_in_the_head_phase_on_jax_two_devices(tasks, tmp_path_factory, tmp_path):
    root, pretrained = tasks
    cache = tmp_path_factory.getbasetemp() / "jax-compilation-cache"
    env = {**ENV, "KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
           "JAX_COMPILATION_CACHE_DIR": str(cache),
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}  # fmt: skip
    run = tmp_path / "run"
    cmd = command(pretrained, root / "B", run, steps=4, head_steps=2)
    cmd += ["--validate-every", "0", "--no-eval"]  # (validation and evaluation: on TensorFlow)
    saved, killed_at = kill_at_checkpoint(cmd, run, 1, env)
    assert saved < 2  # killed in the head phase
    summary = resume(cmd, env, run, saved, killed_at, 4)
    assert (summary["backend"], summary["replicas"]) == ("jax", 2)
    config = json.loads((run / "config.json").read_text())
    assert config["strategy"] == "DataParallel" and config["class_names"] == list(TASK_B)
    assert summary["best_step"] == 4  # no validation: the last step's weights
    a = {ly.name: ly.get_weights() for ly in inception.load_model(pretrained).layers}
    ckpt = checkpoint_weights(run, [2, 4])  # JAX's checkpoints, read on TensorFlow
    assert same(backbone_of(ckpt[2]), a, "kernel") and same(backbone_of(ckpt[2]), a, "moving_mean")
    assert not same(backbone_of(ckpt[4]), a, "kernel")


def test_head_kept_by_class_name_at_another_size(tasks):
    """A model that classifies the data's classes keeps its head, columns mapped by name; the
    network is rebuilt at another input size with the same weights."""
    _, pretrained = tasks
    source = inception.load_model(pretrained)
    order = list(reversed(TASK_A))
    net = inception.build(MODEL, input_shape=(107, 107, 3), classes=3)
    assert _transfer(source, net, order) is True
    kernel, bias = source.get_layer("Logits.Logits").get_weights()
    np.testing.assert_array_equal(net.get_layer("Logits.Logits").get_weights()[0], kernel[:, ::-1])
    np.testing.assert_array_equal(net.get_layer("Logits.Logits").get_weights()[1], bias[::-1])
    for name in ("Conv2d_1a_3x3", "block8_1.Conv2d_1x1", "Conv2d_4b_3x3.BatchNorm"):
        for ours, theirs in zip(net.get_layer(name).get_weights(),
                                source.get_layer(name).get_weights()):  # fmt: skip
            np.testing.assert_array_equal(ours, theirs)
    other = inception.build(MODEL, input_shape=(75, 75, 3), classes=2)
    before = other.get_layer("Logits.Logits").get_weights()[0].copy()
    assert _transfer(source, other, list(TASK_B)) is False  # other classes: a new head
    np.testing.assert_array_equal(other.get_layer("Logits.Logits").get_weights()[0], before)


# The recipe's optimizer on a small network: the head alone, then everything, with ONE optimizer
# (its step counter and slots go on); frozen variables and BN statistics do not move; the
# backbone's learning rate is the recipe's multiplier of the head's. Runs as is on either backend.
KERAS_WAY = """
import json, keras, numpy as np
from inception.training import load_finetune_recipe
from inception.training import set_phase
recipe = load_finetune_recipe("finetune", layer_decay=0.5, warmup_fraction=0.0)
inputs = keras.Input((8, 8, 3))
x = keras.layers.Conv2D(4, 3, name="Conv2d_1a")(inputs)
x = keras.layers.BatchNormalization(name="Conv2d_1a.BatchNorm")(x)
x = keras.layers.Conv2D(4, 3, name="Mixed_5a")(x)
backbone = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x), name="backbone")
model = keras.Sequential([backbone, keras.layers.Dense(3, name="Logits.Logits")])  # as the docs
model.compile(**recipe.compile_arguments(model, 8, 2, total_steps=8))
optimizer = model.optimizer
rng = np.random.default_rng(0)
x, y = rng.normal(size=(16, 8, 8, 3)).astype("float32"), rng.integers(0, 3, 16)
frozen = [np.array(w) for w in backbone.get_layer("Conv2d_1a.BatchNorm").weights]
set_phase(model, whole=False)
head = np.array(model.get_layer("Logits.Logits").kernel)
model.fit(x, y, batch_size=8, epochs=1, verbose=0)
after = [np.array(w) for w in backbone.get_layer("Conv2d_1a.BatchNorm").weights]
out = {"head_phase_moves_bn": any(not np.array_equal(a, b) for a, b in zip(frozen, after)),
       "head_moves": not np.array_equal(head, np.array(model.get_layer("Logits.Logits").kernel)),
       "iterations_1": int(optimizer.iterations.numpy())}
set_phase(model, whole=True)
model.fit(x, y, batch_size=8, epochs=1, verbose=0)
out["iterations_2"] = int(optimizer.iterations.numpy())
out["same_optimizer"] = model.optimizer is optimizer
out["multipliers"] = optimizer.learning_rate_multipliers
out["bn_moves"] = not np.array_equal(
    np.array(backbone.get_layer("Conv2d_1a.BatchNorm").moving_mean), frozen[2])
# a MixUp batch as the train map makes it (soft targets, class weights as sample weights): a step
perm, lam = rng.permutation(8), 0.3
xm = (lam * x[:8] + (1 - lam) * x[perm]).astype("float32")
ym = (lam * np.eye(3)[y[:8]] + (1 - lam) * np.eye(3)[y[perm]]).astype("float32")
history = model.fit(xm, ym, sample_weight=ym @ np.array([1.0, 2.0, 0.5], "float32"),
                    batch_size=8, epochs=1, verbose=0).history
out["mixed"] = {k: float(v[-1]) for k, v in history.items()}
out["iterations_3"] = int(optimizer.iterations.numpy())
print("RESULT", json.dumps(out))
"""


def check_keras_way(stdout: str):
    out = json.loads(stdout.split("RESULT", 1)[1])
    assert out["head_phase_moves_bn"] is False and out["bn_moves"] is True and out["head_moves"]
    assert (out["iterations_1"], out["iterations_2"]) == (2, 4) and out["same_optimizer"]
    assert out["multipliers"] == {"Conv2d_1a": 0.05, "Mixed_5a": 0.1, "Logits": 1.0}
    assert out["iterations_3"] == 5 and np.isfinite(out["mixed"]["loss"]), out["mixed"]
    assert set(out["mixed"]) == {"loss", "top1", "top5"}


def test_recipe_in_a_model_of_ones_own_on_tensorflow_and_jax(capsys):
    exec(compile(KERAS_WAY, "keras_way", "exec"), {})
    check_keras_way(capsys.readouterr().out)
    proc = subprocess.run([sys.executable, "-c", KERAS_WAY], env={**ENV, "KERAS_BACKEND": "jax"},
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    check_keras_way(proc.stdout)


# --- MixUp and CutMix -------------------------------------------------------------------------


def test_loss_and_accuracy_on_soft_targets():
    """A mixed target's loss is the same mix of the two labels' losses, with or without label
    smoothing; integer labels of shape [B] and [B, 1] are unchanged; the accuracy of a soft
    target is that of its argmax."""
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 5)).astype("float32")
    a = rng.integers(0, 5, 6)
    b = (a + rng.integers(1, 5, 6)) % 5  # another label
    lam = rng.uniform(size=(6, 1)).astype("float32")
    soft = lam * np.eye(5, dtype="float32")[a] + (1 - lam) * np.eye(5, dtype="float32")[b]
    for smoothing in (0.0, 0.1):
        loss = SparseSmoothedCrossEntropy(smoothing, reduction="none")
        per_label = [np.asarray(loss(labels, logits)) for labels in (a, b)]
        expected = lam[:, 0] * per_label[0] + (1 - lam[:, 0]) * per_label[1]
        np.testing.assert_allclose(np.asarray(loss(soft, logits)), expected, rtol=1e-5)
        np.testing.assert_allclose(np.asarray(loss(a[:, None], logits)), per_label[0], rtol=1e-6)
        mean = SparseSmoothedCrossEntropy(smoothing)(soft, logits)
        np.testing.assert_allclose(float(mean), expected.mean(), rtol=1e-5)
    dominant = np.argmax(soft, axis=-1)
    for k in (1, 2):
        on_soft, on_labels = TopKAccuracy(k), TopKAccuracy(k)
        on_soft.update_state(soft, logits)
        on_labels.update_state(dominant, logits)
        assert float(on_soft.result()) == float(on_labels.result())


def mixing_map(tmp_path, classes=6, **recipe):
    """``_train_map`` of a folder-like plan whose classes hold 1, 2, 3... examples (so the
    balanced class weights are on) with the recipe's mixing keys."""
    import tensorflow as tf

    counts = np.arange(1, classes + 1)
    source = SimpleNamespace(
        num_classes=classes, class_names=[f"c{i}" for i in range(classes)],
        read=lambda: tf.data.Dataset.from_tensor_slices(
            (["img"] * int(counts.sum()), np.repeat(np.arange(classes), counts))),
    )  # fmt: skip
    plan = SimpleNamespace(seed=0, data=str(tmp_path), source=source)
    extra = _train_map(plan, load_finetune_recipe("finetune", **recipe), verbose=0)
    return extra, counts.sum() / (classes * counts)


def run_map(extra, images, labels):
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensors((images, labels)).map(extra)
    return next(dataset.as_numpy_iterator())


def partners(soft, labels):
    """Per example (``labels`` a permutation of the classes): the example it was mixed with
    (itself when its target is one-hot) and its own label's share."""
    n = len(labels)
    own = soft[np.arange(n), labels]
    rest = soft.copy()
    rest[np.arange(n), labels] = 0.0
    other = np.where(rest.max(axis=1) > 1e-6, np.argsort(labels)[rest.argmax(axis=1)], np.arange(n))
    return other, own


def test_mixup_in_the_train_map_mixes_images_and_labels_alike(tmp_path):
    extra, weights = mixing_map(tmp_path, mixup_alpha=1.0)
    rng = np.random.default_rng(1)
    images = rng.uniform(-1, 1, (6, 9, 7, 3)).astype("float32")
    labels = rng.permutation(6).astype("int32")
    mixed, soft, sample_weight = run_map(extra, images, labels)
    assert soft.shape == (6, 6) and soft.dtype == np.float32 and mixed.shape == images.shape
    np.testing.assert_allclose(soft.sum(axis=1), 1.0, rtol=1e-6)
    assert np.count_nonzero(soft > 1e-6, axis=1).max() == 2
    other, own = partners(soft, labels)
    assert (other != np.arange(6)).any()  # some example got another's
    lam = own[other != np.arange(6)]
    np.testing.assert_allclose(lam, lam[0], rtol=1e-6)  # one weight per batch
    assert 0 < lam[0] < 1
    for i, j in enumerate(other):
        expected = own[i] * images[i] + (1 - own[i]) * images[j]
        np.testing.assert_allclose(mixed[i], expected, atol=1e-5)
    np.testing.assert_allclose(sample_weight, soft @ weights, rtol=1e-5)
    again = run_map(extra, images, labels)  # stateless: the same batch, the same mix
    np.testing.assert_array_equal(again[0], mixed)


def test_cutmix_in_the_train_map_pastes_a_rectangle_weighed_by_area(tmp_path):
    rng = np.random.default_rng(2)
    images = rng.uniform(-1, 1, (6, 16, 20, 3)).astype("float32")
    labels = rng.permutation(6).astype("int32")
    for recipe in ({"cutmix_alpha": 1.0},
                   {"cutmix_alpha": 1.0, "mixup_alpha": 1.0, "mix_switch_prob": 1.0}):  # fmt: skip
        extra, weights = mixing_map(tmp_path, **recipe)
        mixed, soft, sample_weight = run_map(extra, images, labels)
        np.testing.assert_allclose(soft.sum(axis=1), 1.0, rtol=1e-6)
        other, own = partners(soft, labels)
        assert (other != np.arange(6)).any()
        boxes = set()
        for i, j in enumerate(other):
            if j == i:
                np.testing.assert_array_equal(mixed[i], images[i])
                continue
            pasted = np.all(mixed[i] == images[j], axis=-1)
            kept = np.all(mixed[i] == images[i], axis=-1)
            assert np.all(pasted ^ kept)  # every pixel is one image's or the other's
            rows, cols = np.nonzero(pasted)
            box = (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1)
            assert pasted[box[0] : box[1], box[2] : box[3]].all()  # a filled rectangle
            boxes.add(box)
            np.testing.assert_allclose(soft[i, labels[j]], pasted.mean(), rtol=1e-5)
            np.testing.assert_allclose(own[i], kept.mean(), rtol=1e-5)
        assert len(boxes) == 1  # one rectangle per batch
        np.testing.assert_allclose(sample_weight, soft @ weights, rtol=1e-5)
    extra, _ = mixing_map(tmp_path, cutmix_alpha=1.0, mixup_alpha=1.0, mix_switch_prob=0.0)
    mixed, soft, _ = run_map(extra, images, labels)
    other, own = partners(soft, labels)
    i = int(np.flatnonzero(other != np.arange(6))[0])
    np.testing.assert_allclose(mixed[i], own[i] * images[i] + (1 - own[i]) * images[other[i]],
                               atol=1e-5)  # fmt: skip
    extra, weights = mixing_map(tmp_path)  # the recipe's default: no mixing
    same, integers, sample_weight = run_map(extra, images, labels)
    np.testing.assert_array_equal(same, images)
    np.testing.assert_array_equal(integers, labels)
    np.testing.assert_allclose(sample_weight, weights[labels], rtol=1e-6)


def test_mix_batch_keeps_dtype_and_shapes():
    import tensorflow as tf

    images = tf.random.stateless_uniform((4, 8, 8, 3), (0, 1), dtype=tf.bfloat16)
    out, targets = mix_batch(images, tf.constant([0, 1, 2, 0]), 3, mixup_alpha=0.2)
    assert out.dtype == tf.bfloat16 and targets.shape == (4, 3)


def test_bad_input_is_one_clear_line(tasks, tmp_path, capsys, monkeypatch):
    root, pretrained = tasks
    one = write_folder(tmp_path / "one", classes=("only",), per_class=2)
    empty = write_folder(tmp_path / "empty", classes=("c", "d"), per_class=2)
    for f in (empty / "d").iterdir():
        f.unlink()
    monkeypatch.setenv("INCEPTION_HOME", str(tmp_path / "home"))  # no cached ImageNet weights
    manifest = json.loads((ROOT / "inception" / "weights" / "manifest.json").read_text())
    for entry in manifest["entries"].values():
        entry["url"] = "http://127.0.0.1:9/closed"  # the discard port: nothing listens
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setenv("INCEPTION_MANIFEST", str(tmp_path / "manifest.json"))
    base = ["--model-dir", str(tmp_path / "m"), "--steps", "2", "--quiet"]
    cases = [
        (["--model", str(pretrained), "--data", str(one)], "has only one class (only)"),
        (["--model", str(pretrained), "--data", str(empty)], "class folder(s) d of"),
        (["--model", str(pretrained), "--data", str(root / "B"), "--image-size", "50"],
         "--image-size 50 is too small"),
        (["--model", MODEL, "--data", str(root / "B")], "has no released ImageNet weights"),
        (["--model", str(pretrained), "--data", str(root / "B"), "--recipe", "paper"],
         "is a training recipe"),
        (["--model", "inception_v4", "--data", str(root / "B"), "--image-size", "75"],
         "is this machine offline?"),
    ]  # fmt: skip
    errors = []
    for extra, message in cases:
        assert cli_main(["finetune", *base, *extra]) == 2, extra
        errors.append(capsys.readouterr().err)
        assert message in errors[-1] and "Traceback" not in errors[-1], (extra, errors[-1])
        last = errors[-1].strip().splitlines()[-1]  # (a download says first which URL it tries)
        assert last.startswith("inception finetune: error: ") and message in last, errors[-1]
    assert "give --weights FILE" in errors[3] and "inception_resnet_v2, inception_v4" in errors[3]
    assert cli_main(["train", "--model", MODEL, "--data", str(root / "B"), "--recipe",
                     "finetune", *base]) == 2  # fmt: skip
    assert "is a fine-tuning recipe" in capsys.readouterr().err
