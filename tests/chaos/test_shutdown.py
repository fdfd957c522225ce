"""SIGTERM drains: a booking in flight when the server is told to stop still completes,
and the server then exits; nothing is left half-written."""

from __future__ import annotations

import json
import os
import signal
import threading
import urllib.request
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.db import connection

from bookings.api_keys import api_client_create
from bookings.models import Reservation
from tests.conftest import free_port, start_gunicorn, subprocess_database_url, wait_until
from tests.factories import ResourceFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_sigterm_lets_the_in_flight_booking_finish() -> None:
    resource = ResourceFactory(capacity=5)
    _client, key = api_client_create(name="shutdown", scopes=["book"])
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": subprocess_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "RESERVO_WEB_WORKERS": "1",
        "RESERVO_LOCK_TIMEOUT_MS": "10000",
        "RESERVO_STATEMENT_TIMEOUT_MS": "15000",
    }
    server = start_gunicorn(env)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: _get_ok(base + "/healthz"), 30, "the server did not start")
        params = connection.get_connection_params()
        params.pop("cursor_factory", None)
        params.pop("context", None)
        response: dict[str, Any] = {}
        with psycopg.connect(**params) as blocker:
            # Hold the resource lock so the booking request is in flight for as long as we like.
            blocker.execute(
                "SELECT 1 FROM resources_resource WHERE id = %s FOR UPDATE", [resource.pk]
            )
            request = threading.Thread(target=_book, args=(base, key, resource.pk, response))
            request.start()
            with psycopg.connect(**params, autocommit=True) as watcher:
                wait_until(
                    lambda: (
                        watcher.execute(
                            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                            "AND datname = current_database()"
                        ).fetchone()[0]
                        >= 1
                    ),
                    10,
                    "the booking never reached the lock",
                )
            server.send_signal(signal.SIGTERM)
            # Draining: the server has stopped accepting, while the booking still waits.
            wait_until(lambda: not _get_ok(base + "/healthz"), 10, "SIGTERM was not handled")
            assert server.poll() is None, "the server exited with a request in flight"
            blocker.rollback()
        request.join(20)
        assert response.get("status") == 201, response
        server.wait(30)
        assert server.returncode == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
    assert Reservation.objects.filter(resource=resource).count() == 1
    resource.refresh_from_db()
    assert resource.confirmed == 1


def _get_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as reply:  # noqa: S310 (loopback)
            return bool(reply.status == 200)
    except OSError:
        return False


def _book(base: str, key: str, resource_id: int, response: dict[str, Any]) -> None:
    request = urllib.request.Request(  # noqa: S310 (loopback)
        base + "/api/v1/reservations/",
        data=json.dumps({"resource": resource_id, "quantity": 1}).encode(),
        headers={"Authorization": f"Api-Key {key}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:  # noqa: S310
            response["status"] = reply.status
    except urllib.error.HTTPError as error:
        response["status"] = error.code
        response["body"] = error.read().decode()
