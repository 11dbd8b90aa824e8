"""TensorFlow Serving's REST API on aiohttp.

``GET  /v1/models/{name}[/versions/{v}|/labels/{l}]``            model status
``GET  /v1/models/{name}[/versions/{v}|/labels/{l}]/metadata``   signatures
``POST /v1/models/{name}[/versions/{v}|/labels/{l}]:predict``    row or columnar format
``POST /v1/models/{name}[/versions/{v}|/labels/{l}]:classify``   ``tf.Example``s as JSON
``GET  /healthz`` (ready: 200, else 503) and ``GET /metrics`` (Prometheus; also at TF-Serving's
``/monitoring/prometheus/metrics``). Errors are ``{"error": "..."}`` with the HTTP status of
the gRPC code.
"""

from __future__ import annotations

import json
import re
import time

from aiohttp import web
from google.protobuf import json_format

from . import codec, protos
from .errors import ServingError, invalid, not_found

_PATH = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?:(?P<metadata>/metadata)|:(?P<verb>[a-z]+))?$"
)


def _error(exc: ServingError) -> web.Response:
    return web.json_response({"error": exc.message}, status=exc.http_status)


def _parse_path(request: web.Request):
    m = _PATH.match(request.path)
    if m is None:
        raise not_found(f"Malformed request: {request.method} {request.path}")
    version = m["version"]
    if version is not None:
        if not version.isdigit():
            raise invalid(f"version must be a positive integer, got {version!r}")
        version = int(version)
    return m["name"], version, m["label"], m["metadata"] is not None, m["verb"]


def _json(data, status=200) -> web.Response:
    # NaN/Infinity are written as TF-Serving does (bare NaN); bytes never reach here.
    return web.Response(
        text=json.dumps(data, separators=(",", ":")), status=status, content_type="application/json"
    )


def make_app(server) -> web.Application:
    async def models(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        name, method, code = request.match_info.get("tail", "?"), "unknown", "OK"
        try:
            name, version, label, metadata, verb = _parse_path(request)
            if request.method == "GET":
                if verb is not None:
                    raise not_found(f"Malformed request: GET {request.path} (use POST)")
                method = "metadata" if metadata else "status"
                if metadata:
                    v = server.resolve(name, version, label)
                    return _json(
                        json_format.MessageToDict(
                            protos.metadata_response(name, v), preserving_proto_field_name=True
                        )
                    )
                response = protos.status_response(server.model(name), version, label)
                return _json(
                    json_format.MessageToDict(
                        response,
                        preserving_proto_field_name=True,
                        always_print_fields_with_no_presence=True,
                    )
                )
            if metadata or verb not in ("predict", "classify", "regress"):
                raise not_found(
                    f"Malformed request: POST {request.path}; use :predict or :classify"
                )
            method = verb
            if verb == "regress":
                raise invalid("this server's models have no regression signatures.")
            try:
                body = json.loads(await request.read())
            except web.HTTPRequestEntityTooLarge:
                raise
            except (ValueError, UnicodeDecodeError) as exc:
                raise invalid(f"JSON Parse error: {exc}") from None
            if not isinstance(body, dict):
                raise invalid("the request body must be a JSON object.")
            signature_name = body.get("signature_name")
            if signature_name is not None and not isinstance(signature_name, str):
                raise invalid("'signature_name' must be a string.")
            if verb == "predict":
                v = server.resolve(name, version, label)
                sig = server.signature(v, signature_name)
                inputs, _, columnar = codec.parse_predict(body, sig.inputs)
                _, _, outputs = await server.predict(name, v.number, None, sig.name, inputs)
                return _json(codec.predict_response(outputs, columnar))
            examples = codec.examples_from_json(body)
            _, _, classes, scores = await server.classify(
                name, version, label, signature_name, examples
            )
            return _json({"result": protos.classify_rows(classes, scores, len(examples))})
        except web.HTTPRequestEntityTooLarge as exc:
            code = "RESOURCE_EXHAUSTED"
            return web.json_response(
                {
                    "error": f"request body too large: {exc.text}; the limit is "
                    f"{server.max_request_bytes} bytes (--max-request-bytes)."
                },
                status=413,
            )
        except ServingError as exc:
            code = exc.code.name
            return _error(exc)
        finally:
            server.metrics.observe(name, "rest", method, code, time.perf_counter() - started)

    async def health(request):
        ok, body = server.healthy()
        return web.json_response(body, status=200 if ok else 503)

    async def metrics(request):
        body = server.metrics.text()
        return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4"})

    app = web.Application(client_max_size=server.max_request_bytes)
    app.router.add_route("*", "/v1/models/{tail:.*}", models)
    app.router.add_get("/healthz", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/monitoring/prometheus/metrics", metrics)
    return app


async def start(server, host: str, port: int):
    """Starts the REST app; returns the runner (for cleanup) and the bound port."""
    runner = web.AppRunner(make_app(server), access_log=None, shutdown_timeout=server.grace_seconds)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    bound = port or runner.addresses[0][1]
    return runner, bound
