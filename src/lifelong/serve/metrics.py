"""Prometheus metrics of the service (``GET /metrics``).

Labels carry routes and status codes only — never tenant or user names, which would tell anyone who can
scrape the endpoint who the tenants are. With several workers, ``lifelong serve`` sets
``PROMETHEUS_MULTIPROC_DIR`` before they start and the endpoint aggregates every worker's samples
(prometheus_client's multi-process mode).
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

REQUESTS = Counter("lifelong_requests_total", "HTTP requests", ["route", "method", "status"])
REQUEST_SECONDS = Histogram("lifelong_request_seconds", "HTTP request time", ["route"], buckets=_BUCKETS)
OVERHEAD_SECONDS = Histogram(
    "lifelong_proxy_overhead_seconds",
    "proxy time outside the upstream call (auth, recall, prompt, log)",
    buckets=_BUCKETS,
)
UPSTREAM_SECONDS = Histogram("lifelong_upstream_seconds", "upstream model call time", buckets=_BUCKETS)
FEEDBACK_SECONDS = Histogram("lifelong_feedback_seconds", "feedback append time (durable)", buckets=_BUCKETS)


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    REQUESTS.labels(route, method, str(status)).inc()
    REQUEST_SECONDS.labels(route).observe(seconds)


def exposition() -> tuple[bytes, str]:
    """The text format of every sample (of every worker in multi-process mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
