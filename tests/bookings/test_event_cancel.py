"""Cancelling an event (`resource_cancel`): one transaction under the resource lock that
stops bookings and cancels every active reservation but the checked-in ones, with the
reason in their history and emails; running it again changes nothing."""

from __future__ import annotations

import pytest
from django.db import connection

from bookings.models import OutboxMessage, Reservation, ReservationEvent, ReservationStatus
from bookings.services import Actor, reservation_book, reservation_check_in
from bookings.services.transitions import resource_cancel
from reservo.errors import ResourceNotBookable, ValidationFailed
from resources.models import ResourceState
from tests.conftest import CUSTOMER
from tests.factories import ResourceFactory

pytestmark = pytest.mark.django_db

STAFF = Actor("staff", "boss")


def test_a_reason_is_required() -> None:
    resource = ResourceFactory()
    reservation_book(resource_id=resource.pk, quantity=1, actor=CUSTOMER)
    with pytest.raises(ValidationFailed) as refused:
        resource_cancel(resource_id=resource.pk, actor=STAFF, reason="  ")
    assert list(refused.value.errors) == ["reason"]
    resource.refresh_from_db()
    assert (resource.state, resource.confirmed) == (ResourceState.OPEN, 1)


def test_cancels_every_active_reservation_but_the_checked_in_once() -> None:
    resource = ResourceFactory(capacity=20)
    confirmed = reservation_book(
        resource_id=resource.pk, quantity=2, actor=CUSTOMER, customer_email="ada@example.com"
    ).reservation
    held = reservation_book(resource_id=resource.pk, quantity=3, hold=True, actor=CUSTOMER)
    due = reservation_book(resource_id=resource.pk, quantity=1, hold=True, actor=CUSTOMER)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE bookings_reservation SET hold_expires_at = now() - interval '1 second'"
            " WHERE id = %s",
            [due.reservation.pk],
        )
    door = reservation_book(resource_id=resource.pk, quantity=4, actor=CUSTOMER).reservation
    reservation_check_in(reservation_id=door.pk, actor=STAFF)

    result = resource_cancel(resource_id=resource.pk, actor=STAFF, reason="Storm")

    assert not result.was_cancelled
    assert [r.pk for r in result.cancelled] == [confirmed.pk, held.reservation.pk]
    assert [r.pk for r in result.checked_in] == [door.pk]
    statuses = dict(Reservation.objects.values_list("id", "status"))
    assert statuses == {
        confirmed.pk: ReservationStatus.CANCELLED,
        held.reservation.pk: ReservationStatus.CANCELLED,
        due.reservation.pk: ReservationStatus.EXPIRED,
        door.pk: ReservationStatus.CONFIRMED,
    }
    resource.refresh_from_db()
    assert (resource.state, resource.held, resource.confirmed) == (ResourceState.CANCELLED, 0, 4)
    history = ReservationEvent.objects.filter(to_status=ReservationStatus.CANCELLED)
    assert sorted(history.values_list("reservation_id", "actor", "reason")) == [
        (confirmed.pk, "staff:boss", "Storm"),
        (held.reservation.pk, "staff:boss", "Storm"),
    ]
    [email] = OutboxMessage.objects.filter(event_type="reservation.cancelled", channel="email")
    assert (email.target, email.payload["reason"]) == ("ada@example.com", "Storm")
    with pytest.raises(ResourceNotBookable):
        reservation_book(resource_id=resource.pk, quantity=1, actor=CUSTOMER)

    again = resource_cancel(resource_id=resource.pk, actor=STAFF, reason="Storm")

    assert (again.was_cancelled, again.cancelled) == (True, [])
    assert history.count() == 2
    assert OutboxMessage.objects.filter(event_type="reservation.cancelled").count() == 1
