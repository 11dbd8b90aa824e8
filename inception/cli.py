"""The ``inception`` command. Each sub-command lives in its own module, imported only when used,
exposing ``main(argv) -> int``."""

from __future__ import annotations

import importlib
import os
import sys

COMMANDS = {
    "models": ("inception.commands.models", "list the registered models (params, input, accuracy)"),
    "convert": ("inception.weights.cli", "convert a TF-slim / timm / Keras checkpoint"),
    "train": ("inception.training.cli", "train a model with tf.distribute"),
    "eval": ("inception.evaluation.cli", "top-1/top-5 evaluation, multi-crop and ensembles"),
    "predict": ("inception.evaluation.predict", "classify images, folders or URLs"),
    "export": ("inception.serving.export", "export SavedModels for TensorFlow Serving"),
    "serve": ("inception.serving.cli", "serve exported models over REST and gRPC"),
}


class UsageError(Exception):
    """Bad input from the user: printed as one clear message, without a traceback."""


def _usage() -> str:
    lines = ["usage: inception COMMAND [options]   (inception COMMAND --help for its options)", ""]
    lines += [f"  {name:<8} {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
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
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    module = importlib.import_module(COMMANDS[command][0])
    try:
        return int(module.main(rest) or 0)
    except (UsageError, ValueError, FileNotFoundError) as exc:
        if os.environ.get("INCEPTION_DEBUG"):
            raise
        print(f"inception {command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
