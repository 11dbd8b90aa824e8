"""The commands' shared flags (``inception.cli.flags``): one name, one meaning and one help text
each; a renamed flag's old name still works and says, in one line, which flag replaced it.
Parse-level only: nothing here builds a model."""

import argparse
import subprocess
import sys

import pytest

from inception.cli import (
    COMMANDS,
    batch_predict,
    convert,
    export,
    finetune,
    flags,
    models,
    module_name,
    plot,
    predict,
    serve,
    train,
)
from inception.cli import eval as eval_

PARSERS = {
    "models": models.parser, "convert": convert.parser, "train": train.parser,
    "eval": eval_.parser, "predict": predict.parser, "export": export.parser,
    "serve": serve.parser, "plot": plot.parser, "finetune": finetune.parser,
    "batch-predict": batch_predict.parser,
}  # fmt: skip

TRAIN = ["--model", "inception_v4", "--data", "d", "--model-dir", "m", "--steps", "1"]
EVAL = ["--model", "inception_v4", "--data", "d"]
EXPORT = ["--model", "inception_v4", "--name", "n", "--version", "1", "--out", "o"]

# (command, argv with the old name, the same argv with the new one)
RENAMED = [
    ("train", [*TRAIN, "--mixed-precision", "mixed_bfloat16"], [*TRAIN, "--precision", "bfloat16"]),
    ("train", [*TRAIN, "--mixed-precision", "mixed_float16"], [*TRAIN, "--precision", "float16"]),
    ("train", [*TRAIN, "--mixed-precision", "float32"], [*TRAIN, "--precision", "float32"]),
    ("eval", [*EVAL, "--labels-file", "c.txt"], [*EVAL, "--data-classes", "c.txt"]),
    ("eval", [*EVAL, "--no-progress"], [*EVAL, "--quiet"]),
    ("eval", [*EVAL, "--json", "r.json"], [*EVAL, "--json-file", "r.json"]),
    ("predict", ["a.jpg", "--ensemble", "inception_v4"], ["a.jpg", "--model", "inception_v4"]),
    ("predict", ["a.jpg", "--model", "m", "--top", "3"], ["a.jpg", "--model", "m", "--top-k", "3"]),
    ("predict", ["a.jpg", "--model", "m", "--labels-file", "c.txt"],
     ["a.jpg", "--model", "m", "--class-names", "c.txt"]),
    ("export", [*EXPORT, "--labels", "c.txt"], [*EXPORT, "--class-names", "c.txt"]),
    ("convert", ["src", "--input-size", "331"], ["src", "--image-size", "331"]),
    ("convert", ["src", "--format", "timm"], ["src", "--from", "timm"]),
]  # fmt: skip


@pytest.mark.parametrize("command, old, new", RENAMED)
def test_an_old_flag_still_works_and_names_the_new_one(command, old, new, capsys):
    got = PARSERS[command]().parse_args(old)
    (warning,) = capsys.readouterr().err.splitlines()
    assert vars(got) == vars(PARSERS[command]().parse_args(new))
    assert capsys.readouterr().err == ""  # the new name says nothing
    old_flag = next(a for a in old if a not in new and a.startswith("--"))
    new_flag = next(a for a in new if a not in old and a.startswith("--"))
    assert warning.startswith(f"inception {command}: warning: {old_flag}")
    assert new_flag in warning
    if old_flag != "--json":  # eval's --json prints JSON now; --json FILE is its old meaning
        assert old_flag not in PARSERS[command]().format_help().replace(new_flag, "")  # hidden


def test_train_maps_the_precision_names_onto_keras_policies():
    from inception.precisions import KERAS_POLICIES

    assert set(KERAS_POLICIES) == set(flags.PRECISIONS) - {"auto"}
    assert KERAS_POLICIES["bfloat16"] == "mixed_bfloat16"
    assert KERAS_POLICIES["float16"] == "mixed_float16"
    with pytest.raises(SystemExit):
        train.parser().parse_args([*TRAIN, "--precision", "mixed_bfloat16"])


def helps():
    """``{flag: {command: help}}`` over every command's visible flags."""
    found = {}
    for command, make in PARSERS.items():
        for action in make()._actions:
            if action.help == argparse.SUPPRESS or not action.option_strings:
                continue
            for flag in action.option_strings:
                found.setdefault(flag, {})[command] = action.help
    return found


# flags whose name is shared but whose help says a command's own default or target, on purpose
OWN_DEFAULT = {"--precision": flags.PRECISION_HELP, "--batch-size": flags.BATCH_SIZE_HELP,
               "--image-size": flags.IMAGE_SIZE_HELP}  # fmt: skip
DIFFERENT = {
    "-h", "--help",
    "--out",  # each command writes its own thing: a .weights.h5, a SavedModel folder, a PNG
    "--verbose",  # convert: every tensor used (`inception --verbose`: TensorFlow's log)
}  # fmt: skip
# (batch-predict's --overwrite replaces an earlier run's shards, export's a version or a file)
OWN_MEANING = {("--model", "train"), ("--model", "convert"), ("--classes", "convert"),
               ("--model", "finetune"), ("--overwrite", "batch-predict")}  # fmt: skip


def test_the_same_flag_has_the_same_help_in_every_command():
    for flag, by_command in helps().items():
        if flag in DIFFERENT or len(by_command) < 2:
            continue
        texts = {c: h for c, h in by_command.items() if (flag, c) not in OWN_MEANING}
        if flag in OWN_DEFAULT:
            assert all(h.startswith(OWN_DEFAULT[flag]) for h in texts.values()), (flag, texts)
        else:
            assert len(set(texts.values())) == 1, (flag, texts)


def test_precision_is_one_vocabulary_with_its_default_explained():
    for command, default in (("train", "auto"), ("eval", "float32"), ("predict", "float32"),
                             ("export", "auto")):  # fmt: skip
        (action,) = [a for a in PARSERS[command]()._actions if "--precision" in a.option_strings]
        assert tuple(action.choices) == flags.PRECISIONS and action.default == default
        assert action.help.startswith(f"{flags.PRECISION_HELP} (default {default}: ")


def test_every_command_has_a_module_with_main():
    assert set(COMMANDS) == set(PARSERS)
    for command in COMMANDS:
        assert callable(sys.modules[module_name(command)].main)


def test_python_dash_m_inception_cli_answers_help():
    proc = subprocess.run([sys.executable, "-m", "inception.cli", "--help"], capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0 and "predict" in proc.stdout, proc.stderr


OLD_NAMES_SCRIPT = """
import sys
from inception import cli
code = cli.main(["predict", "a.jpg", "--ensemble", "inception_v5", "--top", "3"])
print(code, sorted(m for m in ("keras", "tensorflow", "jax") if m in sys.modules))
"""


def test_old_names_are_checked_before_tensorflow_loads_too():
    proc = subprocess.run([sys.executable, "-c", OLD_NAMES_SCRIPT], capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert proc.stdout.strip() == "2 []", proc.stderr[-2000:]
    ensemble, top, error = proc.stderr.splitlines()
    assert "--ensemble is renamed --model" in ensemble and "--top is renamed --top-k" in top
    assert error.startswith("inception predict: error: unknown model 'inception_v5'")
