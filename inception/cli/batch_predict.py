"""``inception batch-predict``: the top classes of every image of a folder, a glob, a list file or
a tfds split, on Apache Beam, into sharded JSON Lines or Parquet; a rerun resumes."""

from __future__ import annotations

import argparse
import os
import sys

from . import flags

EXAMPLES = """examples:
  inception batch-predict photos/ --model inception_v4 --out predictions/
  inception batch-predict 'photos/*/*.jpg' --model runs/mine/model.keras --out preds/ \\
      --output-format parquet --direct-num-workers 2 --direct-running-mode multi_processing
  inception batch-predict gs://bucket/images/ --model inception_v4 --out gs://bucket/preds/ \\
      --num-shards 1000 --runner DataflowRunner --project=P --region=R \\
      --temp_location=gs://bucket/tmp   (docs/batch-prediction.md: Dataflow, Flink, Spark)

Rerunning the same command resumes: finished shards are kept, the others are predicted.
Any other --name=value option is passed to Beam's PipelineOptions."""


def parser() -> argparse.ArgumentParser:
    from inception.batch.shards import FORMATS, LOCAL_RUNNER, RUNNING_MODES
    from inception.batch.sources import INPUT_HELP

    p = argparse.ArgumentParser(
        prog="inception batch-predict",
        description="Classify every image of a folder, a glob, a list file or a tfds split on\n"
        "Apache Beam (locally, or on Dataflow, Flink or Spark), into sharded JSON Lines or\n"
        "Parquet: path, top-k classes, probabilities, and an error for unreadable files.\n"
        "--model takes what `inception predict` takes (docs/batch-prediction.md).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", metavar="INPUT", help=INPUT_HELP)
    p.add_argument(
        "--out", required=True, metavar="DIR",
        help="output folder (local, gs://, s3://, ...): shards and manifest.json",
    )  # fmt: skip
    flags.add_model(p)
    flags.add_weights(p)
    flags.add_top_k(p)
    flags.add_crops(p)
    flags.add_class_names(p)
    flags.add_classes(p)
    flags.add_micro_batch(p)
    flags.add_precision(p, "float32", flags.INFERENCE_PRECISION_WHY)
    flags.add_image_size(p)
    flags.add_batch_size(p, "64; images read and scored at a time by a worker")
    flags.add_data_dir(p)
    p.add_argument("--output-format", choices=list(FORMATS), default="jsonl",
                   help="jsonl (default: one JSON object per line) or parquet")  # fmt: skip
    p.add_argument("--num-shards", type=int, default=16, metavar="N",
                   help="output files, and units of work and of restart (default 16; on a "
                   "cluster several per worker)")  # fmt: skip
    p.add_argument(
        "--overwrite", action="store_true",
        help="replace the output of another run in --out (other files never are)",
    )  # fmt: skip
    p.add_argument("--runner", default=LOCAL_RUNNER,
                   help="Beam runner: DirectRunner (default: this machine), DataflowRunner, "
                   "FlinkRunner, SparkRunner, ...")  # fmt: skip
    p.add_argument("--direct-num-workers", type=int, default=1, metavar="N",
                   help="DirectRunner: workers (default 1)")  # fmt: skip
    p.add_argument("--direct-running-mode", choices=RUNNING_MODES, default="in_memory",
                   help="DirectRunner: workers as in_memory (default), multi_threading or "
                   "multi_processing (one process each)")  # fmt: skip
    return p


def _beam_args(p, extra: list[str]) -> tuple[str, ...]:
    """The options left for Beam: ``--name=value`` (or a bare ``--flag``) each."""
    odd = [a for a in extra if not a.startswith("--") or a == "--"]
    if odd:
        p.error(
            f"unrecognized arguments: {' '.join(odd)} (Beam pipeline options are passed as "
            "--name=value)"
        )
    return tuple(extra)


def _check_numbers(p, args) -> None:
    for flag, value in (("--num-shards", args.num_shards), ("--top-k", args.top_k),
                        ("--direct-num-workers", args.direct_num_workers),
                        ("--batch-size", args.batch_size or 1)):  # fmt: skip
        if value < 1:
            p.error(f"{flag} must be at least 1; got {value}")
    if args.num_shards > 99999:
        p.error(f"--num-shards must be at most 99999; got {args.num_shards}")


def _local_files_absolute(spec: str) -> str:
    """Comma-separated model entries or weights: local files made absolute (workers may run in
    another folder), names and remote paths as they are."""
    entries = [e.strip() for e in spec.split(",") if e.strip()]
    return ",".join(os.path.abspath(e) if os.path.exists(e) else e for e in entries)


def model_spec(args):
    from inception.batch.scoring import ModelSpec
    from inception.models.labels import read_labels_file

    class_names = read_labels_file(args.class_names) if args.class_names else None
    return ModelSpec(
        models=_local_files_absolute(args.model),
        weights=_local_files_absolute(args.weights),
        top_k=args.top_k,
        crops=args.crops,
        class_names=None if class_names is None else tuple(class_names),
        num_classes=args.classes or (len(class_names) if class_names else None),
        image_size=args.image_size,
        micro_batch=args.micro_batch,
        precision=args.precision,
    )


def _check_remote(paths) -> None:
    from apache_beam.io.filesystems import FileSystems

    from inception.errors import UsageError

    for path in paths:
        try:
            found = FileSystems.exists(path.strip())
        except Exception as exc:  # noqa: BLE001  (no plugin for the scheme, no credentials)
            raise UsageError(f"cannot reach {path.strip()!r}: {exc}") from None
        if not found:
            raise UsageError(f"model or weights file {path.strip()!r} does not exist.")


def say(line: str) -> None:
    print(f"inception batch-predict: {line}", file=sys.stderr, flush=True)


def main(argv=None) -> int:
    p = parser()
    args, extra = p.parse_known_args(argv)
    beam_args = _beam_args(p, extra)
    flags.require(p, args, "--model")
    _check_numbers(p, args)
    from inception.deploy.artifact import split_exported

    from .checks import check_arguments, random_weights

    entries = [e.strip() for e in args.model.split(",") if e.strip()]
    remote = [e for e in entries if "://" in e]  # gs://, s3://: checked once Beam is loaded
    others, exported = split_exported(",".join(e for e in entries if e not in remote))
    check_arguments(models=others, weights=args.weights,
                    image_size=None if exported or remote else args.image_size)  # fmt: skip
    from inception.batch import require_beam

    require_beam()
    _check_remote(remote + [w for w in args.weights.split(",") if "://" in w])
    if random_weights(args.weights, others):
        say("--weights none: predicting with RANDOM weights (for smoke tests only: the classes "
            "mean nothing)")  # fmt: skip
    return _run(args, beam_args)


def _run(args, beam_args) -> int:
    import logging

    from inception.batch.pipeline import BatchJob, PipelineError, per_second, run
    from inception.batch.sources import absolute, parse_input

    if not os.environ.get("INCEPTION_VERBOSE"):
        logging.getLogger("apache_beam").setLevel(logging.ERROR)
    job = BatchJob(
        input=parse_input(args.input, args.data_dir),
        model=model_spec(args),
        out=absolute(args.out),
        num_shards=args.num_shards,
        output_format=args.output_format,
        overwrite=args.overwrite,
        runner=args.runner,
        direct_num_workers=args.direct_num_workers,
        direct_running_mode=args.direct_running_mode,
        chunk=args.batch_size or 64,
        beam_args=beam_args,
    )
    try:
        summary = run(job, say)
    except PipelineError as exc:
        if os.environ.get("INCEPTION_DEBUG"):
            raise
        say(f"error: the pipeline failed: {exc} (finished shards are kept: rerun the same "
            "command to resume)")  # fmt: skip
        return 1
    if summary.counters:
        say("Beam counters: " + ", ".join(f"{k} {v}" for k, v in summary.counters.items()))
    now = (
        f"; this run: {summary.written} shards, {summary.images_now} images in "
        f"{summary.seconds:.1f} s, {per_second(summary.images_per_s)} images/s"
        if summary.written
        else ""
    )
    print(
        f"{summary.rows} rows ({summary.rows - summary.errors} images, {summary.errors} "
        f"unreadable) in {summary.shards} shards in {job.out}{now}"
    )
    if summary.missing:
        say(f"error: {len(summary.missing)} shards are unfinished ({summary.missing[:5]} ...); "
            "rerun the same command to finish them")  # fmt: skip
        return 1
    return 0
