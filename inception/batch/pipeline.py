"""The Beam pipeline of ``inception batch-predict``, its runner and options, and the run.

::

    files:  list (MatchFiles / ReadFromText) -> shard = crc32(path) % S -> keep unfinished
            -> GroupByKey (paths only) -> ShardJob
    tfds:   Create(one ShardJob per unfinished shard: a range of examples) -> Reshuffle
    then:   RunInference(ShardModelHandler) -> WriteShard (temporary name, rename, record)

``DirectRunner`` (the default) is Beam's local batch engine, the ``FnApiRunner``, with
``--direct_num_workers`` and ``--direct_running_mode`` (``in_memory``, ``multi_threading``,
``multi_processing``); Beam's own ``DirectRunner`` name would first try Prism, a separate
binary fetched from the internet that ignores both options. Any other runner is Beam's, by
name, with the remaining ``--name=value`` options passed to ``PipelineOptions``.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from dataclasses import dataclass, field

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import PipelineOptions

from ..errors import UsageError
from .handler import NAMESPACE, ShardModelHandler
from .output import MANIFEST_VERSION, Output
from .scoring import ModelSpec
from .shards import LOCAL_RUNNER, job_of, shard_of
from .sources import InputSpec, check_not_empty, is_local, list_inputs, tfds_jobs

JOB_SERVER_RUNNERS = ("flinkrunner", "sparkrunner")
KNOWN = "DirectRunner, DataflowRunner, FlinkRunner, SparkRunner, PrismRunner, PortableRunner"


class PipelineError(RuntimeError):
    """The pipeline stopped with an error (finished shards are kept)."""


@dataclass(frozen=True)
class BatchJob:
    """Everything one run needs: what to read, the model, where to write and how to run."""

    input: InputSpec
    model: ModelSpec
    out: str
    num_shards: int = 16
    output_format: str = "jsonl"
    overwrite: bool = False
    runner: str = LOCAL_RUNNER
    direct_num_workers: int = 1
    direct_running_mode: str = "in_memory"
    chunk: int = 64
    beam_args: tuple[str, ...] = ()

    def record(self) -> dict:
        """The manifest's description of the run (what a rerun must match to resume)."""
        return {
            "command": "inception batch-predict",
            "manifest_version": MANIFEST_VERSION,
            "input": self.input.describe(),
            "model": self.model.record(),
            "num_shards": self.num_shards,
            "output_format": self.output_format,
        }


@dataclass
class Summary:
    """What a run did: all rows of the output, and this run's share."""

    shards: int
    rows: int
    errors: int
    written: int  # shards written by this run
    before: int  # shards finished by earlier runs
    seconds: float = 0.0
    images_now: int = 0  # images scored by this run (readable ones)
    counters: dict = field(default_factory=dict)
    missing: list = field(default_factory=list)

    @property
    def images_per_s(self) -> float:
        return self.images_now / self.seconds if self.seconds else 0.0


# ---------------------------------------------------------------------------- runner, options


def pipeline_options(job: BatchJob) -> PipelineOptions:
    """Beam's options: the local runner's two, then the pass-through ones. A pass-through option
    Beam does not know is refused (Beam itself would drop it with a warning)."""
    args = list(job.beam_args)
    if job.runner == LOCAL_RUNNER:
        args = [
            f"--direct_num_workers={job.direct_num_workers}",
            f"--direct_running_mode={job.direct_running_mode}",
            *args,
        ]
    if not os.environ.get("INCEPTION_VERBOSE") and not any(
        a.startswith("--default_sdk_harness_log_level") for a in args
    ):
        args.append("--default_sdk_harness_log_level=WARNING")  # workers: warnings and errors
    options = PipelineOptions(args)
    unknown = set(options.get_all_options(retain_unknown_options=True)) - set(
        options.get_all_options()
    )
    if unknown:
        names = ", ".join(f"--{n}" for n in sorted(unknown))
        raise UsageError(
            f"{names}: neither an option of batch-predict nor a Beam pipeline option (Beam's "
            "options: https://beam.apache.org/releases/pydoc/current/"
            "apache_beam.options.pipeline_options.html)."
        )
    return options


def make_runner(name: str, options: PipelineOptions):
    """The runner called ``name``, checked to be runnable here, in one sentence if not."""
    if name == LOCAL_RUNNER:
        return _local_runner(options)
    from apache_beam.runners.runner import create_runner

    try:
        runner = create_runner(name)
    except ValueError:
        raise UsageError(f"unknown Beam runner {name!r}; use one of {KNOWN}.") from None
    except ImportError as exc:
        raise UsageError(f"the Beam runner {name} is not installed here ({exc}).") from None
    _check_installed(type(runner).__name__, options)
    return runner


def _local_runner(options: PipelineOptions):
    """Beam's FnApiRunner with the pipeline's options (as Beam's DirectRunner sets it up)."""
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle

    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    info = fn_runner.ExtendedProvisionInfo(
        beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded)
    )
    return fn_runner.FnApiRunner(provision_info=info)


def _check_installed(kind: str, options: PipelineOptions) -> None:
    """What a runner needs beside Beam itself: Dataflow its Google Cloud clients, Flink and
    Spark Java for the job server they start (unless ``--job_endpoint`` names a running one)."""
    if kind == "DataflowRunner":
        try:
            from apache_beam.runners.dataflow.internal import apiclient  # noqa: F401
        except ImportError:
            raise UsageError(
                "the DataflowRunner needs Beam's Google Cloud extra, which is not installed: "
                "pip install 'apache-beam[gcp]'."
            ) from None
    elif kind.lower() in JOB_SERVER_RUNNERS:
        endpoint = options.get_all_options().get("job_endpoint")
        if not endpoint and shutil.which("java") is None:
            raise UsageError(
                f"the {kind} starts a job server, which needs Java (not found on PATH); "
                "install a JRE, or pass --job_endpoint=HOST:PORT of a running job server."
            )


# -------------------------------------------------------------------------------- the graph


def assign(path: str, num_shards: int) -> tuple[int, str]:
    return shard_of(path, num_shards), path


def unfinished(keyed: tuple[int, object], todo: frozenset) -> bool:
    return keyed[0] in todo


class WriteShard(beam.DoFn):
    """Writes a scored shard (``output.Output.write_shard``) and counts it."""

    def __init__(self, out: str, num_shards: int, fmt: str):
        self.out, self.num_shards, self.fmt = out, num_shards, fmt
        self.images = Metrics.counter(NAMESPACE, "images")
        self.errors = Metrics.counter(NAMESPACE, "errors")
        self.shards = Metrics.counter(NAMESPACE, "shards")

    def process(self, result):
        job, rows = result.example, result.inference
        record = Output(self.out).write_shard(job.shard, self.num_shards, self.fmt, rows)
        self.images.inc(record["rows"] - record["errors"])
        self.errors.inc(record["errors"])
        self.shards.inc()
        yield record


def build(pipeline, job: BatchJob, todo: list[int], count: int | None) -> None:
    """The pipeline's transforms for the shards ``todo`` (``count``: examples of a tfds split)."""
    from apache_beam.ml.inference.base import RunInference

    if job.input.kind == "tfds":
        shards = tfds_jobs(job.input, count, job.num_shards, todo)
        jobs = pipeline | "Shards" >> beam.Create(shards) | "Spread" >> beam.Reshuffle()
    else:
        paths = list_inputs(pipeline, job.input, job.out)
        keyed = (
            paths
            | "Assign" >> beam.Map(assign, job.num_shards)
            | "Unfinished" >> beam.Filter(unfinished, frozenset(todo))
        )
        every = pipeline | "EveryShard" >> beam.Create([(s, None) for s in todo])
        jobs = (
            (keyed, every)
            | "Together" >> beam.Flatten()
            | "ByShard" >> beam.GroupByKey()
            | "Jobs" >> beam.Map(job_of)
        )
    scored = jobs | "Predict" >> RunInference(ShardModelHandler(job.model, job.chunk))
    _ = scored | "Write" >> beam.ParDo(WriteShard(job.out, job.num_shards, job.output_format))


# ---------------------------------------------------------------------------------- the run


class Watch(threading.Thread):
    """Says, while the pipeline runs, each time more shards are finished (their records)."""

    def __init__(self, output: Output, num_shards: int, before: set, say, every: float):
        super().__init__(daemon=True)
        self.output, self.num_shards, self.before, self.say = output, num_shards, before, say
        self.every, self.stop, self.seen = every, threading.Event(), set(before)
        self.start_time = time.perf_counter()

    def run(self):
        while not self.stop.wait(self.every):
            self.poll()

    def poll(self):
        try:
            finished = self.output.finished()
        except Exception:  # noqa: BLE001  (progress is best effort; the run itself decides)
            return
        if set(finished) <= self.seen:
            return
        self.seen = set(finished)
        now = [r for s, r in finished.items() if s not in self.before]
        images = sum(r["rows"] - r["errors"] for r in now)
        errors = sum(r["errors"] for r in now)
        rate = images / max(time.perf_counter() - self.start_time, 1e-9)
        self.say(
            f"{len(finished)}/{self.num_shards} shards finished; this run: {images} images, "
            f"{errors} unreadable, {per_second(rate)} images/s"
        )


def per_second(rate: float) -> str:
    """A rate with enough digits to be read below 1 (0.05, not 0.0)."""
    return f"{rate:.1f}" if rate >= 1 else f"{rate:.2g}"


def counters(result) -> dict:
    """This run's Beam counters of the namespace (images, errors, shards), where the runner
    reports them."""
    from apache_beam.metrics.metric import MetricsFilter

    try:
        found = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]
    except Exception:  # noqa: BLE001  (a runner without metrics: the records still count)
        return {}
    totals = {}
    for c in found:
        value = c.committed if c.committed is not None else c.attempted
        totals[c.key.metric.name] = totals.get(c.key.metric.name, 0) + int(value or 0)
    return {k: totals[k] for k in ("images", "errors", "shards") if k in totals}


def summary_of(output: Output, job: BatchJob, before: dict, seconds: float) -> Summary:
    finished = output.finished()
    output.write_manifest(job.record(), finished)
    now = [r for s, r in finished.items() if s not in before]
    return Summary(
        shards=job.num_shards,
        rows=sum(r["rows"] for r in finished.values()),
        errors=sum(r["errors"] for r in finished.values()),
        written=len(now),
        before=len(before),
        seconds=seconds,
        images_now=sum(r["rows"] - r["errors"] for r in now),
        missing=sorted(set(range(job.num_shards)) - set(finished)),
    )


def run(job: BatchJob, say=print) -> Summary:
    """Checks, writes the manifest, runs the pipeline over the unfinished shards, and returns
    the summary (``missing``: shards still unfinished)."""
    options = pipeline_options(job)
    runner = make_runner(job.runner, options)
    output = Output(job.out)
    try:
        count = check_not_empty(job.input, job.out)
        before = output.prepare(job.record(), job.overwrite)
    except OSError as exc:  # Beam's filesystems: no plugin for a scheme, no access, ...
        raise UsageError(f"cannot read the input or the output folder: {_last_line(exc)}") from None
    todo = [s for s in range(job.num_shards) if s not in before]
    if not todo:
        say(f"all {job.num_shards} shards were finished before; nothing to do")
        return summary_of(output, job, before, 0.0)
    if before:
        say(f"{len(before)}/{job.num_shards} shards finished before; predicting {len(todo)} more")
    watch = Watch(output, job.num_shards, set(before), say, 2.0 if is_local(job.out) else 15.0)
    start = time.perf_counter()
    watch.start()
    try:
        pipeline = beam.Pipeline(runner=runner, options=options)
        build(pipeline, job, todo, count)
        result = pipeline.run()
        result.wait_until_finish()
    except (UsageError, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001  (Beam wraps the workers' errors: one line of it)
        raise PipelineError(_last_line(exc)) from exc
    finally:
        watch.stop.set()
    summary = summary_of(output, job, before, time.perf_counter() - start)
    summary.counters = counters(result)
    return summary


def _last_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
