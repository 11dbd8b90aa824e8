"""``inception serve``: the command line of ``ModelServer`` (TF-Serving's flags where they exist,
plus this server's limits), with graceful shutdown on SIGTERM/SIGINT. It parses its arguments and
checks its ports and base paths before TensorFlow is loaded."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time

from inception.errors import UsageError
from inception.serving.batching import BatchingParameters
from inception.serving.limits import (
    DEFAULT_GRACE_SECONDS,
    DEFAULT_GRPC_PORT,
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_HOST,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_LARGE_REQUESTS,
    DEFAULT_MAX_RECEIVE_BYTES,
    DEFAULT_MAX_REQUEST_BYTES,
    DEFAULT_POLL_SECONDS,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_REST_PORT,
    DESCRIPTOR_RESERVE,
    LARGE_REQUEST_BYTES,
)
from inception.serving.repository import ModelSpec, parse_model_config, saved_model_base_error
from inception.serving.server import ModelServer, port_problem

from . import flags

PORT_SPELLINGS = {"REST": ("--rest-port", "--rest_api_port"), "gRPC": ("--grpc-port", "--port")}
BATCHING_FLAGS = (
    "max_batch_size",
    "batch_timeout_micros",
    "max_enqueued_batches",
    "num_batch_threads",
    "max_execution_batch_size",
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="inception serve",
        description="Serve exported SavedModels with TensorFlow Serving's REST and gRPC APIs.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model-base-path", help="folder with one sub-folder per version (1, 2, ...)")
    src.add_argument(
        "--model-config-file",
        help="TF-Serving model config (model_config_list), for several models",
    )
    p.add_argument(
        "--model-name", default=None, help="name clients use (default: the base path's folder name)"
    )
    p.add_argument(
        "--version-policy",
        choices=("all", "latest"),
        default="all",
        help="serve every version (default) or only the latest",
    )
    p.add_argument("--rest-port", "--rest_api_port", type=int, default=DEFAULT_REST_PORT)
    p.add_argument("--grpc-port", "--port", type=int, default=DEFAULT_GRPC_PORT)
    p.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"address to listen on ({DEFAULT_HOST}; 0.0.0.0 for all interfaces, e.g. in a "
        "container: there is no authentication, put a proxy in front)",
    )
    p.add_argument(
        "--batching-parameters-file",
        default=None,
        help="TF-Serving batching parameters (text format), e.g. serve/batching.config",
    )
    p.add_argument(
        "--max-batch-size",
        type=int,
        default=None,
        help="most rows (images) per request, and per model run unless splitting (16)",
    )
    p.add_argument("--batch-timeout-micros", type=int, default=None)
    p.add_argument("--max-enqueued-batches", type=int, default=None)
    p.add_argument("--num-batch-threads", type=int, default=None)
    p.add_argument(
        "--enable-large-batch-splitting",
        action="store_true",
        default=None,
        help="split requests into model runs of --max-execution-batch-size rows",
    )
    p.add_argument(
        "--max-execution-batch-size",
        type=int,
        default=None,
        help="with splitting: most rows per model run (default --max-batch-size)",
    )
    p.add_argument("--no-batching", action="store_true", help="run every request on its own")
    p.add_argument(
        "--max-request-bytes",
        type=int,
        default=DEFAULT_MAX_REQUEST_BYTES,
        help="largest REST body (after decompression) / gRPC message (64 MiB)",
    )
    p.add_argument(
        "--max-receive-bytes",
        type=int,
        default=None,
        help="bytes of all REST bodies in flight together, from first byte to answer; others "
        f"wait up to --read-timeout-seconds ({DEFAULT_MAX_RECEIVE_BYTES // 2**20} MiB, or "
        "--max-request-bytes x (--max-large-requests + 1) when larger)",
    )
    flags.add_max_image_pixels(p)
    flags.add_max_jpeg_scans(p)
    p.add_argument(
        "--max-large-requests",
        type=int,
        default=DEFAULT_MAX_LARGE_REQUESTS,
        help=f"requests over {LARGE_REQUEST_BYTES // 2**20} MiB handled at once; the others "
        f"wait unread ({DEFAULT_MAX_LARGE_REQUESTS})",
    )
    p.add_argument(
        "--read-timeout-seconds",
        type=float,
        default=DEFAULT_READ_TIMEOUT,
        help=f"time a REST client has to send its body ({DEFAULT_READ_TIMEOUT:g} s)",
    )
    p.add_argument(
        "--idle-timeout-seconds",
        type=float,
        default=DEFAULT_IDLE_TIMEOUT,
        help="a connection with no request in progress is closed after this "
        f"({DEFAULT_IDLE_TIMEOUT:g} s; gRPC's idle connections too)",
    )
    p.add_argument(
        "--header-timeout-seconds",
        type=float,
        default=DEFAULT_HEADER_TIMEOUT,
        help="time a REST client has to send a request's headers, from its first byte "
        f"({DEFAULT_HEADER_TIMEOUT:g} s)",
    )
    p.add_argument(
        "--max-connections",
        type=int,
        default=None,
        help="REST connections open at once; more are answered 503 and closed (half the "
        f"descriptor soft limit left after {DESCRIPTOR_RESERVE}, at most 10000: 448 under "
        "ulimit -n 1024)",
    )
    p.add_argument(
        "--max-grpc-connections",
        type=int,
        default=None,
        help="gRPC connections open at once; more are closed before their handshake (the "
        "descriptors left after the reserve and --max-connections, at most 10000: 448 under "
        "ulimit -n 1024)",
    )
    p.add_argument(
        "--poll-seconds",
        "--file_system_poll_wait_seconds",
        type=float,
        default=DEFAULT_POLL_SECONDS,
        help=f"how often to look for new versions ({DEFAULT_POLL_SECONDS:g} s)",
    )
    p.add_argument(
        "--grace-seconds",
        type=float,
        default=DEFAULT_GRACE_SECONDS,
        help="on SIGTERM: time queued work gets to run; the rest is answered UNAVAILABLE "
        f"({DEFAULT_GRACE_SECONDS:g} s)",
    )
    return p


def parse_serve_args(argv):
    args = parser().parse_args(argv)
    given = sys.argv[1:] if argv is None else argv
    args.port_flags = {  # the spelling given, for messages
        api: next((f for f in names for a in given if a == f or a.startswith(f + "=")), names[0])
        for api, names in PORT_SPELLINGS.items()
    }
    return args


def check_ports(args) -> None:
    """Refuses, in one line, a port that another program holds: before any model loads."""
    flags = args.port_flags
    if args.rest_port and args.rest_port == args.grpc_port:
        raise UsageError(
            f"{flags['REST']} and {flags['gRPC']} are both {args.rest_port}; give each its own port"
        )
    for api, port in (("REST", args.rest_port), ("gRPC", args.grpc_port)):
        problem = port_problem(args.host, port, api, flags[api])
        if problem:
            raise UsageError(problem)


def batching_parameters(args) -> BatchingParameters:
    """The batching parameters file (or the defaults), with the command line's overrides."""
    path = args.batching_parameters_file
    if path and not os.path.isfile(path):
        raise FileNotFoundError(f"no such batching parameters file: {path}")
    params = BatchingParameters.from_file(path) if path else BatchingParameters()
    overrides = {k: getattr(args, k) for k in BATCHING_FLAGS if getattr(args, k) is not None}
    if args.enable_large_batch_splitting:
        overrides["enable_large_batch_splitting"] = True
    if not overrides:
        return params
    fields = {**params.__dict__, **overrides}
    if args.max_execution_batch_size and not fields["enable_large_batch_splitting"]:
        raise ValueError(
            "--max-execution-batch-size applies to split requests: add "
            "--enable-large-batch-splitting (or set it in the batching parameters file)."
        )
    if {"max_batch_size", "max_execution_batch_size"} & set(overrides) and fields[
        "allowed_batch_sizes"
    ]:
        fields["allowed_batch_sizes"] = []
    return BatchingParameters(**fields)


def build_server(args) -> ModelServer:
    if args.model_config_file:
        if not os.path.isfile(args.model_config_file):
            raise FileNotFoundError(f"no such model config file: {args.model_config_file}")
        with open(args.model_config_file) as f:
            specs = parse_model_config(f.read(), os.path.dirname(args.model_config_file))
        for spec in specs:
            if not os.path.isdir(spec.base_path):
                raise FileNotFoundError(
                    f"model {spec.name!r} of {args.model_config_file}: base_path "
                    f"{spec.base_path} does not exist (a path inside a container?); set it to "
                    "the DIR/NAME folder of `inception export --out DIR --name NAME` (a relative "
                    "base_path is read from the config file's folder)."
                )
            what = f"model {spec.name!r} of {args.model_config_file}: base_path"
            error = saved_model_base_error(spec.base_path, what)
            if error:
                raise UsageError(error)
    else:
        base = os.path.abspath(args.model_base_path)
        if not os.path.isdir(base):
            raise FileNotFoundError(
                f"--model-base-path {args.model_base_path} does not exist; it should hold version "
                "folders written by `inception export --out DIR --name NAME` (DIR/NAME)."
            )
        error = saved_model_base_error(args.model_base_path, "--model-base-path")
        if error:
            raise UsageError(error)
        name = args.model_name or os.path.basename(base.rstrip(os.sep))
        specs = [ModelSpec(name, base, args.version_policy)]
    server = ModelServer(
        specs,
        batching_parameters(args),
        host=args.host,
        rest_port=args.rest_port,
        grpc_port=args.grpc_port,
        max_request_bytes=args.max_request_bytes,
        max_receive_bytes=args.max_receive_bytes,
        max_image_pixels=args.max_image_pixels,
        max_jpeg_scans=args.max_jpeg_scans,
        max_large_requests=args.max_large_requests,
        read_timeout=args.read_timeout_seconds,
        idle_timeout=args.idle_timeout_seconds,
        header_timeout=args.header_timeout_seconds,
        max_connections=args.max_connections,
        max_grpc_connections=args.max_grpc_connections,
        poll_seconds=args.poll_seconds,
        enable_batching=not args.no_batching,
        grace_seconds=args.grace_seconds,
    )
    server.port_flags = dict(getattr(args, "port_flags", server.port_flags))
    return server


async def serve(server: ModelServer) -> None:
    """Serves until SIGTERM or SIGINT, then shuts down gracefully (a second signal exits at
    once)."""
    await server.start()
    print(
        f"inception serve: REST http://{server.host}:{server.rest_port}/v1/models/"
        f"{next(iter(server.models))}  gRPC {server.host}:{server.grpc_port}",
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal():
        if stop.is_set():
            print("inception serve: second signal, exiting now", flush=True)
            os._exit(1)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    await stop.wait()
    started = time.monotonic()
    print(
        f"inception serve: shutting down, finishing in-flight requests (up to "
        f"{server.grace_seconds:g} s)",
        flush=True,
    )
    await server.stop()
    print(f"inception serve: stopped ({time.monotonic() - started:.1f} s)", flush=True)


def main(argv=None) -> int:
    """``inception serve``: serves until a signal; once stopped, the process exits at once
    (the interpreter's teardown of TensorFlow takes seconds and has nothing left to save)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = parse_serve_args(argv)
    check_ports(args)  # before the model config (and TensorFlow) is read
    server = build_server(args)
    asyncio.run(serve(server))
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
