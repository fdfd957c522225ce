"""/metrics adds up every gunicorn worker: whichever worker answers, it counts all requests."""

from __future__ import annotations

import os
import re
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings

from tests.conftest import free_port, start_gunicorn, subprocess_database_url, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

REQUESTS = 40


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as reply:  # noqa: S310 (loopback)
        return str(reply.read().decode())


def healthz_count(metrics: str) -> float:
    return sum(
        float(value)
        for value in re.findall(
            r'^reservo_http_requests_total\{[^}]*route="/healthz"[^}]*\} ([0-9.e+]+)$',
            metrics,
            re.M,
        )
    )


def test_every_worker_reports_every_request() -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(
        DATABASE_URL=subprocess_database_url(),
        REDIS_URL=settings.REDIS_URL,
        HOST="127.0.0.1",
        PORT=str(port),
        RESERVO_WEB_WORKERS="3",
    )
    server = start_gunicorn(env)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: _answers(base + "/healthz"), 30, "the server did not start")
        before = healthz_count(get(base + "/metrics"))
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda _: get(base + "/healthz"), range(REQUESTS)))
        # Several scrapes, answered by whichever worker: each sees every request.
        with ThreadPoolExecutor(6) as pool:
            scrapes = list(pool.map(lambda _: get(base + "/metrics"), range(6)))
        assert all(healthz_count(s) - before >= REQUESTS for s in scrapes)
    finally:
        server.terminate()
        server.wait(30)


def _answers(url: str) -> bool:
    try:
        get(url)
    except OSError:
        return False
    return True
