"""Prometheus metrics: requests, errors and latency by model and version, the log's state.

With several worker processes, prometheus_client's multiprocess mode (a shared
folder named by PROMETHEUS_MULTIPROC_DIR, set by the server before the workers
start) makes every scrape report the sum over the workers.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

# From 0.1 ms: the server answers in well under a millisecond when it is healthy.
BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        registry = None if self.multiprocess else self.registry
        self.requests = Counter(
            "boite_requests",
            "Requests answered, by endpoint, model, version and status code.",
            ["endpoint", "model", "version", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "boite_request_seconds",
            "Time from the request's arrival in the app to its answer.",
            ["endpoint", "model", "version"],
            buckets=BUCKETS,
            registry=registry,
        )
        self.rows = Counter(
            "boite_predicted_rows",
            "Rows scored, by model, version and role (champion, challenger, shadow).",
            ["model", "version", "role"],
            registry=registry,
        )
        self.log_pending = Gauge(
            "boite_log_pending_rows",
            "Rows of the prediction log not yet on disk.",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.log_written = Gauge(
            "boite_log_written_rows",
            "Rows of the prediction log written since the server started.",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.reloads = Gauge(
            "boite_model_reloads",
            "Times the served versions changed because an alias moved.",
            multiprocess_mode="max",
            registry=registry,
        )

    def render(self) -> tuple[bytes, str]:
        if self.multiprocess:
            from prometheus_client import multiprocess

            registry: Any = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
