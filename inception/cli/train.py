"""``inception train``: the command line of ``inception.train``."""

from __future__ import annotations

import argparse
import json
import sys

from inception.precisions import OLD_PRECISIONS  # the values of --mixed-precision
from inception.training.config import STRATEGIES, recipe_names

from . import flags

EPILOG = """\
The backend is Keras': KERAS_BACKEND=tensorflow (default) or KERAS_BACKEND=jax.
Rerunning the same command resumes from the newest checkpoint in --model-dir (Ctrl-C says
from which step).
The model directory gets checkpoints/, logs/ (tensorboard --logdir DIR/logs), metrics.jsonl,
config.json, and at the end model.keras, model.weights.h5 and eval.json. See docs/training.md.
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="inception train",
        description="Train an Inception model with the paper's recipe on Keras' fit(), on "
        "TensorFlow (tf.distribute) or JAX (data parallel over all local devices).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--model", required=True, help="inception_v4, inception_resnet_v1 or inception_resnet_v2"
    )
    flags.add_data(p)
    p.add_argument(
        "--model-dir",
        required=True,
        help="where checkpoints, logs, metrics and the trained model go",
    )
    flags.add_data_dir(p)
    flags.add_image_size(p)
    flags.add_batch_size(p, "the recipe's batch_size x replicas; the GLOBAL batch, split "
                         "evenly over the replicas")  # fmt: skip
    length = p.add_mutually_exclusive_group(required=True)
    length.add_argument("--epochs", type=float, help="length of the run in epochs of --data")
    length.add_argument("--steps", type=int, help="length of the run in steps")
    add_run_options(p)
    return p


def add_run_options(p: argparse.ArgumentParser, recipe: str = "paper") -> None:
    """The options ``train`` and ``finetune`` share; ``recipe``: the default ``--recipe``."""
    p.add_argument(
        "--recipe",
        default=recipe,
        help=f"{' | '.join(recipe_names())} | FILE.json (default: paper for train, finetune for "
        "finetune)",
    )
    p.add_argument(
        "--strategy",
        default="auto",
        choices=STRATEGIES,
        help="tensorflow: tpu, mirrored, multi_worker (TF_CONFIG), one_device; jax: "
        "data_parallel, one_device; auto: all devices (default)",
    )
    precision = flags.add_precision(p, "auto", flags.TRAIN_PRECISION_WHY)
    flags.add_renamed(p, "--mixed-precision", precision, values=OLD_PRECISIONS)
    p.add_argument(
        "--seed", type=int, help="seeds initialisation, dropout, shuffling and augmentation"
    )
    p.add_argument(
        "--deterministic",
        action="store_true",
        help="ordered input and deterministic kernels: a rerun reproduces the weights",
    )
    flags.add_variant(p)
    p.add_argument(
        "--checkpoint-every",
        type=int,
        help="steps between checkpoints (default: the recipe's, 1000)",
    )
    p.add_argument(
        "--keep-checkpoints",
        type=int,
        metavar="N",
        help="keep the newest N checkpoints, deleting older ones (default: the recipe's "
        "keep_checkpoints, 5; 1 saves the most disk)",
    )
    p.add_argument(
        "--validate-every",
        type=int,
        help="steps between validations, rounded to a multiple of --checkpoint-every "
        "(default: about one epoch; 0: none)",
    )
    p.add_argument(
        "--log-every",
        type=int,
        help="steps between metrics.jsonl records and loss checks (default: 1)",
    )
    p.add_argument(
        "--no-eval", action="store_true", help="skip the final evaluation of the trained model"
    )
    flags.add_quiet(p)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from .checks import check_arguments

    check_arguments(models=[args.model], image_size=args.image_size, data=args.data, files=False)
    from inception.training.loop import train

    keys = ("steps", "resumed_from", "backend", "replicas", "metrics", "keras_model", "weights")
    return run("inception train", lambda: train(args.model, args.data, args.model_dir,
                                                **run_options(args)), keys)  # fmt: skip


def run_options(args) -> dict:
    """The keyword arguments of ``inception.train`` and ``inception.finetune`` from the options
    both commands take."""
    return dict(
        image_size=args.image_size, batch_size=args.batch_size, epochs=args.epochs,
        steps=args.steps, recipe=args.recipe, strategy=args.strategy, precision=args.precision,
        seed=args.seed, deterministic=args.deterministic, data_dir=args.data_dir,
        eval_split=None if args.no_eval else "validation", variant=args.variant,
        checkpoint_every=args.checkpoint_every, validate_every=args.validate_every,
        log_every=args.log_every, keep_checkpoints=args.keep_checkpoints,
        verbose=0 if args.quiet else 1,
    )  # fmt: skip


def run(prog: str, call, keys) -> int:
    """Runs a training (``call()``); prints the ``keys`` of its result as one JSON line (exit 0),
    or says in one line why it stopped: diverged or disk full (1), interrupted (130)."""
    from inception.training.callbacks import TrainingDivergedError, TrainingInterrupted
    from inception.training.checkpoints import DiskFullError

    try:
        result = call()
    except (TrainingDivergedError, DiskFullError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    except TrainingInterrupted as exc:
        print(f"{prog}: {exc}", file=sys.stderr, flush=True)
        return 130
    except KeyboardInterrupt:
        print(f"{prog}: interrupted before training started; rerun the same command to start "
              "it", file=sys.stderr, flush=True)  # fmt: skip
        return 130
    print(json.dumps({k: result.get(k) for k in keys}, default=str))
    return 0
