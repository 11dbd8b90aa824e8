"""``inception serve``: TensorFlow Serving's REST and gRPC APIs over exported SavedModels.

One asyncio loop runs the aiohttp REST app and the ``grpc.aio`` server; both go through
``ModelServer`` (model resolution, input checks, dynamic batching), so they answer alike.
Models run on a small thread pool (TensorFlow releases the GIL); versions load on a separate
loader thread, polled from disk. Only ``tf.saved_model.load`` of the artifact is used: the
training and model-building code is not imported here.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import codec
from .batching import Batcher, BatchingParameters
from .errors import from_tensorflow, invalid, not_found, unavailable
from .metrics import Metrics
from .repository import ModelSpec, ServedModel, Signature, Version, parse_model_config

log = logging.getLogger("inception.serving")

CLASSIFY_METHOD = "tensorflow/serving/classify"
DEFAULT_MAX_REQUEST_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_IMAGE_PIXELS = 64_000_000


class ModelServer:
    """The models, their batchers and the REST + gRPC front ends."""

    def __init__(
        self,
        specs: list[ModelSpec],
        params: BatchingParameters | None = None,
        *,
        host: str = "0.0.0.0",
        rest_port: int = 8501,
        grpc_port: int = 8500,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
        poll_seconds: float = 2.0,
        enable_batching: bool = True,
        grace_seconds: float = 30.0,
    ):
        names = [s.name for s in specs]
        if not specs or len(set(names)) != len(names):
            raise ValueError(f"model names must be given and distinct, got {names}.")
        self.models = {s.name: ServedModel(s) for s in specs}
        self.params = params or BatchingParameters()
        self.host, self.rest_port, self.grpc_port = host, rest_port, grpc_port
        self.max_request_bytes = max_request_bytes
        self.max_image_pixels = max_image_pixels
        self.poll_seconds = poll_seconds
        self.enable_batching = enable_batching
        self.grace_seconds = grace_seconds
        self.metrics = Metrics(self.models)
        self.draining = False
        self._started = False

    # ----------------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Loads the models, then listens (the ports are known afterwards, also for port 0)."""
        from . import grpc_api, rest

        for model in self.models.values():
            if not model.base.is_dir():
                raise FileNotFoundError(
                    f"model base path {model.base} does not exist; export a model there first "
                    "(inception export --out DIR --name NAME ...) and pass DIR/NAME."
                )
        self.loop = asyncio.get_running_loop()
        threads = self.params.num_batch_threads
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="inception-model")
        self._loader = ThreadPoolExecutor(1, thread_name_prefix="inception-loader")
        self._slots = asyncio.Semaphore(threads)
        await self.refresh()
        self._poller = asyncio.ensure_future(self._poll())
        self._runner, self.rest_port = await rest.start(self, self.host, self.rest_port)
        self._grpc, self.grpc_port = await grpc_api.start(self, self.host, self.grpc_port)
        self._started = True
        log.info(
            "serving %s: REST on %s:%d, gRPC on %s:%d",
            ", ".join(self.models),
            self.host,
            self.rest_port,
            self.host,
            self.grpc_port,
        )

    async def stop(self, grace: float | None = None) -> None:
        """Graceful shutdown: stops accepting, finishes in-flight requests (up to ``grace``
        seconds), drains the batch queues, then releases the model threads."""
        grace = self.grace_seconds if grace is None else grace
        self.draining = True
        if not self._started:
            return
        self._started = False
        self._poller.cancel()
        await asyncio.gather(self._grpc.stop(grace), self._runner.cleanup())
        for model in self.models.values():
            for version in list(model.versions.values()):
                await self._close(version)
        self._executor.shutdown(wait=True)
        self._loader.shutdown(wait=False, cancel_futures=True)

    async def refresh(self) -> None:
        """One poll of every model's base path (new, changed and removed versions)."""
        for model in self.models.values():
            gone = await self.loop.run_in_executor(self._loader, model.refresh)
            for version in gone:
                await self._close(version)
            states = {}
            for v in model.versions.values():
                states[v.state] = states.get(v.state, 0) + 1
            for state in ("AVAILABLE", "END"):
                self.metrics.versions.labels(model.name, state).set(states.get(state, 0))

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_seconds)
            try:
                await self.refresh()
            except Exception:  # keep polling whatever one scan did
                log.exception("polling the model base paths failed")

    async def _close(self, version: Version) -> None:
        batchers, version.batchers = version.batchers, {}
        await asyncio.gather(*(b.close() for b in batchers.values()))

    # ------------------------------------------------------------------------------ requests

    def model(self, name: str) -> ServedModel:
        try:
            return self.models[name]
        except KeyError:
            raise not_found(
                f"Servable not found for request: Latest({name}); served models: "
                f"{', '.join(sorted(self.models))}."
            ) from None

    def resolve(self, name: str, version=None, label=None) -> Version:
        return self.model(name).resolve(version, label)

    @staticmethod
    def signature(version: Version, name: str | None) -> Signature:
        name = name or "serving_default"
        try:
            return version.signatures[name]
        except KeyError:
            raise invalid(
                f'Serving signature name: "{name}" not found in signature def; this model has '
                f"{', '.join(sorted(version.signatures))}."
            ) from None

    def _check_inputs(self, sig: Signature, inputs: dict[str, np.ndarray]) -> int:
        if set(inputs) != set(sig.inputs):
            raise invalid(
                f"signature {sig.name!r} expects inputs {sorted(sig.inputs)}, got {sorted(inputs)}."
            )
        rows = set()
        for key, arr in inputs.items():
            info = sig.inputs[key]
            codec.check_shape(arr, info)
            if info.is_string:
                codec.check_images(arr, key, self.max_image_pixels)
            rows.add(arr.shape[0] if arr.ndim else -1)
        if len(rows) != 1:
            raise invalid("every input must have the same batch size (first dimension).")
        return rows.pop()

    async def predict(self, name, version, label, signature_name, inputs) -> tuple:
        """Runs a predict signature: returns ``(Version, Signature, outputs)``."""
        v = self.resolve(name, version, label)
        sig = self.signature(v, signature_name)
        rows = self._check_inputs(sig, inputs)
        if rows == 0:
            raise invalid("the batch is empty: send at least one example.")
        outputs = await self._run(v, sig, inputs, rows)
        return v, sig, outputs

    async def classify(self, name, version, label, signature_name, examples) -> tuple:
        """Runs a classify signature on ``tf.train.Example``s: ``(Version, Signature,
        classes or None, scores or None)``, each ``[batch, k]``."""
        v = self.resolve(name, version, label)
        if (
            not signature_name
            and "serving_default" in v.signatures
            and (v.signatures["serving_default"].method_name != CLASSIFY_METHOD)
        ):
            # TF-Serving would insist on serving_default; pick the model's classify signature.
            choices = [s for s in v.signatures.values() if s.method_name == CLASSIFY_METHOD]
            signature_name = choices[0].name if len(choices) == 1 else None
        sig = self.signature(v, signature_name)
        if sig.method_name != CLASSIFY_METHOD:
            raise invalid(
                f"Expected classification signature method_name to be "
                f"{CLASSIFY_METHOD}. Was: {sig.method_name}"
            )
        if len(sig.inputs) != 1:
            raise invalid(f"classify signature {sig.name!r} must have exactly one input.")
        if not examples:
            raise invalid("the classify request has no examples.")
        for ex in examples:
            feature = ex.features.feature.get("image/encoded")
            if feature is not None:
                data = np.array(list(feature.bytes_list.value), dtype=object)
                codec.check_images(data, "image/encoded", self.max_image_pixels)
        key = next(iter(sig.inputs))
        inputs = {key: np.array([ex.SerializeToString() for ex in examples], dtype=object)}
        outputs = await self._run(v, sig, inputs, len(examples))
        return v, sig, outputs.get("classes"), outputs.get("scores")

    async def _run(self, v: Version, sig: Signature, inputs, rows: int):
        if not self.enable_batching or any(a.ndim == 0 for a in inputs.values()):
            try:
                return await self.loop.run_in_executor(self._executor, sig.run, inputs)
            except Exception as exc:
                raise from_tensorflow(exc) from None
        batcher = v.batchers.get(sig.name)
        if batcher is None:
            if self.draining:
                raise unavailable("the server is shutting down.")
            batcher = Batcher(
                sig.run,
                self.params,
                self._executor,
                self._slots,
                name=f"{v.model}:{v.number}:{sig.name}",
                on_batch=self.metrics.batch_size.labels(v.model, sig.name).observe,
                on_queue=self.metrics.queue_rows.labels(v.model, sig.name).set,
            )
            v.batchers[sig.name] = batcher
        return await batcher.submit(inputs, rows)

    def healthy(self) -> tuple[bool, dict]:
        """Ready when not shutting down and every model has an available version."""
        models = {name: m.available() for name, m in self.models.items()}
        ok = not self.draining and all(models.values())
        return ok, {
            "status": "ok" if ok else ("draining" if self.draining else "loading"),
            "models": {k: [str(n) for n in v] for k, v in models.items()},
        }


class ServerThread:
    """Runs a ``ModelServer`` on its own event loop in a background thread (tests, demo,
    benchmarks): ``with ServerThread(server): ...`` starts it and stops it gracefully."""

    def __init__(self, server: ModelServer):
        self.server = server
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name="inception-serve", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def _main(self):
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.server.start())
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()

    def start(self, timeout: float = 300.0) -> ServerThread:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"the server did not start within {timeout} s")
        if self._error is not None:
            raise self._error
        return self

    def call(self, coro, timeout: float = 120.0):
        """Runs a coroutine on the server's loop and returns its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self, grace: float = 10.0) -> None:
        if not self._thread.is_alive():
            return
        try:
            self.call(self.server.stop(grace), timeout=grace + 60)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(30)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# ----------------------------------------------------------------------------------------- CLI


def parse_args(argv):
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
    p.add_argument("--rest-port", "--rest_api_port", type=int, default=8501)
    p.add_argument("--grpc-port", "--port", type=int, default=8500)
    p.add_argument("--host", default="0.0.0.0", help="address to listen on (0.0.0.0)")
    p.add_argument(
        "--batching-parameters-file",
        default=None,
        help="TF-Serving batching parameters (text format), e.g. serve/batching.config",
    )
    p.add_argument("--max-batch-size", type=int, default=None)
    p.add_argument("--batch-timeout-micros", type=int, default=None)
    p.add_argument("--max-enqueued-batches", type=int, default=None)
    p.add_argument("--num-batch-threads", type=int, default=None)
    p.add_argument("--no-batching", action="store_true", help="run every request on its own")
    p.add_argument(
        "--max-request-bytes",
        type=int,
        default=DEFAULT_MAX_REQUEST_BYTES,
        help="largest REST body / gRPC message (64 MiB)",
    )
    p.add_argument(
        "--max-image-pixels",
        type=int,
        default=DEFAULT_MAX_IMAGE_PIXELS,
        help="refuse images whose header declares more pixels (64e6)",
    )
    p.add_argument(
        "--poll-seconds",
        "--file_system_poll_wait_seconds",
        type=float,
        default=2.0,
        help="how often to look for new versions (2 s)",
    )
    p.add_argument(
        "--grace-seconds",
        type=float,
        default=30.0,
        help="time in-flight requests get to finish on SIGTERM (30 s)",
    )
    return p.parse_args(argv)


def build_server(args) -> ModelServer:
    if args.model_config_file:
        if not os.path.isfile(args.model_config_file):
            raise FileNotFoundError(f"no such model config file: {args.model_config_file}")
        with open(args.model_config_file) as f:
            specs = parse_model_config(f.read(), os.path.dirname(args.model_config_file))
    else:
        base = os.path.abspath(args.model_base_path)
        if not os.path.isdir(base):
            raise FileNotFoundError(
                f"--model-base-path {args.model_base_path} does not exist; it should hold version "
                "folders written by `inception export --out DIR --name NAME` (DIR/NAME)."
            )
        name = args.model_name or os.path.basename(base.rstrip(os.sep))
        specs = [ModelSpec(name, base, args.version_policy)]
    if args.batching_parameters_file and not os.path.isfile(args.batching_parameters_file):
        raise FileNotFoundError(
            f"no such batching parameters file: {args.batching_parameters_file}"
        )
    params = (
        BatchingParameters.from_file(args.batching_parameters_file)
        if args.batching_parameters_file
        else BatchingParameters()
    )
    overrides = {
        k: getattr(args, k)
        for k in (
            "max_batch_size",
            "batch_timeout_micros",
            "max_enqueued_batches",
            "num_batch_threads",
        )
        if getattr(args, k) is not None
    }
    if overrides:
        fields = {**params.__dict__, **overrides}
        if "max_batch_size" in overrides and fields["allowed_batch_sizes"]:
            fields["allowed_batch_sizes"] = []
        params = BatchingParameters(**fields)
    return ModelServer(
        specs,
        params,
        host=args.host,
        rest_port=args.rest_port,
        grpc_port=args.grpc_port,
        max_request_bytes=args.max_request_bytes,
        max_image_pixels=args.max_image_pixels,
        poll_seconds=args.poll_seconds,
        enable_batching=not args.no_batching,
        grace_seconds=args.grace_seconds,
    )


async def _serve(server: ModelServer) -> None:
    await server.start()
    print(
        f"inception serve: REST http://{server.host}:{server.rest_port}/v1/models/"
        f"{next(iter(server.models))}  gRPC {server.host}:{server.grpc_port}",
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    started = time.monotonic()
    print("inception serve: shutting down, finishing in-flight requests", flush=True)
    await server.stop()
    print(f"inception serve: stopped ({time.monotonic() - started:.1f} s)", flush=True)


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = parse_args(argv)
    server = build_server(args)
    asyncio.run(_serve(server))
    return 0
