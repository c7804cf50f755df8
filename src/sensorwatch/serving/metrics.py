"""The model server's metrics in Prometheus' text format, under TF Serving's monitoring names.

tensorflow_model_server exports (with ``--rest_api_port`` and a monitoring config) a request
count by model and status, a request latency histogram in microseconds by model, API and
entry point, and SavedModel load attempts and load latency by path. The local server uses the
same names and labels, adding ``version`` where a request is served, with the colons as
underscores (TF Serving writes ``:tensorflow:serving:request_count``; a leading colon is not a
name PromQL can select plainly, and colons are reserved for recording rules), and counters end
in ``_total`` as prometheus_client writes them.
What TF Serving has no name for is ``sensorwatch_serving_*``: the versions loaded now, by state.

Served on the REST port at TF Serving's path ``/monitoring/prometheus/metrics`` and at
``/metrics`` (any path answers with the metrics).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily

#: Request latency buckets, microseconds (TF Serving's histogram is in microseconds too).
LATENCY_BUCKETS_US = (100, 250, 500, 1e3, 2.5e3, 5e3, 1e4, 2.5e4, 5e4, 1e5, 2.5e5, 5e5, 1e6, 2.5e6, 5e6)

#: TF Serving's path for Prometheus metrics on its REST port.
METRICS_PATH = "/monitoring/prometheus/metrics"


class ServerMetrics:
    """The counters the servicers and the model manager update, on their own registry."""

    def __init__(self, versions: Callable[[], Iterator[tuple[str, int, str]]]):
        """``versions()`` yields (model, version, state) of every version the server knows now."""
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "tensorflow_serving_request_count",
            "Predict and metadata requests by model, version and gRPC status",
            ["model_name", "version", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "tensorflow_serving_request_latency",
            "Request latency in microseconds, by model, version, API and entry point",
            ["model_name", "version", "API", "entrypoint"],
            buckets=LATENCY_BUCKETS_US,
            registry=self.registry,
        )
        self.load_attempts = Counter(
            "tensorflow_cc_saved_model_load_attempt_count",
            "SavedModel loads by path and outcome",
            ["model_path", "status"],
            registry=self.registry,
        )
        self.load_latency = Counter(
            "tensorflow_cc_saved_model_load_latency",
            "Microseconds spent loading SavedModels (warm-up included), by path",
            ["model_path"],
            registry=self.registry,
        )

        class Versions:
            def collect(self):
                g = GaugeMetricFamily(
                    "sensorwatch_serving_model_versions",
                    "Model versions the server knows, by state (AVAILABLE: loaded and serving)",
                    labels=["model_name", "version", "state"],
                )
                for name, version, state in versions():
                    g.add_metric([name, str(version), state], 1.0)
                yield g

        self.registry.register(Versions())
        self._server: Any = None

    def request(self, model: str, version: int | None, status: str, seconds: float, api: str) -> None:
        v = "" if version is None else str(version)
        self.requests.labels(model, v, status).inc()
        self.latency.labels(model, v, api, "GRPC").observe(seconds * 1e6)

    def load(self, path: str, ok: bool, seconds: float) -> None:
        self.load_attempts.labels(path, "success" if ok else "error").inc()
        self.load_latency.labels(path).inc(seconds * 1e6)

    def serve(self, host: str, port: int) -> int:
        """Serve on ``host:port`` (0: a free port); returns the port."""
        self._server, _ = start_http_server(port, addr=host, registry=self.registry)
        return self._server.server_port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
