"""A confirmation or a cancellation holds the resource row lock for one round trip: the
transition's call locks, changes, writes history and outbox rows, with an Idempotency-Key
also the record of its outcome, and carries the COMMIT. Every answer, replays included,
is rendered from that outcome after the lock is gone."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db.models.functions import Now
from django.test import override_settings

from bookings.models import IdempotencyRecord, Reservation, ReservationEvent, ReservationStatus
from bookings.services import Actor, reservation_cancel, reservation_confirm, transitioned_from
from bookings.services.transitions import OUTCOMES_NOT_RECORDED
from reservo.errors import ReservoError
from reservo.problems import problem_status
from settings_app.models import SystemSettings
from settings_app.selectors import system_settings
from tests.api.conftest import Api, problem
from tests.bookings.test_transaction_begin import Trace, traced
from tests.conftest import resource_row_locked
from tests.factories import ResourceFactory, SeatedResourceFactory

pytestmark = pytest.mark.django_db(transaction=True)

RESERVATIONS = "/api/v1/reservations/"


def hold(api: Api, resource_id: int) -> dict[str, object]:
    response = api.post(RESERVATIONS, {"resource": resource_id, "quantity": 2, "hold": True})
    assert response.status_code == 201, response.content
    body: dict[str, object] = response.json()
    return body


def the_locking_statement(trace: Trace) -> str:
    """The one statement that locks the resource; nothing after it writes or commits."""
    (index,) = [i for i, query in enumerate(trace.queries) if "reservo_transition(" in query]
    assert not [query for query in trace.queries if "FOR UPDATE" in query]
    later = trace.queries[index + 1 :]
    assert not [query for query in later if "bookings_" in query or "COMMIT" in query], later
    statement = trace.queries[index]
    assert statement.endswith("; COMMIT")
    return statement


@pytest.mark.parametrize("action", ["confirm", "cancel"])
def test_an_idempotent_transition_is_one_round_trip_under_the_lock(
    book_api: Api, action: str
) -> None:
    resource = ResourceFactory(capacity=10)
    held = hold(book_api, resource.pk)
    path = f"{RESERVATIONS}{held['id']}/{action}/"
    with traced() as trace:
        first = book_api.post(path, **{"Idempotency-Key": f"{action}-1"})
    assert first.status_code == 200, first.content
    assert "INSERT INTO bookings_idempotencyrecord" in the_locking_statement(trace)
    assert IdempotencyRecord.objects.get(key=f"{action}-1").response_status is None

    with traced() as trace:
        again = book_api.post(path, **{"Idempotency-Key": f"{action}-1"})
    assert again.status_code == 200
    assert again.content == first.content
    assert again["Idempotent-Replayed"] == "true"
    assert not [query for query in trace.queries if "reservo_transition(" in query]
    expected = {"confirm": "confirmed", "cancel": "cancelled"}[action]
    assert first.json()["status"] == expected
    assert Reservation.objects.get(public_id=held["id"]).status == expected
    assert ReservationEvent.objects.filter(to_status=expected).count() == 1


def test_a_transition_without_a_key_is_one_round_trip_under_the_lock(book_api: Api) -> None:
    resource = ResourceFactory(capacity=10)
    held = hold(book_api, resource.pk)
    with traced() as trace:
        response = book_api.post(f"{RESERVATIONS}{held['id']}/confirm/")
    assert response.status_code == 200
    assert "bookings_idempotencyrecord" not in the_locking_statement(trace)


@pytest.mark.parametrize("service", [reservation_confirm, reservation_cancel])
def test_a_transition_from_the_pages_is_one_round_trip_under_the_lock(
    book_api: Api, service: Callable[..., Reservation]
) -> None:
    resource = ResourceFactory(capacity=10)
    held = hold(book_api, resource.pk)
    pk = Reservation.objects.get(public_id=held["id"]).pk
    with traced() as trace:
        service(reservation_id=pk, actor=Actor("customer"))
    assert the_locking_statement(trace).startswith("BEGIN ISOLATION LEVEL READ COMMITTED; ")


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


# reservo_transition's outcomes other than "changed" (bookings/migrations/0012).
REFUSALS = ["not_found", "maintenance", "invalid_state", "hold_expired"]


@pytest.mark.parametrize("to_status", [ReservationStatus.CONFIRMED, ReservationStatus.CANCELLED])
@pytest.mark.parametrize("code", REFUSALS)
def test_the_outcomes_left_unrecorded_are_those_answered_with_a_5xx(
    code: str, to_status: ReservationStatus
) -> None:
    outcome = {
        "outcome": code,
        "maintenance_message": "",
        "reservation_id": 1,
        "status": "cancelled",
        "created_at": "2026-11-23T10:00:00+00:00",
    }
    with pytest.raises(ReservoError) as refused:
        transitioned_from(outcome, to_status)
    answered_5xx = problem_status(refused.value) >= 500
    assert answered_5xx == (code in OUTCOMES_NOT_RECORDED)


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
