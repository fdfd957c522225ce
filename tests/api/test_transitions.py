"""Confirmations and cancellations through the API with an Idempotency-Key: their
answers and replays, holds past their expiry, and the refusals (5xx) that stay unrecorded."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db.models.functions import Now
from django.test import override_settings

from bookings.models import IdempotencyRecord, Reservation, ReservationEvent
from settings_app.models import SystemSettings
from settings_app.selectors import system_settings
from tests.api.conftest import Api, problem
from tests.conftest import resource_row_locked
from tests.factories import ResourceFactory, SeatedResourceFactory

pytestmark = pytest.mark.django_db(transaction=True)

RESERVATIONS = "/api/v1/reservations/"


def hold(api: Api, resource_id: int) -> dict[str, object]:
    response = api.post(RESERVATIONS, {"resource": resource_id, "quantity": 2, "hold": True})
    assert response.status_code == 201, response.content
    body: dict[str, object] = response.json()
    return body


def test_confirming_with_customer_details_answers_and_replays_them(book_api: Api) -> None:
    resource = SeatedResourceFactory()
    seat_ids = sorted(resource.seats.values_list("pk", flat=True))[:2]
    held = book_api.post(RESERVATIONS, {"resource": resource.pk, "seats": seat_ids, "hold": True})
    assert held.status_code == 201, held.content
    path = f"{RESERVATIONS}{held.json()['id']}/confirm/"
    body = {"customer": {"name": "Ada", "email": "ada@example.com"}}
    first = book_api.post(path, body, **{"Idempotency-Key": "c"})
    assert first.status_code == 200, first.content
    answer = first.json()
    assert answer["customer"] == {"name": "Ada", "email": "ada@example.com"}
    assert answer["seats"] == seat_ids
    assert answer["confirmed_at"] is not None and answer["hold_expires_at"] is not None
    assert book_api.post(path, body, **{"Idempotency-Key": "c"}).content == first.content
    assert book_api.get(f"{RESERVATIONS}{answer['id']}/").json() == answer


def test_a_hold_past_its_expiry_is_expired_and_the_refusal_replayed(book_api: Api) -> None:
    resource = ResourceFactory(capacity=10)
    held = hold(book_api, resource.pk)
    Reservation.objects.filter(public_id=held["id"]).update(
        hold_expires_at=Now() - timedelta(seconds=1)
    )
    path = f"{RESERVATIONS}{held['id']}/confirm/"
    first = book_api.post(path, **{"Idempotency-Key": "late"})
    problem(first, 409, "hold_expired")
    assert Reservation.objects.get(public_id=held["id"]).status == "expired"
    resource.refresh_from_db()
    assert (resource.held, resource.confirmed) == (0, 0)
    again = book_api.post(path, **{"Idempotency-Key": "late"})
    assert again.status_code == 409 and again.content == first.content
    (event,) = ReservationEvent.objects.filter(to_status="expired")
    assert event.actor == "system"


def test_a_maintenance_refusal_under_the_lock_is_not_recorded(book_api: Api) -> None:
    """Maintenance turned on after the middleware let the request through: the transition
    refuses it under the resource lock, with a 503, and writes no record."""
    resource = ResourceFactory(capacity=10)
    held = hold(book_api, resource.pk)
    path = f"{RESERVATIONS}{held['id']}/confirm/"
    assert not system_settings().maintenance_mode  # now cached
    SystemSettings.objects.update(maintenance_mode=True)  # the cached copy still says off

    problem(book_api.post(path, **{"Idempotency-Key": "m"}), 503, "maintenance")
    assert not IdempotencyRecord.objects.filter(key="m").exists()
    assert Reservation.objects.get(public_id=held["id"]).status == "held"

    SystemSettings.objects.update(maintenance_mode=False)
    assert book_api.post(path, **{"Idempotency-Key": "m"}).status_code == 200


def test_a_lock_wait_past_its_bound_is_busy_unrecorded_and_changes_nothing(
    book_api: Api,
) -> None:
    resource = ResourceFactory(capacity=10)
    held = hold(book_api, resource.pk)
    path = f"{RESERVATIONS}{held['id']}/confirm/"
    with resource_row_locked(resource.pk), override_settings(RESERVO_LOCK_TIMEOUT_MS=100):
        response = book_api.post(path, **{"Idempotency-Key": "wait"})
    problem(response, 503, "busy")
    assert not IdempotencyRecord.objects.filter(key="wait").exists()
    assert Reservation.objects.get(public_id=held["id"]).status == "held"

    retried = book_api.post(path, **{"Idempotency-Key": "wait"})
    assert retried.status_code == 200
    assert retried.json()["status"] == "confirmed"
