"""``ModelServer``: TensorFlow Serving's REST and gRPC APIs over exported SavedModels.

One asyncio loop runs the aiohttp REST app and the ``grpc.aio`` server; both go through
``ModelServer`` (model resolution, input checks, dynamic batching), so they answer alike.
Models run on a small thread pool (TensorFlow releases the GIL); versions load on a separate
loader thread, polled from disk. Only ``tf.saved_model.load`` of the artifact is used: the
training and model-building code is not imported here. The command line is in ``cli.py``.

Memory is bounded by construction (see docs/serving.md): a request carries at most
``max_batch_size`` rows and ``max_request_bytes``; declared shapes and image headers are
checked before anything is allocated; the model runs at most the execution batch size per
model thread; requests over ``LARGE_REQUEST_BYTES`` are read, parsed and run at most
``max_large_requests`` at a time, and the memory they took is handed back to the operating
system afterwards (``malloc_trim``). Bodies over ``SMALL_REQUEST_BYTES`` are parsed off the
event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import errno
import gc
import logging
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..errors import UsageError
from . import codec
from .batching import Batcher, BatchingParameters
from .connections import ConnectionGuard, RateLimitedLog, ReceiveBudget
from .errors import from_tensorflow, invalid, not_found, unavailable
from .limits import (
    CLASSIFY_METHOD,
    DEFAULT_GRACE_SECONDS,
    DEFAULT_GRPC_PORT,
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_HOST,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_IMAGE_PIXELS,
    DEFAULT_MAX_JPEG_SCANS,
    DEFAULT_MAX_LARGE_REQUESTS,
    DEFAULT_MAX_RECEIVE_BYTES,
    DEFAULT_MAX_REQUEST_BYTES,
    DEFAULT_POLL_SECONDS,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_REST_PORT,
    DESCRIPTOR_RESERVE,
    LARGE_REQUEST_BYTES,
    LOG_INTERVAL_SECONDS,
    MEDIUM_PARSE_THREADS,
    PORT_FLAGS,
    SMALL_REQUEST_BYTES,
    default_max_connections,
    default_max_grpc_connections,
    descriptor_limit,
    jpeg_scans_error,
)
from .metrics import Metrics
from .repository import ModelSpec, ServedModel, Signature, Version, saved_model_base_error

log = logging.getLogger("inception.serving")


def port_problem(host: str, port: int, api: str, flag: str) -> str:
    """Why ``api`` (REST, gRPC) cannot listen on ``host:port``, or '' when it can (port 0:
    any free one). Binds a throw-away socket as the servers do (``SO_REUSEADDR``, so a port
    left in TIME_WAIT counts as free), on every address ``host`` names."""
    if not port:
        return ""
    try:
        addresses = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except (socket.gaierror, UnicodeError) as exc:
        return f"--host {host}: cannot listen there ({exc})"
    for family, kind, proto, _, address in addresses:
        try:
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return port_in_use(api, port, flag)
            return f"cannot listen for {api} on {host}:{port} ({flag}, --host): {exc.strerror}"
    return ""


def port_in_use(api: str, port: int, flag: str) -> str:
    return f"{api} port {port} is in use ({flag}); stop what holds it or choose another port"


def check_limits(request, receive, scans, idle, header) -> None:
    """One clear error for a limit that cannot work."""
    if receive - receive // 8 < request:
        raise UsageError(
            f"--max-receive-bytes {receive} is less than --max-request-bytes {request} plus an "
            "eighth kept for small bodies: a largest request could never be received; raise "
            "the first or lower the second."
        )
    if error := jpeg_scans_error(scans):
        raise UsageError(error)
    if idle <= 0 or header <= 0:
        raise UsageError(
            "--idle-timeout-seconds and --header-timeout-seconds must be > 0, got "
            f"{idle:g} and {header:g}."
        )


def check_connections(rest: int | None, grpc: int | None = None) -> tuple[int, int]:
    """``--max-connections`` and ``--max-grpc-connections`` (defaults: from the descriptor
    limit), checked to fit it together with the descriptors that the models and the logs
    need."""
    soft = descriptor_limit()
    room = soft - DESCRIPTOR_RESERVE
    limit = (
        f"this process's descriptor limit: the soft limit is {soft} (ulimit -n) and "
        f"{DESCRIPTOR_RESERVE} are kept for models, logs and the loader"
    )
    for flag, wanted in (("--max-connections", rest), ("--max-grpc-connections", grpc)):
        if wanted is not None and not 1 <= wanted < room:
            raise UsageError(
                f"{flag} {wanted} does not fit {limit}; give 1 to {max(1, room - 1)}, or raise "
                "the limit (ulimit -n)."
            )
    rest = default_max_connections(soft) if rest is None else rest
    if grpc is None:
        return rest, default_max_grpc_connections(rest, soft)
    if rest + grpc > room:
        raise UsageError(
            f"--max-connections {rest} (REST) and --max-grpc-connections {grpc} together do "
            f"not fit {limit}; keep their sum within {room}, or raise the limit (ulimit -n)."
        )
    return rest, grpc


class _MemoryTrim:
    """Hands freed heap memory back to the operating system (glibc ``malloc_trim``): soon after
    a large request, else once the model has been quiet for a second (not between batches
    under load, which reuse that memory); at most once a second; a no-op without glibc."""

    def __init__(self):
        name = ctypes.util.find_library("c")
        libc = ctypes.CDLL(name) if name else None
        self._trim = getattr(libc, "malloc_trim", None)
        self._lock = threading.Lock()
        self._last = self._busy = 0.0
        self._pending = self._large = False

    def note(self, large: bool = False) -> None:
        """Work that allocated happened (``large``: a large request)."""
        self._pending, self._large, self._busy = True, self._large or large, time.monotonic()

    def due(self) -> bool:
        now = time.monotonic()
        quiet = self._large or now - self._busy >= 1.0
        return self._pending and quiet and now - self._last >= 1.0

    def __call__(self) -> None:
        if self._trim is None or not self._lock.acquire(blocking=False):
            return
        try:
            self._pending = self._large = False
            self._trim(0)
            self._last = time.monotonic()
        finally:
            self._lock.release()


def settle_heap() -> None:
    """After versions load or unload: a full collection (an unloaded version's objects go),
    then what survives leaves the collector's view (``gc.freeze``). A loaded model is
    hundreds of thousands of Python objects that stay for its life; without this, each full
    collection under load walks them all, holding the event loop for a quarter of a second
    (about once every 20 s at 130 requests a second, measured). ``stop`` undoes it."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class _Admission:
    """``ModelServer.admit``, as a class: every request goes through it, and a generator-based
    context manager costs twice the time."""

    __slots__ = ("server", "large")

    def __init__(self, server: ModelServer, large: bool):
        self.server, self.large = server, large

    async def __aenter__(self) -> None:
        self.server._enter()
        if self.large:
            try:
                await self.server._wait_turn()
            except BaseException:
                self.server._leave()
                raise

    async def __aexit__(self, *exc) -> None:
        server = self.server
        if self.large:
            server._large.release()
            server.trim.note(large=True)
        server._leave()


class ModelServer:
    """The models, their batchers and the REST + gRPC front ends."""

    def __init__(
        self,
        specs: list[ModelSpec],
        params: BatchingParameters | None = None,
        *,
        host: str = DEFAULT_HOST,
        rest_port: int = DEFAULT_REST_PORT,
        grpc_port: int = DEFAULT_GRPC_PORT,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        max_receive_bytes: int | None = None,
        max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
        max_jpeg_scans: int = DEFAULT_MAX_JPEG_SCANS,
        max_large_requests: int = DEFAULT_MAX_LARGE_REQUESTS,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        header_timeout: float = DEFAULT_HEADER_TIMEOUT,
        max_connections: int | None = None,
        max_grpc_connections: int | None = None,
        poll_seconds: float = DEFAULT_POLL_SECONDS,
        enable_batching: bool = True,
        grace_seconds: float = DEFAULT_GRACE_SECONDS,
    ):
        names = [s.name for s in specs]
        if not specs or len(set(names)) != len(names):
            raise ValueError(f"model names must be given and distinct, got {names}.")
        if max_large_requests < 1 or max_request_bytes < 1 or max_image_pixels < 1:
            raise ValueError(
                "--max-large-requests, --max-request-bytes and --max-image-pixels must be >= 1."
            )
        if max_receive_bytes is None:  # the default, or room for the large requests' turns
            max_receive_bytes = max(
                DEFAULT_MAX_RECEIVE_BYTES, max_request_bytes * (max_large_requests + 1)
            )
        check_limits(
            max_request_bytes, max_receive_bytes, max_jpeg_scans, idle_timeout, header_timeout
        )
        self.max_connections, self.max_grpc_connections = check_connections(
            max_connections, max_grpc_connections
        )
        self.models = {s.name: ServedModel(s) for s in specs}
        self.params = params or BatchingParameters()
        self.host, self.rest_port, self.grpc_port = host, rest_port, grpc_port
        self.max_request_bytes = max_request_bytes
        self.max_receive_bytes = max_receive_bytes
        self.max_image_pixels = max_image_pixels
        self.max_jpeg_scans = max_jpeg_scans
        self.max_large_requests = max_large_requests
        self.read_timeout = read_timeout
        self.idle_timeout, self.header_timeout = idle_timeout, header_timeout
        self.logs = RateLimitedLog(LOG_INTERVAL_SECONDS)
        self.connections = ConnectionGuard(
            self.max_connections, idle_timeout, header_timeout, self.logs
        )
        self.receiving = ReceiveBudget(max_receive_bytes)
        self.poll_seconds = poll_seconds
        self.enable_batching = enable_batching
        self.grace_seconds = grace_seconds
        self.metrics = Metrics(self.models)
        self.draining = False
        self.deadline: float | None = None  # time.monotonic() when shutdown must be done
        self.trim = _MemoryTrim()
        self.port_flags = dict(PORT_FLAGS)  # named when a port cannot be bound
        self._active = 0
        self._started = False

    @property
    def max_rows(self) -> int:
        """The most rows (images, examples) one request may carry."""
        return self.params.max_batch_size

    # ----------------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Loads the models, then listens (the ports are known afterwards, also for port 0)."""
        for model in self.models.values():
            if not model.base.is_dir():
                raise FileNotFoundError(
                    f"model base path {model.base} does not exist; export a model there first "
                    "(inception export --out DIR --name NAME ...) and pass DIR/NAME."
                )
            error = saved_model_base_error(model.base, f"model {model.name!r}: base path")
            if error:
                raise UsageError(error)
        from . import grpc_api, rest  # TensorFlow

        self.loop = asyncio.get_running_loop()
        self.loop.set_exception_handler(self._loop_error)
        threads = self.params.num_batch_threads
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="inception-model")
        self._loader = ThreadPoolExecutor(1, thread_name_prefix="inception-loader")
        self._parser = ThreadPoolExecutor(
            self.max_large_requests, thread_name_prefix="inception-parse"
        )
        self._medium = ThreadPoolExecutor(
            MEDIUM_PARSE_THREADS, thread_name_prefix="inception-parse-medium"
        )
        self._slots = asyncio.Semaphore(threads)
        self._large = asyncio.Semaphore(self.max_large_requests)
        self._idle = asyncio.Event()
        self._idle.set()
        await self.refresh()
        self._poller = asyncio.ensure_future(self._poll())
        self._trimmer = asyncio.ensure_future(self._trim_memory())
        self._runner = self._grpc = None
        try:
            self._runner, self.rest_port = await rest.start(self, self.host, self.rest_port)
        except OSError as exc:  # taken since cli.py checked it
            await self._abandon()
            raise self._bind_error("REST", self.rest_port, exc) from None
        try:
            self._grpc, self.grpc_port = await grpc_api.start(self, self.host, self.grpc_port)
        except (OSError, RuntimeError) as exc:  # grpc says RuntimeError("Failed to bind ...")
            await self._abandon()
            raise self._bind_error("gRPC", self.grpc_port, exc) from None
        self._started = True
        log.info(
            "serving %s: REST on %s:%d, gRPC on %s:%d",
            ", ".join(self.models),
            self.host,
            self.rest_port,
            self.host,
            self.grpc_port,
        )

    def _loop_error(self, loop, context: dict) -> None:
        """asyncio's errors, with one line per interval for a listening socket out of
        descriptors (asyncio retries the accept every second) instead of a traceback each."""
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE):
            self.logs.warning(
                "descriptors",
                "cannot accept connections: out of descriptors (%s); lower --max-connections "
                "or raise the limit (ulimit -n)",
                exc.strerror,
            )
            return
        loop.default_exception_handler(context)

    def _bind_error(self, api: str, port: int, exc: Exception) -> UsageError:
        """One line for a port that could not be bound."""
        flag = self.port_flags[api]
        if getattr(exc, "errno", None) == errno.EADDRINUSE:
            return UsageError(port_in_use(api, port, flag))
        problem = port_problem(self.host, port, api, flag)  # gRPC's error does not say why
        return UsageError(
            problem or f"cannot listen for {api} on {self.host}:{port} ({flag}): {exc}"
        )

    async def _abandon(self) -> None:
        """Undoes a start that could not listen: the tasks, the REST app and the threads."""
        self._poller.cancel()
        self._trimmer.cancel()
        self.connections.stop()
        if self._runner is not None:
            await self._runner.cleanup()
        for pool in (self._executor, self._loader, self._parser, self._medium):
            pool.shutdown(wait=False, cancel_futures=True)
        gc.unfreeze()

    async def stop(self, grace: float | None = None) -> None:
        """Graceful shutdown within ``grace`` seconds: stops accepting (new requests on open
        connections get UNAVAILABLE), runs the queued batches that can finish a second before
        the end (time to answer and for the process to exit), answers the rest UNAVAILABLE,
        then releases the threads."""
        grace = self.grace_seconds if grace is None else grace
        self.draining = True
        if not self._started:
            return
        self._started = False
        self.deadline = time.monotonic() + grace - min(1.0, grace / 4)
        versions = [v for m in self.models.values() for v in m.versions.values()]
        for batcher in [b for v in versions for b in v.batchers.values()]:
            batcher.deadline = self.deadline
        for site in list(self._runner.sites):
            await site.stop()
        self.connections.stop()
        grpc_stopped = asyncio.ensure_future(self._grpc.stop(grace + 5))
        self._poller.cancel()
        self._trimmer.cancel()
        with contextlib.suppress(asyncio.TimeoutError):  # in-flight requests finish or expire
            await asyncio.wait_for(self._idle.wait(), max(0.1, grace))
        for model in self.models.values():
            for version in list(model.versions.values()):
                await self._close(version)
        with contextlib.suppress(asyncio.TimeoutError):  # their answers are written
            await asyncio.wait_for(self._idle.wait(), 2)
        await asyncio.gather(grpc_stopped, self._runner.cleanup())
        self._executor.shutdown(wait=True)
        self._parser.shutdown(wait=False, cancel_futures=True)
        self._medium.shutdown(wait=False, cancel_futures=True)
        self._loader.shutdown(wait=False, cancel_futures=True)
        gc.unfreeze()  # what settle_heap froze is the collector's again

    async def refresh(self) -> None:
        """One poll of every model's base path (new, changed and removed versions); when a
        version came or went, the heap is settled (``settle_heap``)."""
        changed = False
        for model in self.models.values():
            before = {n: id(v) for n, v in model.versions.items()}
            gone = await self.loop.run_in_executor(self._loader, model.refresh)
            for version in gone:
                await self._close(version)
            changed |= before != {n: id(v) for n, v in model.versions.items()}
            states = {}
            for v in model.versions.values():
                states[v.state] = states.get(v.state, 0) + 1
            for state in ("AVAILABLE", "END"):
                self.metrics.versions.labels(model.name, state).set(states.get(state, 0))
        if changed:
            await self.loop.run_in_executor(self._loader, settle_heap)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_seconds)
            try:
                await self.refresh()
            except Exception:  # keep polling whatever one scan did
                log.exception("polling the model base paths failed")

    async def _trim_memory(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            if self.trim.due():
                await self.loop.run_in_executor(self._loader, self.trim)

    async def _close(self, version: Version) -> None:
        batchers, version.batchers = version.batchers, {}
        await asyncio.gather(*(b.close() for b in batchers.values()))

    # ------------------------------------------------------------------------------ requests

    def admit(self, large: bool) -> _Admission:
        """``async with server.admit(large)``: one predict/classify request from arrival to
        answer. Refused while shutting down; a ``large`` one (body over
        ``LARGE_REQUEST_BYTES``) first waits for one of the ``max_large_requests`` turns, so
        that few large bodies are in memory at once."""
        return _Admission(self, large)

    def _enter(self) -> None:
        if self.draining:
            raise unavailable("the server is shutting down; retry on another replica.")
        self._active += 1
        self._idle.clear()

    def _leave(self) -> None:
        self._active -= 1
        if not self._active:
            self._idle.set()

    async def _wait_turn(self) -> None:
        """Waits for a large-request turn (the body stays unread meanwhile), as long as the
        client does; at the shutdown deadline the wait ends UNAVAILABLE."""
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                return await asyncio.wait_for(self._large.acquire(), 0.5)
            if self.deadline is not None and time.monotonic() > self.deadline:
                raise unavailable("the server is shutting down; retry on another replica.")

    def parser(self, size: int, large: bool = False):
        """Where a body of ``size`` bytes is parsed, checked and answered: the event loop
        (None) up to ``SMALL_REQUEST_BYTES``, else a parse thread (one of the large-request
        ones past ``LARGE_REQUEST_BYTES`` or for a ``large`` request, so that a medium body
        never waits behind a large one)."""
        if large or size > LARGE_REQUEST_BYTES:
            return self._parser
        return self._medium if size > SMALL_REQUEST_BYTES else None

    async def offload(self, executor, fn, *args):
        """``fn(*args)`` on ``executor`` (see ``parser``), or here on the loop for None."""
        if executor is None:
            return fn(*args)
        return await self.loop.run_in_executor(executor, fn, *args)

    def public(self, message: str) -> str:
        """``message`` without the server's file paths (model base paths and their parents),
        for answers; the log keeps them."""
        paths = {}
        for model in self.models.values():
            shown = f"<base path of model {model.name!r}>"
            for base in (model.base, model.base.resolve()):
                paths.setdefault(str(base.parent), "<its parent folder>")
                paths[str(base)] = shown
        for path in sorted(paths, key=len, reverse=True):  # the longest first
            if len(path) > 1:
                message = message.replace(path, paths[path])
        return message

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

    def check_inputs(self, sig: Signature, inputs: dict[str, np.ndarray]) -> int:
        """Names, shapes, rows and encoded images of predict inputs; returns the rows."""
        if set(inputs) != set(sig.inputs):
            raise invalid(
                f"signature {sig.name!r} expects inputs {sorted(sig.inputs)}, got {sorted(inputs)}."
            )
        rows = set()
        for key, arr in inputs.items():
            info = sig.inputs[key]
            codec.check_shape(arr, info)
            if arr.ndim:
                codec.check_rows(arr.shape[0], self.max_rows)
            if info.is_string and sig.method_name == CLASSIFY_METHOD:
                codec.check_examples(arr, key, sig.name, self.max_image_pixels, self.max_jpeg_scans)
            elif info.is_string:
                codec.check_images(arr, key, self.max_image_pixels, self.max_jpeg_scans)
            rows.add(arr.shape[0] if arr.ndim else -1)
        if len(rows) != 1:
            raise invalid("every input must have the same batch size (first dimension).")
        rows = rows.pop()
        if rows == 0:
            raise invalid("the batch is empty: send at least one example.")
        return rows

    def classify_signature(self, v: Version, signature_name: str | None) -> Signature:
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
        return sig

    def classify_inputs(self, sig: Signature, examples: list) -> dict[str, np.ndarray]:
        """``tf.train.Example``s -> the classify signature's input (serialized), checked."""
        if not examples:
            raise invalid("the classify request has no examples.")
        codec.check_rows(len(examples), self.max_rows, "examples")
        for i, ex in enumerate(examples):
            codec.check_example(ex, i, self.max_image_pixels, self.max_jpeg_scans)
        data = np.empty(len(examples), dtype=object)
        data[:] = [ex.SerializeToString() for ex in examples]
        return {next(iter(sig.inputs)): data}

    async def run(self, v: Version, sig: Signature, inputs, rows: int) -> dict[str, np.ndarray]:
        """Runs checked inputs through the signature (batched unless disabled)."""
        if not self.enable_batching or any(a.ndim == 0 for a in inputs.values()):
            try:
                return await self.loop.run_in_executor(self._executor, self._execute, sig, inputs)
            except Exception as exc:
                raise from_tensorflow(exc) from None
        batcher = v.batchers.get(sig.name)
        if batcher is None:
            batcher = Batcher(
                lambda batch: self._execute(sig, batch),
                self.params,
                self._executor,
                self._slots,
                name=f"{v.model}:{v.number}:{sig.name}",
                on_batch=self.metrics.batch_size.labels(v.model, sig.name).observe,
                on_queue=self.metrics.queue_rows.labels(v.model, sig.name).set,
                deadline=self.deadline,
            )
            v.batchers[sig.name] = batcher
        return await batcher.submit(inputs, rows)

    def _execute(self, sig: Signature, inputs) -> dict[str, np.ndarray]:
        try:
            return sig.run(inputs)
        finally:
            self.trim.note()

    def healthy(self) -> tuple[bool, dict]:
        """Ready when not shutting down and every model has an available version; else
        "draining", "loading", or "unavailable" with ``errors``: why a model has no version."""
        models = {name: m.available() for name, m in self.models.items()}
        ok = not self.draining and all(models.values())
        # a model with no version to serve says why (until one comes): not just loading
        problems = {k: self.models[k].problem for k, v in models.items() if not v}
        problems = {k: v for k, v in problems.items() if v}
        status = "ok" if ok else "draining" if self.draining else "loading"
        if status == "loading" and problems:
            status = "unavailable"
        body = {"status": status, "models": {k: [str(n) for n in v] for k, v in models.items()}}
        if problems:
            body["errors"] = problems
        return ok, body


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
