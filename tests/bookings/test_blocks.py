"""House blocks: places staff hold back with no expiry, counted like any hold."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import IntegrityError, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from bookings.models import Reservation, ReservationStatus
from bookings.services import (
    Actor,
    blocks,
    holds_extend_for_maintenance,
    reservation_book,
    reservation_cancel,
    reservation_confirm,
    reservations_expire_due,
)
from bookings.services.blocks import seats_unblock
from bookings.services.common import ReferenceTaken
from reservo.errors import InvalidState, ResourceNotBookable, SoldOut
from resources.models import ResourceState
from resources.selectors import seat_map
from tests.conftest import CUSTOMER
from tests.factories import ResourceFactory, SeatedResourceFactory

pytestmark = pytest.mark.django_db

STAFF = Actor("staff", "sam")


def test_a_block_is_held_with_no_expiry_and_counts_against_capacity() -> None:
    resource = ResourceFactory(capacity=3)
    block = reservation_book(resource_id=resource.pk, actor=STAFF, quantity=2, block=True)
    reservation = Reservation.objects.get(pk=block.reservation.pk)
    assert (reservation.status, reservation.blocked, reservation.hold_expires_at) == (
        ReservationStatus.HELD,
        True,
        None,
    )
    resource.refresh_from_db()
    assert (resource.held, resource.confirmed) == (2, 0)
    with pytest.raises(SoldOut):
        reservation_book(resource_id=resource.pk, actor=CUSTOMER, quantity=2)


def test_a_block_never_expires_and_is_released_by_cancelling_it() -> None:
    resource = ResourceFactory(capacity=3)
    block = reservation_book(resource_id=resource.pk, actor=STAFF, quantity=3, block=True)
    assert reservations_expire_due() == 0
    reservation_cancel(reservation_id=block.reservation.pk, actor=STAFF)
    resource.refresh_from_db()
    assert (resource.held, resource.confirmed) == (0, 0)
    reservation_book(resource_id=resource.pk, actor=CUSTOMER, quantity=3)


@pytest.mark.parametrize("state", [ResourceState.DRAFT, ResourceState.CLOSED])
def test_staff_block_places_before_sales_open_and_after_they_close(state: str) -> None:
    resource = ResourceFactory(
        capacity=3, state=state, sales_open_at=timezone.now() + timedelta(days=1), max_per_booking=1
    )
    block = reservation_book(resource_id=resource.pk, actor=STAFF, quantity=2, block=True)
    assert block.reservation.blocked


def test_a_cancelled_event_takes_no_block() -> None:
    resource = ResourceFactory(state=ResourceState.CANCELLED)
    with pytest.raises(ResourceNotBookable):
        reservation_book(resource_id=resource.pk, actor=STAFF, quantity=1, block=True)


def test_blocked_seats_show_as_taken_on_the_seat_map() -> None:
    resource = SeatedResourceFactory(seats__rows=["A"], seats__per_row=3)
    seats = list(resource.seats.order_by("number").values_list("pk", flat=True))
    reservation_book(resource_id=resource.pk, actor=STAFF, seat_ids=seats[:2], block=True)
    assert [seat["status"] for seat in seat_map(resource.pk)] == ["held", "held", "available"]


def test_the_database_keeps_a_block_held_or_released() -> None:
    resource = ResourceFactory(capacity=3)
    block = reservation_book(resource_id=resource.pk, actor=STAFF, quantity=1, block=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        Reservation.objects.filter(pk=block.reservation.pk).update(
            status=ReservationStatus.CONFIRMED, confirmed_at=timezone.now()
        )


def test_a_booking_keeps_the_phone_note_and_language_it_was_taken_with() -> None:
    resource = ResourceFactory()
    booking = reservation_book(
        resource_id=resource.pk,
        actor=STAFF,
        quantity=1,
        customer_name="Ada",
        customer_phone="+33 1 23 45 67 89",
        note="Wheelchair place",
        language="fr",
    )
    reservation = Reservation.objects.get(pk=booking.reservation.pk)
    assert (reservation.customer_phone, reservation.note, reservation.language) == (
        "+33 1 23 45 67 89",
        "Wheelchair place",
        "fr",
    )


def test_a_block_is_never_confirmed() -> None:
    resource = ResourceFactory(capacity=3)
    block = reservation_book(resource_id=resource.pk, actor=STAFF, quantity=2, block=True)
    with pytest.raises(InvalidState):
        reservation_confirm(reservation_id=block.reservation.pk, actor=STAFF)
    reservation = Reservation.objects.get(pk=block.reservation.pk)
    assert (reservation.status, reservation.blocked) == (ReservationStatus.HELD, True)


def test_the_end_of_maintenance_extends_holds_but_leaves_blocks_alone() -> None:
    resource = ResourceFactory(capacity=3)
    block = reservation_book(resource_id=resource.pk, actor=STAFF, quantity=1, block=True)
    hold = reservation_book(resource_id=resource.pk, actor=CUSTOMER, quantity=1, hold=True)
    extended = holds_extend_for_maintenance(started_at=timezone.now() - timedelta(minutes=5))
    assert extended == 1
    assert Reservation.objects.get(pk=block.reservation.pk).hold_expires_at is None
    assert Reservation.objects.get(pk=hold.reservation.pk).hold_expires_at is not None


def test_a_blocks_manage_link_shows_nothing(client: Client) -> None:
    """The booking service makes a manage token for every reservation; a block's leads
    nowhere (no customer page ever shows a block)."""
    resource = SeatedResourceFactory(seats__rows=["A"], seats__per_row=3)
    seat = resource.seats.order_by("number").first()
    block = reservation_book(resource_id=resource.pk, actor=STAFF, seat_ids=[seat.pk], block=True)
    manage = reverse("bookings:manage", args=[block.reservation.reference])
    assert client.get(manage, {"token": block.manage_token}).status_code == 404


# Releasing blocked seats ------------------------------------------------------------------


def labelled(resource: Any, *labels: str) -> list[int]:
    by_label = dict(resource.seats.values_list("label", "pk"))
    return [by_label[label] for label in labels]


def active_seats(reservation: Reservation) -> list[str]:
    return sorted(reservation.seat_links.filter(active=True).values_list("seat__label", flat=True))


def test_releasing_seats_of_two_blocks_cancels_both_and_reblocks_what_was_kept() -> None:
    resource = SeatedResourceFactory(seats__rows=["A"], seats__per_row=6)
    first = reservation_book(
        resource_id=resource.pk, actor=STAFF, seat_ids=labelled(resource, "A1", "A2"), block=True
    ).reservation
    second = reservation_book(
        resource_id=resource.pk,
        actor=STAFF,
        seat_ids=labelled(resource, "A4", "A5", "A6"),
        block=True,
        note="Crew",
    ).reservation

    done = seats_unblock(
        resource_id=resource.pk, seat_ids=labelled(resource, "A1", "A2", "A5"), actor=STAFF
    )

    assert done.seat_labels == ["A1", "A2", "A5"]
    assert sorted(r.pk for r in done.cancelled) == [first.pk, second.pk]
    (rest,) = done.reblocked
    rest.refresh_from_db()
    assert (rest.blocked, rest.status, rest.note, rest.quantity) == (True, "held", "Crew", 2)
    assert active_seats(rest) == ["A4", "A6"]
    assert set(
        Reservation.objects.filter(pk__in=[first.pk, second.pk]).values_list("status", flat=True)
    ) == {"cancelled"}
    resource.refresh_from_db()
    assert (resource.held, resource.confirmed) == (2, 0)
    assert [event.to_status for event in second.events.all()] == ["held", "cancelled"]
    assert [(event.to_status, event.actor) for event in rest.events.all()] == [
        ("held", "staff:sam")
    ]


def test_seats_not_blocked_are_refused_by_name_and_nothing_changes() -> None:
    resource = SeatedResourceFactory(seats__rows=["A"], seats__per_row=3)
    block = reservation_book(
        resource_id=resource.pk, actor=STAFF, seat_ids=labelled(resource, "A1"), block=True
    ).reservation
    reservation_book(resource_id=resource.pk, actor=CUSTOMER, seat_ids=labelled(resource, "A2"))
    with pytest.raises(InvalidState, match="not blocked: A2, A3"):
        seats_unblock(
            resource_id=resource.pk, seat_ids=labelled(resource, "A1", "A2", "A3"), actor=STAFF
        )
    block.refresh_from_db()
    assert block.status == ReservationStatus.HELD


def test_a_partial_release_is_one_transaction(monkeypatch: pytest.MonkeyPatch) -> None:
    """If the new block for the kept seats cannot be written, the old one is not released
    either: no moment exists where a customer could take the kept seats."""
    resource = SeatedResourceFactory(seats__rows=["A"], seats__per_row=3)
    block = reservation_book(
        resource_id=resource.pk, actor=STAFF, seat_ids=labelled(resource, "A1", "A2"), block=True
    ).reservation
    # Every new reference collides with the block's own: the insert fails each time.
    monkeypatch.setattr(blocks, "new_reference", lambda: block.reference)
    with pytest.raises(ReferenceTaken):
        seats_unblock(resource_id=resource.pk, seat_ids=labelled(resource, "A1"), actor=STAFF)
    block.refresh_from_db()
    assert block.status == ReservationStatus.HELD
    assert active_seats(block) == ["A1", "A2"]
    resource.refresh_from_db()
    assert resource.held == 2
