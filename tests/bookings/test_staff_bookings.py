"""Staff's changes to a booking: the customer's details, a move to other seats, and a
booking made by staff, with the database state after the fact."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction

from bookings.models import (
    OutboxMessage,
    Reservation,
    ReservationEvent,
    ReservationSeat,
    ReservationStatus,
)
from bookings.notifications import outbox_enqueue
from bookings.services import (
    Actor,
    reservation_book,
    reservation_cancel,
    reservation_check_in,
    reservation_move_seats,
    reservation_update_customer,
)
from reservo.errors import (
    HoldExpired,
    InvalidState,
    LimitExceeded,
    NotFound,
    SalesClosed,
    SeatsUnavailable,
    ValidationFailed,
)
from resources.models import Resource, Seat
from settings_app.models import SystemSettings
from tests.conftest import CUSTOMER, outbox_row_email
from tests.factories import ResourceFactory, SeatedResourceFactory

pytestmark = pytest.mark.django_db

STAFF = Actor("staff", "ada")


def seat_ids(resource: Resource, *labels: str) -> list[int]:
    by_label = dict(resource.seats.values_list("label", "id"))
    return [by_label[label] for label in labels]


def seats_of(reservation: Reservation) -> list[str]:
    return sorted(
        ReservationSeat.objects.filter(reservation=reservation, active=True).values_list(
            "seat__label", flat=True
        )
    )


def book_seats(resource: Resource, *labels: str, hold: bool = False) -> Reservation:
    return reservation_book(
        resource_id=resource.pk,
        seat_ids=seat_ids(resource, *labels),
        hold=hold,
        actor=CUSTOMER,
        customer_name="Grace",
        customer_email="grace@example.com",
    ).reservation


def counters(resource: Resource) -> tuple[int, int]:
    resource.refresh_from_db()
    return resource.held, resource.confirmed


def database_now():  # type: ignore[no-untyped-def]
    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        return cursor.fetchone()[0]


# A booking made by staff -------------------------------------------------------------


def test_staff_booking_keeps_phone_note_and_language_with_the_staff_user_in_history() -> None:
    resource = ResourceFactory(capacity=5)
    booking = reservation_book(
        resource_id=resource.pk,
        quantity=2,
        actor=STAFF,
        customer_name="Grace",
        customer_email="grace@example.com",
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
    assert list(reservation.events.values_list("actor", "to_status")) == [
        ("staff:ada", "confirmed")
    ]


def test_staff_are_bound_by_the_sales_window_and_the_limit_but_not_by_maintenance() -> None:
    resource = ResourceFactory(capacity=10, max_per_booking=2)
    with pytest.raises(LimitExceeded):
        reservation_book(resource_id=resource.pk, quantity=3, actor=STAFF)
    Resource.objects.filter(pk=resource.pk).update(
        sales_close_at=database_now() - timedelta(minutes=1)
    )
    with pytest.raises(SalesClosed):
        reservation_book(resource_id=resource.pk, quantity=1, actor=STAFF)
    Resource.objects.filter(pk=resource.pk).update(sales_close_at=None)
    SystemSettings.objects.update(maintenance_mode=True)
    booked = reservation_book(resource_id=resource.pk, quantity=2, actor=STAFF)
    assert booked.reservation.status == ReservationStatus.CONFIRMED


# Customer details --------------------------------------------------------------------


def test_edit_of_details_writes_the_fields_and_one_history_row_naming_them() -> None:
    resource = ResourceFactory(capacity=5)
    reservation = reservation_book(
        resource_id=resource.pk,
        quantity=2,
        actor=CUSTOMER,
        customer_name="Grace",
        customer_email="grace@example.com",
    ).reservation
    outbox_before = OutboxMessage.objects.count()

    reservation_update_customer(
        reservation_id=reservation.pk,
        actor=STAFF,
        customer_name="Grace Hopper",
        customer_email="grace@example.com",
        customer_phone=" 0612345678 ",
        note="Called to change the name",
    )

    reservation.refresh_from_db()
    assert (
        reservation.customer_name,
        reservation.customer_email,
        reservation.customer_phone,
        reservation.note,
    ) == ("Grace Hopper", "grace@example.com", "0612345678", "Called to change the name")
    event = reservation.events.order_by("-id").first()
    assert event is not None
    assert (event.from_status, event.to_status, event.actor) == (
        "confirmed",
        "confirmed",
        "staff:ada",
    )
    assert event.note == "details changed: name, phone, note"
    assert reservation.events.count() == 2
    assert counters(resource) == (0, 2)
    assert OutboxMessage.objects.count() == outbox_before  # an edit sends nothing


def test_an_edit_that_changes_nothing_writes_no_history() -> None:
    resource = ResourceFactory()
    reservation = reservation_book(
        resource_id=resource.pk, quantity=1, actor=CUSTOMER, customer_name="Grace"
    ).reservation
    reservation_update_customer(
        reservation_id=reservation.pk,
        actor=STAFF,
        customer_name="Grace",
        customer_email="",
        customer_phone="",
        note="",
    )
    assert reservation.events.count() == 1


def test_an_edit_refuses_a_bad_email_and_changes_nothing() -> None:
    resource = ResourceFactory()
    reservation = reservation_book(
        resource_id=resource.pk, quantity=1, actor=CUSTOMER, customer_email="a@example.com"
    ).reservation
    with pytest.raises(ValidationFailed) as refused:
        reservation_update_customer(
            reservation_id=reservation.pk,
            actor=STAFF,
            customer_name="Grace",
            customer_email="not an address",
            customer_phone="",
            note="",
        )
    assert list(refused.value.errors) == ["customer_email"]
    reservation.refresh_from_db()
    assert (reservation.customer_name, reservation.customer_email) == ("", "a@example.com")
    assert reservation.events.count() == 1


def test_a_cancelled_reservations_details_can_still_be_corrected() -> None:
    resource = ResourceFactory()
    reservation = reservation_book(resource_id=resource.pk, quantity=1, actor=CUSTOMER).reservation
    reservation_cancel(reservation_id=reservation.pk, actor=CUSTOMER)
    reservation_update_customer(
        reservation_id=reservation.pk,
        actor=STAFF,
        customer_name="Grace",
        customer_email="",
        customer_phone="",
        note="",
    )
    event = reservation.events.order_by("-id").first()
    assert event is not None
    assert (event.from_status, event.to_status, event.note) == (
        "cancelled",
        "cancelled",
        "details changed: name",
    )
    assert counters(resource) == (0, 0)


def test_an_edit_of_no_reservation_is_not_found() -> None:
    with pytest.raises(NotFound):
        reservation_update_customer(
            reservation_id=0,
            actor=STAFF,
            customer_name="",
            customer_email="",
            customer_phone="",
            note="",
        )


# Moving seats ------------------------------------------------------------------------


def test_a_move_relinks_the_seats_with_a_history_row_and_keeps_the_counters() -> None:
    resource = SeatedResourceFactory(seats__rows=["A", "B"], seats__per_row=5)
    reservation = book_seats(resource, "A1", "A2")
    before = counters(resource)

    moved = reservation_move_seats(
        reservation_id=reservation.pk, actor=STAFF, seat_ids=seat_ids(resource, "B3", "B4")
    )

    assert moved.status == ReservationStatus.CONFIRMED
    assert seats_of(reservation) == ["B3", "B4"]
    assert ReservationSeat.objects.filter(reservation=reservation).count() == 2
    assert counters(resource) == before
    event = reservation.events.order_by("-id").first()
    assert event is not None
    assert (event.from_status, event.to_status, event.actor) == (
        "confirmed",
        "confirmed",
        "staff:ada",
    )
    assert event.note == "seats A1, A2 \N{RIGHTWARDS ARROW} B3, B4"
    # The seats left are free for anyone.
    assert book_seats(resource, "A1", "A2").status == ReservationStatus.CONFIRMED


def test_a_move_may_keep_some_of_the_seats() -> None:
    resource = SeatedResourceFactory(seats__rows=["A"], seats__per_row=5)
    reservation = book_seats(resource, "A1", "A2")
    reservation_move_seats(
        reservation_id=reservation.pk, actor=STAFF, seat_ids=seat_ids(resource, "A2", "A3")
    )
    assert seats_of(reservation) == ["A2", "A3"]
    event = reservation.events.order_by("-id").first()
    assert event is not None and event.note == "seats A1, A2 \N{RIGHTWARDS ARROW} A2, A3"


def test_a_move_to_seats_taken_by_another_booking_names_them_and_changes_nothing() -> None:
    resource = SeatedResourceFactory(seats__rows=["A"], seats__per_row=5)
    reservation = book_seats(resource, "A1", "A2")
    book_seats(resource, "A4", hold=True)
    with pytest.raises(SeatsUnavailable) as refused:
        reservation_move_seats(
            reservation_id=reservation.pk, actor=STAFF, seat_ids=seat_ids(resource, "A3", "A4")
        )
    assert refused.value.extras["seats"] == seat_ids(resource, "A4")
    assert "A4" in refused.value.detail
    assert seats_of(reservation) == ["A1", "A2"]
    assert reservation.events.count() == 1


def test_a_move_keeps_the_number_of_seats() -> None:
    resource = SeatedResourceFactory(seats__rows=["A"], seats__per_row=5)
    reservation = book_seats(resource, "A1", "A2")
    with pytest.raises(ValidationFailed) as refused:
        reservation_move_seats(
            reservation_id=reservation.pk, actor=STAFF, seat_ids=seat_ids(resource, "A3")
        )
    assert "2 seats" in refused.value.errors["seats"][0]
    with pytest.raises(ValidationFailed):
        reservation_move_seats(
            reservation_id=reservation.pk, actor=STAFF, seat_ids=seat_ids(resource, "A1", "A2")
        )
    assert seats_of(reservation) == ["A1", "A2"]


def test_a_move_refuses_seats_of_another_resource() -> None:
    resource = SeatedResourceFactory(seats__rows=["A"], seats__per_row=3)
    other = SeatedResourceFactory(seats__rows=["A"], seats__per_row=3)
    reservation = book_seats(resource, "A1")
    with pytest.raises(ValidationFailed):
        reservation_move_seats(
            reservation_id=reservation.pk, actor=STAFF, seat_ids=seat_ids(other, "A2")
        )
    assert seats_of(reservation) == ["A1"]


def test_a_cancelled_booking_does_not_move() -> None:
    resource = SeatedResourceFactory(seats__rows=["A"], seats__per_row=3)
    reservation = book_seats(resource, "A1")
    reservation_cancel(reservation_id=reservation.pk, actor=CUSTOMER)
    with pytest.raises(InvalidState):
        reservation_move_seats(
            reservation_id=reservation.pk, actor=STAFF, seat_ids=seat_ids(resource, "A2")
        )


def test_a_hold_past_its_expiry_is_expired_instead_of_moved() -> None:
    resource = SeatedResourceFactory(seats__rows=["A"], seats__per_row=3)
    reservation = book_seats(resource, "A1", hold=True)
    Reservation.objects.filter(pk=reservation.pk).update(
        hold_expires_at=database_now() - timedelta(seconds=1)
    )
    with pytest.raises(HoldExpired):
        reservation_move_seats(
            reservation_id=reservation.pk, actor=STAFF, seat_ids=seat_ids(resource, "A2")
        )
    reservation.refresh_from_db()
    assert reservation.status == ReservationStatus.EXPIRED
    assert counters(resource) == (0, 0)
    assert not ReservationSeat.objects.filter(active=True).exists()


def test_a_live_hold_and_a_checked_in_booking_move() -> None:
    resource = SeatedResourceFactory(seats__rows=["A"], seats__per_row=4)
    hold = book_seats(resource, "A1", hold=True)
    reservation_move_seats(reservation_id=hold.pk, actor=STAFF, seat_ids=seat_ids(resource, "A2"))
    assert seats_of(hold) == ["A2"]
    assert counters(resource) == (1, 0)

    seated = book_seats(resource, "A3")
    reservation_check_in(reservation_id=seated.pk, actor=STAFF)
    reservation_move_seats(reservation_id=seated.pk, actor=STAFF, seat_ids=seat_ids(resource, "A4"))
    assert seats_of(seated) == ["A4"]


def test_the_unique_index_refuses_a_seat_the_check_missed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The service's seat check removed: the partial unique index on active seats refuses,
    and the caller still gets SeatsUnavailable naming the seat."""
    from bookings.services import staff as staff_service

    monkeypatch.setattr(staff_service, "lock_free_seats", lambda resource_id, seat_ids: None)
    resource = SeatedResourceFactory(seats__rows=["A"], seats__per_row=3)
    reservation = book_seats(resource, "A1")
    book_seats(resource, "A2")
    with pytest.raises(SeatsUnavailable) as refused:
        reservation_move_seats(
            reservation_id=reservation.pk, actor=STAFF, seat_ids=seat_ids(resource, "A2")
        )
    assert refused.value.extras["seats"] == seat_ids(resource, "A2")
    assert seats_of(reservation) == ["A1"]
    assert not ReservationEvent.objects.filter(note__startswith="seats").exists()


def test_a_booking_without_seats_does_not_move() -> None:
    resource = ResourceFactory()
    seated = SeatedResourceFactory(seats__rows=["A"], seats__per_row=2)
    reservation = reservation_book(resource_id=resource.pk, quantity=1, actor=CUSTOMER).reservation
    with pytest.raises(ValidationFailed):
        reservation_move_seats(
            reservation_id=reservation.pk,
            actor=STAFF,
            seat_ids=list(Seat.objects.filter(resource=seated).values_list("id", flat=True)[:1]),
        )


# The customer is told of a move -------------------------------------------------------


def seat_change_emails(reservation: Reservation) -> list[Any]:
    """The emails the worker would send for the reservation's seat moves, oldest first,
    rendered without sending them."""
    return [
        outbox_row_email(row)
        for row in OutboxMessage.objects.filter(
            reservation=reservation, event_type="reservation.seats_changed"
        ).order_by("id")
    ]


def test_each_move_emails_the_customer_the_old_and_new_seats_in_their_language() -> None:
    resource = SeatedResourceFactory(name="Concert", seats__rows=["A", "B"], seats__per_row=5)
    reservation = reservation_book(
        resource_id=resource.pk,
        seat_ids=seat_ids(resource, "A1", "A2"),
        actor=CUSTOMER,
        customer_name="Grace",
        customer_email="grace@example.com",
        language="fr",
    ).reservation

    reservation_move_seats(
        reservation_id=reservation.pk, actor=STAFF, seat_ids=seat_ids(resource, "B3", "B4")
    )
    reservation_move_seats(
        reservation_id=reservation.pk, actor=STAFF, seat_ids=seat_ids(resource, "B4", "B5")
    )

    first, second = seat_change_emails(reservation)
    for email in (first, second):
        assert email.to == ["grace@example.com"]
        assert email.subject == f"Vos places ont changé : {reservation.reference}"
        assert reservation.reference in email.body
        assert "Concert" in email.body
        assert "?token=" not in email.body  # the token is not stored: no manage link
    assert "Vos places étaient : A1, A2" in first.body
    assert "Vos places sont désormais : B3, B4" in first.body
    assert "Vos places étaient : B3, B4" in second.body
    assert "Vos places sont désormais : B4, B5" in second.body
    html = second.alternatives[0][0]
    assert "Vos places sont désormais : B4, B5" in html
    assert '<html lang="fr">' in html
    # The move is an email only: no webhook event is written for it.
    assert not OutboxMessage.objects.filter(
        event_type="reservation.seats_changed", channel="webhook"
    ).exists()


def test_a_move_is_emailed_in_german_too() -> None:
    resource = SeatedResourceFactory(seats__rows=["A"], seats__per_row=5)
    reservation = reservation_book(
        resource_id=resource.pk,
        seat_ids=seat_ids(resource, "A1"),
        actor=CUSTOMER,
        customer_email="grace@example.com",
        language="de",
    ).reservation
    reservation_move_seats(
        reservation_id=reservation.pk, actor=STAFF, seat_ids=seat_ids(resource, "A3")
    )
    (email,) = seat_change_emails(reservation)
    assert email.subject == f"Ihre Plätze haben sich geändert: {reservation.reference}"
    assert "Ihre Plätze waren: A1" in email.body
    assert "Ihre Plätze sind jetzt: A3" in email.body


def test_a_moved_hold_s_email_says_it_is_still_a_hold() -> None:
    resource = SeatedResourceFactory(seats__rows=["A"], seats__per_row=5)
    hold = book_seats(resource, "A1", hold=True)
    reservation_move_seats(reservation_id=hold.pk, actor=STAFF, seat_ids=seat_ids(resource, "A3"))
    (email,) = seat_change_emails(hold)
    assert "Your seats were: A1" in email.body
    assert "Your seats are now: A3" in email.body
    assert "Your places are still held until " in email.body
    assert "The rest of your booking is unchanged." not in email.body


def test_a_move_emails_no_one_when_the_customer_has_no_address() -> None:
    resource = SeatedResourceFactory(seats__rows=["A"], seats__per_row=5)
    reservation = reservation_book(
        resource_id=resource.pk, seat_ids=seat_ids(resource, "A1"), actor=STAFF
    ).reservation
    before = OutboxMessage.objects.count()
    reservation_move_seats(
        reservation_id=reservation.pk, actor=STAFF, seat_ids=seat_ids(resource, "A3")
    )
    assert seats_of(reservation) == ["A3"]
    assert OutboxMessage.objects.count() == before


def test_a_refused_move_emails_no_one() -> None:
    resource = SeatedResourceFactory(seats__rows=["A"], seats__per_row=5)
    reservation = book_seats(resource, "A1")
    book_seats(resource, "A3")
    before = OutboxMessage.objects.count()
    with pytest.raises(SeatsUnavailable):
        reservation_move_seats(
            reservation_id=reservation.pk, actor=STAFF, seat_ids=seat_ids(resource, "A3")
        )
    assert OutboxMessage.objects.count() == before


def test_a_status_is_still_told_once_after_moves() -> None:
    resource = SeatedResourceFactory(seats__rows=["A"], seats__per_row=5)
    reservation = book_seats(resource, "A1")
    reservation_move_seats(
        reservation_id=reservation.pk, actor=STAFF, seat_ids=seat_ids(resource, "A2")
    )
    reservation.refresh_from_db()
    outbox_enqueue([reservation], resource=resource)  # the confirmation, told again
    assert list(
        OutboxMessage.objects.filter(reservation=reservation)
        .order_by("id")
        .values_list("event_type", flat=True)
    ) == ["reservation.confirmed", "reservation.seats_changed"]
    # The database itself refuses a second row for the same status and target.
    with pytest.raises(IntegrityError), transaction.atomic():
        OutboxMessage.objects.create(
            reservation=reservation,
            event_type="reservation.confirmed",
            channel="email",
            target="grace@example.com",
        )
