"""``inception train``: the command line of ``inception.train``."""

from __future__ import annotations

import argparse
import json
import sys

from inception.errors import UsageError

from .strategy import PRECISIONS, STRATEGIES


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="inception train",
        description="Train an Inception model with tf.distribute; resumes from the latest "
        "checkpoint in --model-dir.",
    )
    p.add_argument("--model", required=True, help="inception_v4, inception_resnet_v1, ...")
    p.add_argument("--data", required=True, help="imagenet2012 | tfds:NAME | folder PATH")
    p.add_argument("--model-dir", required=True, help="checkpoints, logs and exports go here")
    p.add_argument("--data-dir", help="tfds data dir (imagenet2012: tars in DIR/downloads/manual)")
    p.add_argument("--image-size", type=int, help="input height = width (default: model's)")
    p.add_argument("--batch-size", type=int, help="global batch, split over replicas")
    length = p.add_mutually_exclusive_group(required=True)
    length.add_argument("--epochs", type=float)
    length.add_argument("--steps", type=int)
    p.add_argument("--recipe", default="paper", help="paper | demo | FILE.json")
    p.add_argument("--strategy", default="auto", choices=STRATEGIES)
    p.add_argument("--mixed-precision", default="auto", choices=PRECISIONS)
    p.add_argument("--seed", type=int)
    p.add_argument("--deterministic", action="store_true", help="reproducible (slower) run")
    p.add_argument("--variant", help="model variant (slim | paper)")
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints")
    p.add_argument("--no-eval", action="store_true", help="skip the final evaluation")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from .loop import TrainingDivergedError, train

    try:
        result = train(
            args.model,
            args.data,
            args.model_dir,
            image_size=args.image_size,
            batch_size=args.batch_size,
            epochs=args.epochs,
            steps=args.steps,
            recipe=args.recipe,
            strategy=args.strategy,
            mixed_precision=args.mixed_precision,
            seed=args.seed,
            deterministic=args.deterministic,
            data_dir=args.data_dir,
            eval_split=None if args.no_eval else "validation",
            variant=args.variant,
            checkpoint_every=args.checkpoint_every,
            verbose=0 if args.quiet else 1,
        )
    except TrainingDivergedError as exc:
        print(f"inception train: {exc}", file=sys.stderr)
        return 1
    summary = {
        k: result.get(k) for k in ("steps", "resumed_from", "metrics", "keras_model", "weights")
    }
    print(json.dumps(summary, default=str))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UsageError as exc:
        print(f"inception train: error: {exc}", file=sys.stderr)
        sys.exit(2)
