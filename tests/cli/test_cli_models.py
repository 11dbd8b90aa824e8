"""`inception models` and the command dispatcher."""

import json
import os
import subprocess
import sys

import inception
from inception import cli


def test_models_json(capsys):
    assert cli.main(["models", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    by_name = {r["model"]: r for r in rows}
    assert set(by_name) == set(inception.list_models())
    assert by_name["inception_v4"]["params"] == 42_711_400
    assert by_name["inception_resnet_v2"]["params"] == 55_873_736
    assert by_name["inception_resnet_v2"]["variant"] == "slim"
    assert by_name["inception_resnet_v1"]["released_top1"] is None
    assert all(r["input"] == 299 and 70 < r["paper_top1"] < 90 for r in rows)


def test_unknown_command(capsys):
    assert cli.main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err
    assert cli.main(["--help"]) == 0
    assert "models" in capsys.readouterr().out


HELP_SCRIPT = """
import sys
from inception import cli
for command in cli.COMMANDS:
    for argv in ([command, "--help"], [command, "--no-such-flag"]):
        try:
            cli.main(argv)
        except SystemExit:
            pass
print(sorted(m for m in ("keras", "tensorflow", "jax") if m in sys.modules))
import inception
assert "data" in dir(inception) and "tensorflow" not in sys.modules
print(inception.data.load_source.__name__, inception.training.load_recipe.__name__)
"""


def test_help_and_argument_errors_do_not_load_tensorflow():
    """Every command answers --help and a bad flag before Keras or TensorFlow is imported;
    sub-packages (``inception.data``, ...) load on first use like the top-level names."""
    proc = subprocess.run(
        [sys.executable, "-c", HELP_SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-2:] == ["[]", "load_source load_recipe"]
    assert "unrecognized arguments: --no-such-flag" in proc.stderr


def test_commands_keep_tensorflow_start_up_lines_off_stderr(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL",)}
    argv = [sys.executable, "-m", "inception", "models", "--json"]
    quiet = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env)
    assert quiet.returncode == 0 and quiet.stdout.count("\n") == 3
    assert quiet.stderr.strip() == "", quiet.stderr[-1000:]
    verbose = subprocess.run(argv[:3] + ["--verbose", *argv[3:]], capture_output=True,
                             text=True, timeout=300, env=env)  # fmt: skip
    assert verbose.returncode == 0 and verbose.stdout == quiet.stdout
