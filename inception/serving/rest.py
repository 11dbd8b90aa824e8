"""TensorFlow Serving's REST API on aiohttp.

``GET  /v1/models/{name}[/versions/{v}|/labels/{l}]``            model status
``GET  /v1/models/{name}[/versions/{v}|/labels/{l}]/metadata``   signatures
``POST /v1/models/{name}[/versions/{v}|/labels/{l}]:predict``    row or columnar format
``POST /v1/models/{name}[/versions/{v}|/labels/{l}]:classify``   ``tf.Example``s as JSON
``GET  /healthz`` (ready: 200, else 503) and ``GET /metrics`` (Prometheus; also at TF-Serving's
``/monitoring/prometheus/metrics``). Errors are ``{"error": "..."}`` with the HTTP status of
the gRPC code.

Bodies are read as they stream in, up to ``--max-request-bytes`` (also after ``gzip`` or
``deflate`` decompression, which stops at the limit) and within ``--read-timeout-seconds``.
Bodies over ``SMALL_REQUEST_BYTES`` are decompressed, depth-checked, parsed and converted on a
parse thread (over ``LARGE_REQUEST_BYTES``, one of ``--max-large-requests``), a chunk of JSON
at a time; small ones on the event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import zlib

import grpc
import numpy as np
from aiohttp import web
from google.protobuf import json_format

from . import codec, protos
from .errors import ServingError, internal, invalid, not_found, too_large
from .limits import LARGE_REQUEST_BYTES

log = logging.getLogger("inception.serving")

MAX_JSON_DEPTH = 64  # a rank-32 tensor in the row format needs about 35
ENCODINGS = ("identity", "gzip", "x-gzip", "deflate")

_PATH = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?:(?P<metadata>/metadata)|:(?P<verb>[a-z]+))?$"
)


def _parse_path(request: web.Request):
    m = _PATH.match(request.path)
    if m is None:
        raise not_found(f"Malformed request: {request.method} {request.path}")
    version = m["version"]
    if version is not None:
        if not re.fullmatch(r"[0-9]{1,19}", version) or int(version) >= 2**63:
            raise invalid(
                f"the model version in the URL must be a positive integer, got {version!r}."
            )
        version = int(version)
    return m["name"], version, m["label"], m["metadata"] is not None, m["verb"]


def _dumps(data) -> str:
    # NaN/Infinity are written as TF-Serving does (bare NaN); bytes never reach here.
    return json.dumps(data, separators=(",", ":"))


def _json(data, status=200) -> web.Response:
    return _text(_dumps(data), status)


def _text(text: str, status=200) -> web.Response:
    return web.Response(text=text, status=status, content_type="application/json")


def _over_limit(limit: int, what: str = "the request body is too large") -> ServingError:
    return too_large(
        f"{what}: more than {limit} bytes (--max-request-bytes); send fewer or smaller "
        "images per request."
    )


def body_encoding(request: web.Request, limit: int) -> str:
    """The body's ``Content-Encoding``, checked with its announced length before anything is
    read (or waited for)."""
    encoding = (request.headers.get("Content-Encoding") or "identity").strip().lower()
    if encoding not in ENCODINGS:
        raise invalid(
            f"unsupported Content-Encoding {encoding!r}; send the body as is, gzip or deflate.",
            http=415,
        )
    if request.content_length is not None and request.content_length > limit:
        raise _over_limit(limit)
    return encoding


async def read_body(request: web.Request, limit: int, timeout: float) -> tuple[bytes, str]:
    """The raw body (possibly compressed) and its ``Content-Encoding``, read as it streams in:
    refused past ``limit`` bytes, or when it takes longer than ``timeout`` seconds. What was
    read of a refused or abandoned body is dropped at once (no exception keeps it alive)."""
    encoding = body_encoding(request, limit)
    chunks, size, problem, chunk = [], 0, None, None
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.content.iter_any():
                size += len(chunk)
                if size > limit:
                    problem = _over_limit(limit)
                    break
                chunks.append(chunk)
    except (ConnectionError, EOFError) as exc:
        exc.__traceback__ = None  # aiohttp keeps it on the request: no cycle through frames
        problem = ServingError(
            grpc.StatusCode.CANCELLED, "the client closed the connection before sending its body."
        )
    except TimeoutError:
        problem = ServingError(
            grpc.StatusCode.DEADLINE_EXCEEDED,
            f"the request body did not arrive within {timeout:g} s (--read-timeout-seconds).",
            http=408,
        )
    if problem is not None:
        chunks.clear()
        chunk = None  # noqa: F841 (the frame is in the traceback: it must not hold the body)
        raise problem
    return b"".join(chunks), encoding


def inflate(data: bytes, encoding: str, limit: int) -> bytes:
    """Decompresses a ``gzip``/``deflate`` body, stopping as soon as it passes ``limit``."""
    if encoding == "identity":
        return data
    wbits = (
        31 if encoding in ("gzip", "x-gzip") else (15 if data[:1] and data[0] & 15 == 8 else -15)
    )
    out, size = [], 0
    try:
        while data:
            inflater = zlib.decompressobj(wbits)
            chunk = inflater.decompress(data, limit - size + 1)
            size += len(chunk)
            if size > limit or inflater.unconsumed_tail:
                raise _over_limit(limit, f"the {encoding} request body is too large once inflated")
            if not inflater.eof:
                raise invalid(f"the {encoding} request body is cut short.")
            out.append(chunk)
            data = inflater.unused_data if wbits == 31 else b""  # gzip may hold several members
    except zlib.error as exc:
        raise invalid(f"the request body is not valid {encoding} data: {exc}.") from None
    return b"".join(out)


JSON_CHUNK = 64 * 1024  # the most JSON text one json.loads call parses (it holds the GIL)
_STEP = 1 << 22
_STRUCTURAL = np.zeros(256, bool)
_STRUCTURAL[list(b"[]{},:")] = True
_DELTA = np.zeros(256, np.int8)
_DELTA[list(b"[{")], _DELTA[list(b"]}")] = 1, -1


def json_index(body: bytes):
    """Positions, nesting levels and bytes of the structural characters ``[]{},:`` outside
    strings (a container's brackets and its own commas share one level, the outermost 1),
    computed with NumPy a few MiB at a time. Raises INVALID_ARGUMENT for text nested deeper
    than ``MAX_JSON_DEPTH`` or with unbalanced brackets or quotes."""
    data = np.frombuffer(body, np.uint8)
    found, quoted, escapes, depth, peak = [], 0, 0, 0, 0
    for start in range(0, len(data), _STEP):
        chunk = data[start : start + _STEP]
        index = np.arange(len(chunk), dtype=np.int32)
        last_plain = np.maximum.accumulate(np.where(chunk == 92, np.int32(-1), index))
        quotes = np.flatnonzero(chunk == 34)
        before = last_plain[np.maximum(quotes - 1, 0)] if len(chunk) else quotes
        before = np.where(quotes > 0, before, -1)
        runs = quotes - 1 - before + np.where(before < 0, escapes, 0)  # backslashes before
        quotes = quotes[runs % 2 == 0]  # the unescaped ones open or close strings
        where = np.flatnonzero(_STRUCTURAL[chunk])
        where = where[(np.searchsorted(quotes, where) + quoted) % 2 == 0]
        chars = chunk[where]
        delta = _DELTA[chars]
        after = np.cumsum(delta, dtype=np.int32) + depth
        if len(after):
            if after.min() < 0:
                raise invalid("JSON Parse error: a ']' or '}' closes nothing.")
            peak, depth = max(peak, int(after.max())), int(after[-1])
        found.append(
            ((where + start).astype(np.int32), (after + (delta < 0)).astype(np.int16), chars)
        )
        quoted = (quoted + len(quotes)) % 2
        tail = len(chunk) - 1 - int(last_plain[-1]) if len(chunk) else 0
        escapes = tail + (escapes if len(chunk) and last_plain[-1] < 0 else 0)
    if peak > MAX_JSON_DEPTH:
        raise invalid(
            f"the JSON body nests arrays/objects {peak} levels deep; the limit is {MAX_JSON_DEPTH}."
        )
    if depth or quoted:
        raise invalid("JSON Parse error: the body ends inside an array, object or string.")
    if not found:
        return np.zeros(0, np.int32), np.zeros(0, np.int8), np.zeros(0, np.uint8)
    return tuple(np.concatenate(parts) for parts in zip(*found, strict=True))


def _loads(text: bytes):
    try:
        return json.loads(text)
    except RecursionError:
        raise invalid(f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels.") from None
    except ValueError as exc:  # also UnicodeDecodeError
        raise invalid(f"JSON Parse error: {exc}") from None


def _numeric(part: list) -> list:
    """Elements that are all numeric lists of one shape -> NumPy arrays (8 bytes a number
    instead of a Python object each); anything else as is."""
    if not part or not isinstance(part[0], list):
        return part
    try:
        arr = np.asarray(part)
    except (ValueError, OverflowError):  # ragged
        return part
    return list(arr) if arr.dtype.kind in "biuf" and arr.ndim >= 2 else part


def _load(body: bytes, index, a: int, b: int, level: int, arrays: bool = False):
    """The JSON value in ``body[a:b]``, parsed ``JSON_CHUNK`` bytes at a time: a larger array
    or object is split at its own commas into runs of elements parsed together (each large
    element on its own, recursively), so that other threads get the GIL in between. With
    ``arrays``, runs of numeric lists become NumPy arrays as they are parsed (for predict
    inputs, which become arrays anyway)."""
    if b - a <= JSON_CHUNK:
        return _loads(body[a:b])
    pos, levels, chars = index
    i, j = int(np.searchsorted(pos, a)), int(np.searchsorted(pos, b))
    if i == j or body[a : pos[i]].strip() or chars[i] not in b"[{":
        return _loads(body[a:b])  # a long string or number, or an error json reports
    first, close = int(pos[i]), int(pos[j - 1])
    if levels[j - 1] != level or body[close + 1 : b].strip():
        return _loads(body[a:b])
    inner = slice(i + 1, j - 1)
    own = levels[inner] == level
    commas = pos[inner][own & (chars[inner] == ord(","))].astype(np.int64)
    colons = pos[inner][own & (chars[inner] == ord(":"))].astype(np.int64)
    starts, ends = np.append(first + 1, commas + 1), np.append(commas, close)
    is_list = chars[i] == ord("[")
    if len(commas) == 0 and not body[first + 1 : close].strip():
        return [] if is_list else {}
    opening, closing = (b"[", b"]") if is_list else (b"{", b"}")
    out = [] if is_list else {}
    k = 0
    while k < len(starts):
        start, end = int(starts[k]), int(ends[k])
        if end - start > JSON_CHUNK:  # one large element (or member) on its own
            if is_list:
                out.append(_load(body, index, start, end, level + 1, arrays))
            else:
                colon = int(colons[np.searchsorted(colons, start)]) if len(colons) else end
                key = _loads(body[start:colon]) if colon < end else None
                if not isinstance(key, str):
                    raise invalid("JSON Parse error: an object member has no string key.")
                out[key] = _load(body, index, colon + 1, end, level + 1, arrays)
            k += 1
            continue
        m = max(k + 1, int(np.searchsorted(ends, start + JSON_CHUNK, side="right")))
        text = body[start : int(ends[m - 1])]
        part = _loads(opening + text + closing)
        if is_list:  # (no strings: NumPy would pad them all to the longest)
            out.extend(_numeric(part) if arrays and b'"' not in text else part)
        else:
            out.update(part)
        k = m
    return out


def parse_json(body: bytes, arrays: bool = False):
    """A JSON text -> Python, depth-limited, parsed incrementally when large (see ``_load``
    for ``arrays``)."""
    if body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH:
        return _loads(body)
    return _load(body, json_index(body), 0, len(body), 1, arrays)


_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _lone_surrogate(value, depth: int = 0) -> str | None:
    """A string (value or object key) in parsed JSON that is not valid Unicode: a lone UTF-16
    surrogate such as ``"\\ud800"``, which JSON allows but UTF-8 cannot encode."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value
        return None
    if depth > MAX_JSON_DEPTH:
        return None
    items = value.items() if isinstance(value, dict) else value if isinstance(value, list) else ()
    for item in items:
        pair = item if isinstance(value, dict) else (item,)
        for part in pair:
            found = _lone_surrogate(part, depth + 1)
            if found is not None:
                return found
    return None


def check_unicode(text: bytes, body) -> None:
    """Refuses JSON whose strings hold lone surrogates (looked for only when the text has a
    ``\\uD800``-``\\uDFFF`` escape; paired ones are fine)."""
    if not _SURROGATE.search(text):
        return
    found = _lone_surrogate(body)
    if found is not None:
        shown = found.encode("utf-8", "backslashreplace").decode("ascii", "replace")[:60]
        raise invalid(
            f"the JSON body has a string that is not valid Unicode ({shown!r}: a lone UTF-16 "
            "surrogate escape \\uD800-\\uDFFF); escape characters as valid pairs, or send "
            'bytes as {"b64": ...}.'
        )


def decode_json(data: bytes, encoding: str, limit: int, arrays: bool = False):
    text = inflate(data, encoding, limit)
    body = parse_json(text, arrays)
    check_unicode(text, body)
    if not isinstance(body, dict):
        raise invalid("the request body must be a JSON object.")
    name = body.get("signature_name")
    if name is not None and not isinstance(name, str):
        raise invalid("'signature_name' must be a string.")
    return body


def parse_predict(server, v, data: bytes, encoding: str):
    """Body -> ``(signature, inputs, rows, columnar)``, every check done."""
    body = decode_json(data, encoding, server.max_request_bytes, arrays=True)
    sig = server.signature(v, body.get("signature_name"))
    inputs, _, columnar = codec.parse_predict(body, sig.inputs, server.max_rows)
    rows = server.check_inputs(sig, inputs)
    return sig, inputs, rows, columnar


def parse_classify(server, v, data: bytes, encoding: str):
    """Body -> ``(signature, inputs, rows)``, every check done."""
    body = decode_json(data, encoding, server.max_request_bytes)
    sig = server.classify_signature(v, body.get("signature_name"))
    examples = protos.examples_from_json(body, server.max_rows, server.max_request_bytes)
    return sig, server.classify_inputs(sig, examples), len(examples)


def _is_large(request: web.Request) -> bool:
    length = request.content_length
    return length is None or length > LARGE_REQUEST_BYTES or "Content-Encoding" in request.headers


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def _check_route(request: web.Request, metadata: bool, verb: str | None) -> None:
    """The HTTP method of a parsed model path: GET for status and metadata, POST for
    ``:predict`` and ``:classify`` (405 naming it otherwise)."""
    allowed = "GET" if verb is None else "POST"
    if request.method != allowed:
        raise ServingError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"{request.method} is not served at {request.path}; use {allowed}.",
            http=405,
        )
    if verb is not None and (metadata or verb not in ("predict", "classify", "regress")):
        raise not_found(f"Malformed request: POST {request.path}; use :predict or :classify")


def make_app(server) -> web.Application:
    def error(exc: ServingError) -> web.Response:
        response = web.json_response({"error": server.public(exc.message)}, status=exc.http_status)
        if exc.http == 405:
            response.headers["Allow"] = "POST" if "use POST" in exc.message else "GET"
        return response

    async def infer(request, name, version, label, verb):
        v = server.resolve(name, version, label)
        body_encoding(request, server.max_request_bytes)
        large = _is_large(request)
        async with server.admit(large):
            need = request.content_length
            need = server.max_request_bytes if need is None else need
            await server.receiving.take(need, server.read_timeout, lambda: _gone(request))
            try:
                return await answer(request, v, verb, large)
            finally:
                server.receiving.give(need)
                server.trim.note(large=need > LARGE_REQUEST_BYTES)

    async def answer(request, v, verb, large):
        data, encoding = await read_body(request, server.max_request_bytes, server.read_timeout)
        where = server.parser(len(data), large)
        if verb == "predict":
            sig, inputs, rows, columnar = await server.offload(
                where, parse_predict, server, v, data, encoding
            )
            del data
            outputs = await server.run(v, sig, inputs, rows)
            del inputs
            body = await server.offload(where, codec.predict_body, outputs, columnar)
            return web.Response(body=body, content_type="application/json")
        sig, inputs, rows = await server.offload(where, parse_classify, server, v, data, encoding)
        del data
        outputs = await server.run(v, sig, inputs, rows)
        result = protos.classify_rows(outputs.get("classes"), outputs.get("scores"), rows)
        return _json({"result": result})

    def method_of(metadata, verb) -> str:
        return verb or ("metadata" if metadata else "status")

    async def models(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        name, method, code = request.match_info.get("tail", "?"), "unknown", "OK"
        problem = None
        try:
            name, version, label, metadata, verb = _parse_path(request)
            method = method_of(metadata, verb)
            _check_route(request, metadata, verb)
            if verb is None:
                if metadata:
                    v = server.resolve(name, version, label)
                    return _json(
                        json_format.MessageToDict(
                            protos.metadata_response(name, v), preserving_proto_field_name=True
                        )
                    )
                response = protos.status_response(server.model(name), version, label)
                for entry in response.model_version_status:
                    entry.status.error_message = server.public(entry.status.error_message)
                return _json(
                    json_format.MessageToDict(
                        response,
                        preserving_proto_field_name=True,
                        always_print_fields_with_no_presence=True,
                    )
                )
            if verb == "regress":
                raise invalid("this server's models have no regression signatures.")
            return await infer(request, name, version, label, verb)
        except ServingError as exc:
            problem = exc.with_traceback(None)  # kept here: no cycle through this frame
        except UnicodeError:  # text the checks above did not expect: still the client's
            problem = invalid(
                "the request holds text that is not valid Unicode; send strings as UTF-8, "
                'or bytes as {"b64": ...}.'
            )
        except Exception:  # a bug: logged, answered 500 and counted as such
            log.exception("REST %s %s failed", request.method, request.path)
            problem = internal("internal error while answering the request (see the log).")
        finally:
            if problem is not None:
                code = problem.code.name
            elif _gone(request):
                code = "CANCELLED"  # answered after the client left: never delivered
            server.metrics.observe(name, "rest", method, code, time.perf_counter() - started)
        return error(problem)

    async def expect(request: web.Request):
        """``Expect: 100-continue``: the checks that need no body (route, method, model,
        encoding, size) come first, so a body that would be refused is never sent."""
        name = method = request.match_info.get("tail", "?")
        try:
            name, version, label, metadata, verb = _parse_path(request)
            method = method_of(metadata, verb)
            _check_route(request, metadata, verb)
            if verb is not None:
                server.resolve(name, version, label)
                body_encoding(request, server.max_request_bytes)
        except ServingError as exc:
            server.metrics.observe(name, "rest", method, exc.code.name, 0.0)
            response = error(exc)
            response.force_close()
            return response
        if request.headers.get("Expect", "").lower() != "100-continue":
            answer = {"error": "only 'Expect: 100-continue' is served."}
            return web.json_response(answer, status=417)
        if request.version >= (1, 1):
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            request.writer.output_size = 0
        return None

    async def health(request):
        ok, body = server.healthy()
        if "errors" in body:
            body["errors"] = {k: server.public(v) for k, v in body["errors"].items()}
        return web.json_response(body, status=200 if ok else 503)

    async def metrics(request):
        body = server.metrics.text()
        return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4"})

    @web.middleware
    async def connection_state(request, handler):
        guard = server.connections
        guard.busy(request.transport)
        try:
            return await handler(request)
        finally:
            guard.done(request.transport)

    app = web.Application(client_max_size=server.max_request_bytes, middlewares=[connection_state])
    app.router.add_route("*", "/v1/models/{tail:.*}", models, expect_handler=expect)
    app.router.add_get("/healthz", health, allow_head=False)
    app.router.add_get("/metrics", metrics, allow_head=False)
    app.router.add_get("/monitoring/prometheus/metrics", metrics, allow_head=False)
    return app


class _GuardedSite(web.TCPSite):
    """A TCP site whose sockets go through the server's ``ConnectionGuard``."""

    def __init__(self, runner, host, port, guard):
        super().__init__(runner, host, port, reuse_address=True)
        self._guard = guard

    async def start(self) -> None:
        await web.BaseSite.start(self)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._guard.protocol_factory(self._runner.server),
            self._host,
            self._port,
            reuse_address=True,
            backlog=self._backlog,
        )
        self._bound_port = self._server.sockets[0].getsockname()[1]


async def start(server, host: str, port: int):
    """Starts the REST app; returns the runner (for cleanup) and the bound port. Bodies are
    decompressed here (``inflate``, capped), not by aiohttp."""
    runner = web.AppRunner(
        make_app(server),
        access_log=None,
        shutdown_timeout=2.0,
        auto_decompress=False,
        keepalive_timeout=server.idle_timeout + server.header_timeout + 1,  # the guard decides
    )
    await runner.setup()
    site = _GuardedSite(runner, host, port, server.connections)
    await site.start()
    server.connections.start()
    bound = port or site.port
    return runner, bound
