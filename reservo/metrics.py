"""Prometheus metrics: requests, latency, bookings by outcome, lock waits, cache use.

Served at /metrics by `MetricsMiddleware`. Under gunicorn with several workers, set
PROMETHEUS_MULTIPROC_DIR so every worker's samples are aggregated.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client import REGISTRY as DEFAULT_REGISTRY

METRICS_PATH = "/metrics"

REQUESTS = Counter(
    "reservo_http_requests_total", "HTTP requests served.", ["method", "route", "status"]
)
LATENCY = Histogram(
    "reservo_http_request_duration_seconds",
    "Time to serve an HTTP request.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
BOOKINGS = Counter(
    "reservo_bookings_total",
    "Booking attempts through the API by outcome (created, replayed, or the error code).",
    ["outcome"],
)
LOCK_WAITS = Counter(
    "reservo_lock_wait_timeouts_total",
    "Requests refused because a lock wait passed its bound (busy or in progress).",
    ["code"],
)
CACHE = Counter(
    "reservo_cache_operations_total", "Shared cache reads by result.", ["cache", "result"]
)


def booking_outcome(outcome: str) -> None:
    BOOKINGS.labels(outcome=outcome).inc()


def lock_wait_exceeded(code: str) -> None:
    LOCK_WAITS.labels(code=code).inc()


def cache_result(cache: str, result: str) -> None:
    """result: "hit", "miss" or "error"."""
    CACHE.labels(cache=cache, result=result).inc()


class CacheErrorCounter(logging.Handler):
    """Counts the shared-cache failures django-redis logs and swallows (IGNORE_EXCEPTIONS)."""

    def emit(self, record: logging.LogRecord) -> None:
        cache_result("redis", "error")


def _route_of(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "unmatched"
    return "/" + str(match.route).lstrip("^")


def metrics_response() -> HttpResponse:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        payload = generate_latest(registry)
    else:
        payload = generate_latest(DEFAULT_REGISTRY)
    return HttpResponse(payload, content_type=CONTENT_TYPE_LATEST)


class MetricsMiddleware:
    """Counts and times every request, and answers GET /metrics."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info == METRICS_PATH and request.method in ("GET", "HEAD"):
            return metrics_response()
        started = time.perf_counter()
        response = self.get_response(request)
        route = _route_of(request)
        LATENCY.labels(method=request.method, route=route).observe(time.perf_counter() - started)
        REQUESTS.labels(method=request.method, route=route, status=response.status_code).inc()
        return response
