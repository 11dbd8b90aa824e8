"""``inception train`` and the accelerator benchmark on JAX, in subprocesses with
``KERAS_BACKEND=jax``: bad input and a diverging run through the CLI, and
``benchmarks/accelerator.py --smoke`` with TensorFlow made unimportable. (Resuming after kill -9
on JAX over 2 devices, and the JAX-trained model under TensorFlow: test_train_distributed.py;
PaperRMSProp on JAX against a NumPy reference: test_train_recipe.py.) The network is the shallow
Inception-ResNet-v1 of tests/shallow.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import shallow
from helpers import ROOT
from helpers import write_class_folder as write_folder
from shallow import MODEL

ENV = shallow.env({**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "2",
                   "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(ROOT)})  # fmt: skip


@pytest.fixture(scope="session")
def jax_env(tmp_path_factory):
    """A compilation cache shared by this session's JAX subprocesses: the same model's
    initialisers and steps compile once."""
    cache = tmp_path_factory.getbasetemp() / "jax-compilation-cache"
    return {**ENV, "JAX_COMPILATION_CACHE_DIR": str(cache),
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}  # fmt: skip


# Runs `inception train` in one JAX process per case (the CLI's exit code and stderr), so the
# cases share the start-up and only the diverging run compiles a model.
CLI_CASES = (
    shallow.PRELUDE
    + """
import contextlib, io, json, sys
import keras
from inception.cli import main
assert keras.backend.backend() == "jax"
out = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["train", *argv])
    out.append({"code": code, "err": err.getvalue()})
print("CASES", json.dumps(out))
"""
)


@pytest.mark.slow
def test_jax_bad_input_and_divergence_through_the_cli(tmp_path, jax_env):
    folder = write_folder(tmp_path / "data", per_class=2)
    recipe = tmp_path / "explode.json"
    recipe.write_text(json.dumps({"base": "paper", "base_learning_rate": 1e30, "dropout_rate": 0}))
    run = tmp_path / "m"
    base = ["--model", MODEL, "--model-dir", str(run), "--image-size", "75", "--steps", "4",
            "--quiet"]  # fmt: skip
    cases = [
        (["--data", str(tmp_path / "missing")], 2, "neither a folder nor a known data set"),
        (["--data", str(folder), "--strategy", "mirrored"], 2, "not available on KERAS_BACKEND"),
        (["--data", str(folder), "--image-size", "50"], 2, "--image-size 50 is too small"),
        (["--data", str(folder), "--batch-size", "2", "--recipe", str(recipe), "--seed", "0",
          "--no-eval", "--checkpoint-every", "1"], 1, "at step 2; stopped without saving"),
        (["--data", str(folder), "--batch-size", "2", "--precision", "float16",
          "--no-eval"], 2, "does not fit this run"),
    ]  # fmt: skip
    argv = json.dumps([base + extra for extra, _, _ in cases])
    proc = subprocess.run([sys.executable, "-c", CLI_CASES, argv], env=jax_env,
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.split("CASES", 1)[1])
    for (extra, code, message), got in zip(cases, results):
        assert got["code"] == code and message in got["err"], (extra, got)
        assert "Traceback" not in got["err"] and got["err"].count("\n") == 1, got
    # The diverged run kept the checkpoint of step 1 (named in its message) and logged step 1;
    # the last case was refused before it touched them.
    assert "ckpt-1.weights.h5" in results[3]["err"]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["ckpt-1.weights.h5"]
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1]


# The benchmark must run where there is no TensorFlow: here TensorFlow is made unimportable.
NO_TENSORFLOW = """
import runpy, sys

class NoTensorFlow:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "tensorflow":
            raise ImportError("no TensorFlow on this machine")

sys.meta_path.insert(0, NoTensorFlow())
import shallow; shallow.patch()
sys.argv = ["benchmarks/accelerator.py", *sys.argv[1:]]
runpy.run_path("benchmarks/accelerator.py", run_name="__main__")
assert "tensorflow" not in sys.modules
"""


@pytest.mark.slow
def test_accelerator_benchmark_smoke_without_tensorflow(tmp_path, jax_env):
    out = tmp_path / "accelerator.json"
    proc = subprocess.run(
        [sys.executable, "-c", NO_TENSORFLOW, "--smoke", "--json", str(out)],
        env=jax_env, cwd=ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
    assert lines[0]["platform"] == "cpu" and lines[0]["matmul_bf16_flops_per_sec"] > 0
    result = json.loads(out.read_text())
    records = {r["mode"]: r for r in result["records"]}
    assert set(records) == {"inference", "training"}, records
    for record in records.values():
        assert record["model"] == MODEL and record["batch"] == 2 and "error" not in record
        assert record["images_per_sec"] > 0 and 0 < record["share_of_ceiling"] < 1
    assert records["inference"]["flops_per_image"] > 1e8  # shallow IR-v1 at 75 px: 0.28 GFLOP
    assert "| inception_resnet_v1 |" in proc.stdout
