"""The ``inception`` command. Each sub-command is a function ``main(argv) -> int`` in its own
module of this package (``inception.cli.train``, ...; ``batch-predict`` is ``batch_predict``),
imported only when used; help and argument errors are answered before TensorFlow loads. The
flags the commands share are built in ``inception.cli.flags``; the argument checks that run
before TensorFlow loads are in ``inception.cli.checks``.

TensorFlow's start-up lines (oneDNN, CUDA probing, absl) are kept off the terminal unless
``--verbose`` (or ``INCEPTION_VERBOSE=1``) is given; errors are one line each
(``INCEPTION_DEBUG=1`` shows the traceback).
"""

from __future__ import annotations

import importlib
import os
import sys

from ..errors import UsageError

COMMANDS = {
    "models": "list the registered models (params, input, accuracy)",
    "convert": "convert a TF-slim / timm / Keras checkpoint",
    "train": "train a model (Keras fit on TensorFlow or JAX)",
    "finetune": "fine-tune a pretrained model on your own classes",
    "eval": "top-1/top-5 evaluation, multi-crop and ensembles",
    "predict": "classify images, folders or URLs",
    "batch-predict": "classify a folder, glob or data set on Apache Beam (resumable)",
    "export": "export SavedModels for TensorFlow Serving",
    "serve": "serve exported models over REST and gRPC",
    "plot": "draw a training run's curves or the model zoo (PNG)",
}


def module_name(command: str) -> str:
    """The module of a command: ``batch-predict`` is ``inception.cli.batch_predict``."""
    return f"{__name__}.{command.replace('-', '_')}"


def _usage() -> str:
    lines = [
        "usage: inception [--verbose] COMMAND [options]   (inception COMMAND --help: its options)",
        "",
    ]
    width = max(len(name) for name in COMMANDS)
    lines += [f"  {name:<{width}} {help_}" for name, help_ in COMMANDS.items()]
    lines += ["", "  --version  print the version", "  --verbose  show TensorFlow's start-up log"]
    return "\n".join(lines)


QUIET_LEVEL = 3  # TF_CPP_MIN_LOG_LEVEL / ABSL_MIN_LOG_LEVEL: ERROR lines off too


def quiet_tensorflow() -> None:
    """Keeps TensorFlow's C++ start-up and device-probing lines off stderr (not errors of ours).

    Lines logged while TensorFlow is imported are dropped with the import's stderr; those logged
    later (``failed call to cuInit`` on a machine without a GPU driver is an ERROR line, printed
    when the devices are first listed) need the log level at 3, so a lower level in the
    environment (``make``'s 2, say) is raised: ``--verbose`` shows everything instead."""
    from .._imports import around_import, stderr_silenced

    for name in ("TF_CPP_MIN_LOG_LEVEL", "ABSL_MIN_LOG_LEVEL"):
        try:
            level = int(os.environ.get(name, "0"))
        except ValueError:
            level = 0
        if level < QUIET_LEVEL:
            os.environ[name] = str(QUIET_LEVEL)
    around_import("tensorflow", stderr_silenced)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = bool(os.environ.get("INCEPTION_VERBOSE"))
    if argv and argv[0] == "--verbose":
        verbose, argv = True, argv[1:]
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if argv[0] in ("-V", "--version"):
        from inception import __version__

        print(__version__)
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"inception: unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    if not verbose:
        quiet_tensorflow()
    run = importlib.import_module(module_name(command)).main
    try:
        return int(run(rest) or 0)
    except (UsageError, ValueError, FileNotFoundError) as exc:
        if os.environ.get("INCEPTION_DEBUG"):
            raise
        print(f"inception {command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
