"""Prometheus metrics of the server (``GET /metrics`` on the REST port): requests, latency,
batch sizes, queue depth and version states, in a registry of their own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self, models=()):
        self.models = set(models)
        self._children = {}  # (model, api, method, code) -> its counter and histogram
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "inception_serving_requests",
            "Requests answered, by API, method and status code.",
            ["model", "api", "method", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "inception_serving_request_latency_seconds",
            "Time from request to answer.",
            ["model", "api", "method"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.batch_size = Histogram(
            "inception_serving_batch_size",
            "Rows per batch run by the model.",
            ["model", "signature"],
            registry=self.registry,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
        )
        self.queue_rows = Gauge(
            "inception_serving_queue_rows",
            "Rows waiting in the batch queue.",
            ["model", "signature"],
            registry=self.registry,
        )
        self.versions = Gauge(
            "inception_serving_model_versions",
            "Model versions by state.",
            ["model", "state"],
            registry=self.registry,
        )

    def observe(self, model: str, api: str, method: str, code: str, seconds: float) -> None:
        """Counts one answered request; ``model`` must be a served model's name (others are
        counted as ``_unknown``, so clients cannot grow the label set)."""
        if model not in self.models:
            model = "_unknown"
        key = (model, api, method, code)
        counted = self._children.get(key)
        if counted is None:  # ``labels`` takes a lock and builds its key on every call
            counted = self._children[key] = (
                self.requests.labels(*key),
                self.latency.labels(model, api, method),
            )
        counted[0].inc()
        counted[1].observe(seconds)

    def text(self) -> bytes:
        return generate_latest(self.registry)
