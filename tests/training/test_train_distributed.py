"""Training on TensorFlow under tf.distribute, in subprocesses: MirroredStrategy over 2 logical
CPUs against one device, MultiWorkerMirroredStrategy with 2 worker processes (TF_CONFIG on
127.0.0.1), and a kill -9 in the middle of a run that the rerun resumes at the checkpointed step,
then learns the data set. (The same on JAX: test_train_jax.py.) The network is the shallow
Inception-ResNet-v1 of tests/shallow.py, in every process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import shallow
from helpers import free_ports
from helpers import write_class_folder as write_folder
from shallow import MODEL, shallow_network  # noqa: F401  (autouse: the shallow network)

import inception.demo.train as demo

ENV = shallow.env({**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "",
                   "KERAS_BACKEND": "tensorflow"})  # fmt: skip

MIRRORED = (
    shallow.PRELUDE
    + """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import inception
from inception.errors import UsageError
data, out = sys.argv[1], sys.argv[2]
recipe = {"base": "paper", "dropout_rate": 0.0, "sync_batch_norm": True}
kw = dict(image_size=75, steps=2, seed=1, deterministic=True, recipe=recipe, eval_split=None,
          verbose=0)
mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
try:
    inception.train("MODEL", data, out + "/bad", batch_size=3, strategy=mirrored, **kw)
except UsageError as exc:
    print("USAGE", exc)
sums = {}
for name, strategy in [("one", tf.distribute.OneDeviceStrategy("/cpu:0")), ("two", mirrored)]:
    result = inception.train("MODEL", data, f"{out}/{name}", batch_size=4, strategy=strategy, **kw)
    sums[name] = result["weights_checksum"]
print("SUMS", json.dumps(sums))
""".replace("MODEL", MODEL)
)

WORKER = (
    shallow.PRELUDE
    + """
import json, sys
import numpy as np
import inception
data, out, index = sys.argv[1], sys.argv[2], sys.argv[3]
result = inception.train("MODEL", data, out, image_size=75, batch_size=4, steps=2, seed=3,
                         strategy="multi_worker", eval_split=None, verbose=0,
                         recipe={"base": "paper", "dropout_rate": 0.0, "sync_batch_norm": True})
print("RESULT", json.dumps({"steps": result["steps"], "sum": result["weights_checksum"]}))
""".replace("MODEL", MODEL)
)


def losses(model_dir):
    records = [json.loads(x) for x in (model_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in records if "loss" in r]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_folder(tmp_path_factory.mktemp("data"), per_class=4)


@pytest.mark.slow
def test_mirrored_two_cpus_matches_one_device(data, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", MIRRORED, str(data), str(tmp_path)],
        env=ENV, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "USAGE" in proc.stdout and "not divisible by the 2 replicas" in proc.stdout
    one, two = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert len(one) == len(two) == 2
    # Same seed, so the same initial weights and the same 4 examples per step (2 per replica,
    # synchronised BN over the 4). Step 1's loss is computed before any update: it differs only
    # by float32 rounding, but synchronised BN computes the moments from cross-replica sums
    # (E[x^2] - E[x]^2) where one device uses two passes; through ~200 BN layers over 4
    # examples that measured 6e-5 relative, hence 5e-4. Step 2 follows one RMSProp update from
    # gradients carrying those differences (measured 1e-3), hence 1e-2; a wrong split of the
    # batch (e.g. 4 per replica) or learning-rate scaling changes step 2 by more than that.
    np.testing.assert_allclose(two[0], one[0], rtol=5e-4)
    np.testing.assert_allclose(two[1], one[1], rtol=1e-2)
    sums = json.loads(proc.stdout.split("SUMS", 1)[1])
    assert sums["two"] == pytest.approx(sums["one"], rel=1e-5)  # the EMA weights after 2 steps
    config = json.loads((tmp_path / "two" / "config.json").read_text())
    assert config["replicas"] == 2 and config["strategy"] == "MirroredStrategy"


@pytest.mark.slow
def test_multi_worker_two_processes_agree(data, tmp_path):
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", WORKER, str(data), str(tmp_path / f"w{index}"), str(index)],
                env={**ENV, "TF_CONFIG": tf_config},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )  # fmt: skip
        )
    try:
        outputs = [p.communicate(timeout=900) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (_, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-3000:]
    # Only the chief (worker 0) writes checkpoints, logs and exports; the loss it logs is the
    # global one, and both workers ran the same number of synchronous steps.
    results = [json.loads(out.split("RESULT", 1)[1]) for out, _ in outputs]
    assert [r["steps"] for r in results] == [2, 2]
    # Both workers hold the same weights; synchronised BN makes the BN moving averages (part of
    # the checksum, not all-reduced) equal too: per-worker BN measured 13877.68 vs 13877.22.
    assert results[0]["sum"] == results[1]["sum"]
    chief = tmp_path / "w0"
    assert (chief / "model.weights.h5").exists() and not (tmp_path / "w1" / "checkpoints").exists()
    assert len(losses(chief)) == 2
    import inception

    w0 = inception.build(MODEL, input_shape=(75, 75, 3), classes=3)
    w0.load_weights(chief / "model.weights.h5")
    total = sum(np.sum(w, dtype=np.float64) for w in w0.get_weights())
    assert total == pytest.approx(results[0]["sum"], rel=1e-9)


@pytest.mark.slow
def test_kill_9_resume_then_learns(tmp_path):
    data = demo.make_dataset(tmp_path / "data")
    model_dir = tmp_path / "run"
    cmd = shallow.cli("train", "--model", MODEL, "--data", str(data),
           "--model-dir", str(model_dir), "--image-size", "75", "--batch-size", "16",
           "--steps", "60", "--recipe", "demo", "--seed", "0", "--checkpoint-every", "10",
           "--quiet")  # fmt: skip
    saved, killed_at = kill_after_checkpoint(cmd, model_dir, 20)
    rerun = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    summary = json.loads(rerun.stdout.strip().splitlines()[-1])
    assert summary["steps"] == 60 and summary["resumed_from"] == saved
    check_resumed_records(model_dir, saved, killed_at, 60)
    with h5py.File(model_dir / "checkpoints" / "ckpt-60.weights.h5") as f:
        assert f.attrs["step"] == 60
        assert int(f["optimizer/vars/0"][()]) == 60  # the optimizer's step counter
    # The learning check: 4 colour classes, chance 25%.
    assert summary["metrics"]["top1"] >= 60.0, summary


def kill_after_checkpoint(cmd, model_dir, step, env=ENV):
    """Starts ``cmd``, kills it with SIGKILL soon after checkpoint ``step`` exists; returns the
    newest checkpoint's step and the time of the kill."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ckpt_dir, deadline = model_dir / "checkpoints", time.time() + 600
    try:
        while time.time() < deadline and not (ckpt_dir / f"ckpt-{step}.weights.h5").exists():
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            time.sleep(0.5)
        time.sleep(1.0)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    steps = sorted(int(p.name[5:-11]) for p in ckpt_dir.glob("ckpt-*.weights.h5"))
    assert steps and steps[-1] >= step
    logged = [json.loads(x)["step"] for x in (model_dir / "metrics.jsonl").read_text().split("\n")
              if x.endswith("}")]  # fmt: skip
    assert logged[-1] >= steps[-1]  # the killed run got to (or past) its last checkpoint
    return steps[-1], time.time()


def check_resumed_records(model_dir, saved, killed_at, total):
    """The rerun continued at the checkpointed step, not at 0: it dropped the records logged
    after the checkpoint (run again) and logged saved+1 .. total, so each step appears once."""
    records = [json.loads(x) for x in (model_dir / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if "loss" in r]
    assert [r["step"] for r in train] == list(range(1, total + 1))
    assert all((r["time"] < killed_at) == (r["step"] <= saved) for r in train)
    config = json.loads((model_dir / "config.json").read_text())
    assert config["total_steps"] == total
    return config


@pytest.fixture(scope="session")
def jax_env(tmp_path_factory):
    """JAX on 2 host devices, with a compilation cache for this test session (the rerun of a
    killed run then reuses the compiled step instead of compiling it again)."""
    cache = tmp_path_factory.getbasetemp() / "jax-compilation-cache"
    return {**ENV, "KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
            "JAX_COMPILATION_CACHE_DIR": str(cache),
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}  # fmt: skip


# Under TensorFlow: the JAX-trained model evaluates, then `inception export` exports it.
TF_EVALUATE_EXPORT = (
    shallow.PRELUDE
    + """
import json, sys
import inception
from inception.cli import main
run, data, out = sys.argv[1:]
model = inception.load_model(run + "/model.keras")
result = inception.evaluate(model, data, split="validation", batch_size=16, progress=False)
info = inception.model_info(model)
print("EVAL", json.dumps({**result["models"][0], "classes": list(info.class_names),
                          "size": info.image_size}))
code = main(["export", "--model", run + "/model.keras", "--name", "jax_trained", "--version", "1",
             "--out", out])  # class names and input size come with the model
print("EXPORT", code)
# The JAX run's last checkpoint restores into the same model compiled on TensorFlow.
from inception.training import load_recipe
from inception.training.checkpoints import Checkpoints
recipe = load_recipe("demo")
net = inception.build("MODEL", input_shape=(75, 75, 3), classes=4, classifier_activation=None,
                      dropout_rate=recipe.dropout_rate, conv_bn=recipe.conv_bn())
net.compile(**recipe.compile_arguments(net, 16, 12))
checkpoints = Checkpoints(run + "/checkpoints")
print("RESTORED", checkpoints.restore(net, checkpoints.latest()))
""".replace("MODEL", MODEL)
)


@pytest.mark.slow
def test_kill_9_resume_on_jax_two_devices_then_tensorflow_evaluates_and_exports(tmp_path, jax_env):
    """The same kill -9 and resume on JAX over 2 host devices (DataParallel); the model it saves
    then loads, evaluates to the same top-1 and exports for TF Serving under TensorFlow, and its
    checkpoint restores into the model compiled on TensorFlow."""
    data = demo.make_dataset(tmp_path / "data")
    model_dir = tmp_path / "run"
    cmd = shallow.cli("train", "--model", MODEL, "--data", str(data),
           "--model-dir", str(model_dir), "--image-size", "75", "--batch-size", "16",
           "--steps", "12", "--recipe", "demo", "--seed", "0", "--checkpoint-every", "4",
           "--quiet")  # fmt: skip
    saved, killed_at = kill_after_checkpoint(cmd, model_dir, 4, env=jax_env)
    rerun = subprocess.run(cmd, env=jax_env, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    summary = json.loads(rerun.stdout.strip().splitlines()[-1])
    assert summary["steps"] == 12 and summary["resumed_from"] == saved
    assert (summary["backend"], summary["replicas"]) == ("jax", 2)
    config = check_resumed_records(model_dir, saved, killed_at, 12)
    assert (config["backend"], config["strategy"], config["replicas"]) == ("jax", "DataParallel",
                                                                            2)  # fmt: skip
    with h5py.File(model_dir / "checkpoints" / "ckpt-12.weights.h5") as f:
        assert f.attrs["step"] == 12 and int(f["optimizer/vars/0"][()]) == 12
    trained = json.loads((model_dir / "eval.json").read_text())
    assert trained["split"] == "validation" and trained["num_images"] == 48

    args = [str(model_dir), str(data), str(tmp_path / "served")]
    proc = subprocess.run([sys.executable, "-c", TF_EVALUATE_EXPORT, *args], env=ENV,
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    evaluated = json.loads(proc.stdout.split("EVAL", 1)[1].splitlines()[0])
    assert evaluated["num_images"] == 48 and evaluated["size"] == 75
    assert evaluated["classes"] == ["blue", "green", "red", "yellow"]
    # Same weights, same evaluation code; XLA and TensorFlow kernels may round differently, which
    # could flip one borderline image at most.
    assert abs(evaluated["top1"] - trained["top1"]) <= 100 / 48 + 1e-9, (evaluated, trained)
    assert "EXPORT 0" in proc.stdout, proc.stderr[-3000:]
    assert "RESTORED 12" in proc.stdout
    assert (tmp_path / "served" / "jax_trained" / "1" / "saved_model.pb").is_file()
