"""Maintenance switched on while a booking waits for the resource lock: the booking reads
the switch once it holds the lock, so it commits only if maintenance was still off then.
Negative control: the same booking with the settings read before the lock commits."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.db.models.functions import Now

from bookings.models import Reservation
from bookings.services import booking as booking_service
from bookings.services import reservation_book
from bookings.services.common import Rules, lock_resource
from settings_app.models import SystemSettings
from settings_app.services import system_settings_update
from tests.conftest import CUSTOMER, resource_row_locked, run_concurrently, scalar, wait_until
from tests.factories import ResourceFactory

pytestmark = pytest.mark.django_db(transaction=True)


def book_while_maintenance_goes_on() -> Any:
    """A customer's booking starts while the resource is locked; maintenance is switched
    on while it waits; then the lock is released. Returns its result."""
    resource = ResourceFactory(capacity=5)
    results: list[Any] = []
    with resource_row_locked(resource.pk):
        booking = threading.Thread(
            target=lambda: results.extend(
                run_concurrently(
                    1,
                    lambda i: reservation_book(resource_id=resource.pk, quantity=1, actor=CUSTOMER),
                )
            )
        )
        booking.start()
        wait_until(
            lambda: scalar("SELECT count(*) FROM pg_locks WHERE NOT granted"),
            10,
            "the booking never waited for the resource lock",
        )
        system_settings_update(maintenance_mode=True)
    booking.join(30)
    assert not booking.is_alive()
    (result,) = results
    return result


def test_the_booking_sees_the_switch_made_while_it_waited() -> None:
    result = book_while_maintenance_goes_on()
    assert getattr(result, "code", None) == "maintenance"
    assert not Reservation.objects.exists()


def test_negative_control_settings_read_before_the_lock_let_the_booking_through(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    early: dict[str, Rules] = {}

    def settings_then_lock(resource_id: int) -> Any:
        row = SystemSettings.objects.annotate(now=Now()).get()
        early["rules"] = Rules(
            now=row.now,  # type: ignore[attr-defined]
            maintenance_mode=row.maintenance_mode,
            maintenance_message=row.maintenance_message,
            hold_ttl=timedelta(seconds=row.hold_ttl_seconds),
            default_max_per_booking=row.default_max_per_booking,
        )
        return lock_resource(resource_id)

    def rules_read_early(actor: Any) -> Rules:
        return early["rules"]

    monkeypatch.setattr(booking_service, "lock_resource", settings_then_lock)
    monkeypatch.setattr(booking_service, "rules_under_lock", rules_read_early)
    result = book_while_maintenance_goes_on()
    assert not isinstance(result, Exception), result
    assert SystemSettings.objects.get().maintenance_mode
    assert Reservation.objects.count() == 1
