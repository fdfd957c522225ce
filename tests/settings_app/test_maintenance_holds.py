"""Maintenance loses no sale in progress: the holds that were live when it went on wait for
it to end and are extended by as long as it lasted; the pages say so."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db.models.functions import Now
from django.test import Client
from django.urls import reverse

from bookings.models import Reservation, ReservationStatus
from bookings.services import (
    Actor,
    reservation_book,
    reservation_confirm,
    reservations_expire_due,
)
from settings_app.models import SystemSettings
from settings_app.selectors import SettingsSnapshot, system_settings_cache_write
from settings_app.services import system_settings_update
from tests.conftest import scalar
from tests.factories import ResourceFactory
from tests.web.conftest import form_token

pytestmark = pytest.mark.django_db

CUSTOMER = Actor("customer")
STAFF = Actor("staff", "sam")


def hold(resource_id: int) -> Reservation:
    return reservation_book(
        resource_id=resource_id, quantity=2, hold=True, actor=CUSTOMER
    ).reservation


def maintenance_began(minutes_ago: int) -> None:
    """Maintenance switched on `minutes_ago` minutes ago, by the database clock."""
    system_settings_update(maintenance_mode=True)
    SystemSettings.objects.update(maintenance_started_at=Now() - timedelta(minutes=minutes_ago))
    # What every instance sees once the switch has committed.
    system_settings_cache_write(SettingsSnapshot.of(SystemSettings.objects.get()))


def expires_in_seconds(reservation: Reservation, seconds: float) -> None:
    Reservation.objects.filter(pk=reservation.pk).update(
        hold_expires_at=Now() + timedelta(seconds=seconds)
    )


def seconds_left(reservation: Reservation) -> float:
    return float(
        scalar(
            "SELECT extract(epoch FROM hold_expires_at - now()) FROM bookings_reservation "
            "WHERE id = %s",
            [reservation.pk],
        )
    )


def test_switching_on_records_when_and_switching_off_forgets_it() -> None:
    system_settings_update(maintenance_mode=True)
    assert SystemSettings.objects.get().maintenance_started_at is not None
    system_settings_update(maintenance_mode=False)
    assert SystemSettings.objects.get().maintenance_started_at is None


def test_switching_off_adds_the_time_maintenance_lasted_to_live_holds() -> None:
    resource = ResourceFactory(capacity=10)
    live = hold(resource.pk)
    expires_in_seconds(live, 60)
    maintenance_began(minutes_ago=10)

    system_settings_update(maintenance_mode=False)

    assert seconds_left(live) == pytest.approx(60 + 600, abs=5)


def test_a_hold_that_falls_due_during_maintenance_waits_and_can_be_confirmed_after() -> None:
    resource = ResourceFactory(capacity=10)
    live = hold(resource.pk)
    maintenance_began(minutes_ago=5)
    expires_in_seconds(live, -60)  # due a minute ago, during maintenance

    assert reservations_expire_due() == 0
    # Staff may book during maintenance; it expires nothing that waits either.
    reservation_book(resource_id=resource.pk, quantity=1, actor=STAFF)
    live.refresh_from_db()
    assert live.status == ReservationStatus.HELD

    system_settings_update(maintenance_mode=False)
    assert seconds_left(live) == pytest.approx(-60 + 300, abs=5)
    confirmed = reservation_confirm(reservation_id=live.pk, actor=CUSTOMER)
    assert confirmed.status == ReservationStatus.CONFIRMED


def test_a_hold_due_before_maintenance_began_still_expires() -> None:
    resource = ResourceFactory(capacity=10)
    late = hold(resource.pk)
    expires_in_seconds(late, -600)  # due ten minutes ago
    maintenance_began(minutes_ago=5)

    assert reservations_expire_due() == 1
    late.refresh_from_db()
    assert late.status == ReservationStatus.EXPIRED
    system_settings_update(maintenance_mode=False)
    late.refresh_from_db()
    assert late.status == ReservationStatus.EXPIRED


def test_the_pages_keep_the_hold_and_disable_booking_while_maintenance_is_on(
    client: Client,
) -> None:
    resource = ResourceFactory(capacity=10)
    url = reverse("bookings:resource", args=[resource.slug])
    response = client.post(url, {"form_token": form_token(client, url), "quantity": "1"})
    checkout = response["Location"]
    reference = checkout.strip("/").split("/")[-1]
    held = Reservation.objects.get(reference=reference)
    maintenance_began(minutes_ago=5)
    expires_in_seconds(held, -30)  # would have run out during maintenance

    page = client.get(checkout).content.decode()
    assert "Down for maintenance" in page
    assert "Your places stay held" in page
    assert 'data-confirm-button disabled aria-disabled="true"' in page

    refused = client.post(checkout, {"name": "Ada", "email": "ada@example.com"})
    assert refused.status_code == 503
    body = refused.content.decode()
    assert "Your places stay held" in body and f'href="{checkout}"' in body

    event_page = client.get(url).content.decode()
    assert 'disabled aria-disabled="true" aria-describedby="paused-help"' in event_page

    system_settings_update(maintenance_mode=False)
    system_settings_cache_write(SettingsSnapshot.of(SystemSettings.objects.get()))
    done = client.post(checkout, {"name": "Ada", "email": "ada@example.com"})
    assert done.status_code == 302
    held.refresh_from_db()
    assert held.status == ReservationStatus.CONFIRMED
