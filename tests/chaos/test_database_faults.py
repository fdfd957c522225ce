"""Faults around the booking transaction: lock waits are bounded, a killed connection leaves
nothing behind, and the next request recovers; a connection the server ended between
requests is replaced before the next one uses it."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from django.db import OperationalError, close_old_connections, connection, transaction

from bookings.locking import set_local_timeouts
from bookings.models import Reservation, ReservationEvent
from bookings.services import reservation_book
from reservo.errors import Busy, Unavailable
from tests.conftest import (
    CUSTOMER,
    outside_connection,
    resource_row_locked,
    run_concurrently,
    scalar,
)
from tests.factories import ResourceFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_held_resource_lock_makes_booking_busy_within_the_bound(settings) -> None:  # type: ignore[no-untyped-def]
    settings.RESERVO_LOCK_TIMEOUT_MS = 500
    resource = ResourceFactory(capacity=5)
    with resource_row_locked(resource.pk):
        started = time.monotonic()
        with pytest.raises(Busy) as error:
            reservation_book(resource_id=resource.pk, quantity=1, actor=CUSTOMER)
        elapsed = time.monotonic() - started
    assert elapsed < settings.RESERVO_LOCK_TIMEOUT_MS / 1000 + 1
    assert error.value.as_problem()["status"] == 503 and error.value.retry_after
    assert not Reservation.objects.exists() and not ReservationEvent.objects.exists()
    resource.refresh_from_db()
    assert (resource.held, resource.confirmed) == (0, 0)
    # Once the lock is gone, booking works again.
    reservation_book(resource_id=resource.pk, quantity=1, actor=CUSTOMER)
    assert Reservation.objects.count() == 1


def test_many_waiters_on_a_stuck_lock_all_get_busy_not_a_hang(settings) -> None:  # type: ignore[no-untyped-def]
    settings.RESERVO_LOCK_TIMEOUT_MS = 300
    resource = ResourceFactory(capacity=50)
    with resource_row_locked(resource.pk):
        results = run_concurrently(
            20,
            lambda i: reservation_book(resource_id=resource.pk, quantity=1, actor=CUSTOMER),
            timeout=30,
        )
    assert all(isinstance(r, Busy) for r in results)
    assert not Reservation.objects.exists()


def test_connection_killed_mid_transaction_leaves_nothing_and_the_next_request_recovers(
    settings,  # type: ignore[no-untyped-def]
) -> None:
    settings.RESERVO_LOCK_TIMEOUT_MS = 10_000
    resource = ResourceFactory(capacity=5)
    outcome: list[BaseException] = []
    with resource_row_locked(resource.pk):

        def book() -> None:
            try:
                connection.connect()
                connection.connection.execute("SET application_name = 'reservo-victim'")
                reservation_book(resource_id=resource.pk, quantity=1, actor=CUSTOMER)
            except BaseException as exc:
                outcome.append(exc)
            finally:
                connection.close()

        victim = threading.Thread(target=book)
        victim.start()
        with outside_connection() as admin:
            admin.autocommit = True
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                waiting = admin.execute(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = 'reservo-victim' "
                    "AND wait_event_type = 'Lock'"
                ).fetchone()
                if waiting:
                    admin.execute("SELECT pg_terminate_backend(%s)", [waiting[0]])
                    break
            else:
                pytest.fail("the booking never waited on the lock")
        victim.join(15)
    assert not victim.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], Unavailable)
    assert outcome[0].as_problem()["status"] == 503
    assert not Reservation.objects.exists()
    assert (
        scalar("SELECT held + confirmed FROM resources_resource WHERE id = %s", [resource.pk]) == 0
    )
    booking = reservation_book(resource_id=resource.pk, quantity=1, actor=CUSTOMER)
    assert booking.reservation.pk is not None


def setting_ms(name: str) -> int:
    return int(scalar("SELECT setting FROM pg_settings WHERE name = %s", [name]))


def test_timeouts_are_set_for_the_booking_transaction_only(settings) -> None:  # type: ignore[no-untyped-def]
    with transaction.atomic():
        set_local_timeouts()
        assert setting_ms("lock_timeout") == settings.RESERVO_LOCK_TIMEOUT_MS
        assert setting_ms("statement_timeout") == settings.RESERVO_STATEMENT_TIMEOUT_MS
    assert setting_ms("lock_timeout") == 0
    # Outside booking transactions the connection keeps its bounds too.
    assert setting_ms("statement_timeout") == settings.RESERVO_STATEMENT_TIMEOUT_MS
    assert setting_ms("idle_in_transaction_session_timeout") == (
        settings.RESERVO_IDLE_IN_TRANSACTION_TIMEOUT_MS
    )


# Health check between requests ---------------------------------------------------------


def backend_pid() -> int:
    connection.ensure_connection()
    return int(connection.connection.info.backend_pid)


def end_backend(pid: int) -> None:
    """What a database restart does to each connection: FATAL message, socket closed."""
    with outside_connection() as admin:
        admin.autocommit = True
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        deadline = time.monotonic() + 10
        while admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone():
            assert time.monotonic() < deadline, "the backend did not end"
            time.sleep(0.01)


def test_a_connection_the_server_ended_between_requests_is_replaced_before_use() -> None:
    pid = backend_pid()
    end_backend(pid)
    close_old_connections()  # what every request starts with
    assert scalar("SELECT pg_backend_pid()") != pid


def test_without_the_health_check_that_request_would_fail(monkeypatch: Any) -> None:
    # Negative control for the test above.
    monkeypatch.setattr(connection, "health_check_enabled", False)
    end_backend(backend_pid())
    close_old_connections()
    try:
        with pytest.raises(OperationalError):
            scalar("SELECT pg_backend_pid()")
    finally:
        connection.close()
