"""Prometheus metrics: requests, latency, bookings by outcome, lock waits, cache use.

Served at /metrics by `MetricsMiddleware`, to loopback clients only, or, when
RESERVO_METRICS_TOKEN is set, to whoever sends it as a bearer token (from any address).
Under gunicorn with several workers, set PROMETHEUS_MULTIPROC_DIR so every worker's
samples are aggregated.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Callable

from django.conf import settings
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

from reservo.addresses import client_address, is_loopback

METRICS_PATH = "/metrics"
# Methods counted under their own name; any other (a client may send any token) is
# "other", so a client cannot make new label values, each a new time series.
KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)
OTHER_METHOD = "other"

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


def _method_label(request: HttpRequest) -> str:
    method = request.method or ""
    return method if method in KNOWN_METHODS else OTHER_METHOD


def metrics_allowed(request: HttpRequest) -> bool:
    """With RESERVO_METRICS_TOKEN set: the request carries it as a bearer token. Without:
    the client is on loopback (behind a proxy, the address the proxy saw, so a proxy on
    the same host does not make every client local)."""
    token = settings.RESERVO_METRICS_TOKEN
    if token:
        scheme, _space, given = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), token.encode()
        )
    return is_loopback(client_address(request))


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
            if metrics_allowed(request):
                return metrics_response()
            response = HttpResponse("Forbidden\n", status=403, content_type="text/plain")
            if settings.RESERVO_METRICS_TOKEN:
                response["WWW-Authenticate"] = "Bearer"
            return response
        started = time.perf_counter()
        response = self.get_response(request)
        route = _route_of(request)
        method = _method_label(request)
        LATENCY.labels(method=method, route=route).observe(time.perf_counter() - started)
        REQUESTS.labels(method=method, route=route, status=response.status_code).inc()
        return response
