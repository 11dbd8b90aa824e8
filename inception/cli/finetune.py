"""``inception finetune``: the command line of ``inception.finetune``."""

from __future__ import annotations

import argparse

from . import flags
from .train import add_run_options, run, run_options

EPILOG = """\
The backbone starts from --weights (or the .keras given as --model); the head is new, sized to
the data's classes, unless the .keras already classifies them (then it is kept, its columns
mapped by class name). The run trains the head alone for --head-steps steps (backbone frozen,
BatchNorm in inference mode), then the whole network with the backbone at a lower learning rate.
The backend is Keras': KERAS_BACKEND=tensorflow (default) or KERAS_BACKEND=jax. Rerunning the
same command resumes from the newest checkpoint in --model-dir, in either phase.
The model directory gets what `inception train` writes (checkpoints/, logs/, metrics.jsonl,
config.json, model.keras, model.weights.h5, eval.json) and finetune.json; with a validation split
model.keras is the checkpoint of the best validation top-1. See docs/finetuning.md.
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="inception finetune",
        description="Fine-tune a pretrained Inception network on your own classes (a new head, "
        "then the whole network), on Keras' fit() on TensorFlow or JAX.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--model",
        required=True,
        help="inception_v4 or inception_resnet_v2 (ImageNet weights), inception_resnet_v1 "
        "(with --weights FILE), or a .keras file saved by train or finetune",
    )
    flags.add_weights(p)
    flags.add_data(p)
    p.add_argument(
        "--model-dir",
        required=True,
        help="where checkpoints, logs, metrics and the trained model go",
    )
    flags.add_data_dir(p)
    p.add_argument(
        "--image-size",
        type=int,
        metavar="N",
        help=flags.IMAGE_SIZE_HELP + "; a .keras model's own by default, rebuilt with the same "
        "weights at another size",
    )
    flags.add_batch_size(p, "the recipe's batch_size x replicas; the GLOBAL batch")
    length = p.add_mutually_exclusive_group(required=True)
    length.add_argument("--epochs", type=float, help="length of the run in epochs of --data")
    length.add_argument("--steps", type=int, help="length of the run in steps")
    p.add_argument(
        "--head-steps",
        type=int,
        metavar="N",
        help="steps that train the new head alone, backbone frozen (default: the recipe's, a "
        "quarter of the run; 0: the whole network from the start)",
    )
    add_run_options(p, recipe="finetune")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from .checks import check_arguments

    check_arguments(models=[args.model], weights=args.weights, image_size=args.image_size,
                    data=args.data)  # fmt: skip
    from inception.training.finetune import finetune

    keys = ("steps", "resumed_from", "head", "head_steps", "best_step", "stopped_early_at",
            "backend", "replicas", "metrics", "keras_model", "weights")  # fmt: skip
    return run("inception finetune", lambda: finetune(
        args.model, args.data, args.model_dir, weights=args.weights, head_steps=args.head_steps,
        **run_options(args)), keys)  # fmt: skip
