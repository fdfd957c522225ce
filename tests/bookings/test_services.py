"""Booking services: every rule, transition and error, with the database state after the fact."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection

from bookings.models import Reservation, ReservationEvent, ReservationSeat, ReservationStatus
from bookings.services import (
    Actor,
    manage_token_hash,
    reservation_book,
    reservation_cancel,
    reservation_confirm,
    reservations_expire_due,
)
from bookings.services.common import REFERENCE_ALPHABET, new_reference
from reservo.errors import (
    HoldExpired,
    InvalidState,
    LimitExceeded,
    Maintenance,
    NotFound,
    ResourceNotBookable,
    SeatsUnavailable,
    SoldOut,
    ValidationFailed,
)
from resources.models import Resource, ResourceState
from settings_app.models import SystemSettings
from tests.conftest import CUSTOMER
from tests.factories import ResourceFactory, SeatedResourceFactory

pytestmark = pytest.mark.django_db


def counters(resource: Resource) -> tuple[int, int]:
    resource.refresh_from_db()
    return resource.held, resource.confirmed


def expire_by_clock(reservation: Reservation) -> None:
    """Move a hold's expiry into the past, as the database clock sees it."""
    Reservation.objects.filter(pk=reservation.pk).update(
        hold_expires_at=connection_now() - timedelta(seconds=1)
    )


def connection_now():  # type: ignore[no-untyped-def]
    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        return cursor.fetchone()[0]


def test_references_are_twelve_characters_of_the_phone_friendly_alphabet() -> None:
    references = {new_reference() for _ in range(2000)}
    assert len(references) == 2000
    assert all(r.startswith("RSV-") and len(r) == 12 for r in references)
    letters = "".join(r[4:] for r in references)
    assert set(letters) == set(REFERENCE_ALPHABET)  # every letter turns up, no other


class TestBookByQuantity:
    def test_confirmed_booking_counts_and_records_history(self) -> None:
        resource = ResourceFactory(capacity=5)
        booking = reservation_book(
            resource_id=resource.pk, quantity=2, actor=CUSTOMER, customer_email="ada@example.com"
        )
        reservation = Reservation.objects.get(pk=booking.reservation.pk)
        assert reservation.status == ReservationStatus.CONFIRMED
        assert reservation.confirmed_at is not None and reservation.hold_expires_at is None
        assert reservation.reference.startswith("RSV-") and len(reservation.reference) == 12
        assert reservation.manage_token_hash == manage_token_hash(booking.manage_token)
        assert counters(resource) == (0, 2)
        events = list(ReservationEvent.objects.filter(reservation=reservation))
        assert [(e.from_status, e.to_status, e.actor) for e in events] == [
            ("", "confirmed", "customer")
        ]

    def test_hold_expires_after_the_configured_ttl(self) -> None:
        SystemSettings.objects.filter(id=1).update(hold_ttl_seconds=300)
        resource = ResourceFactory(capacity=5)
        reservation = reservation_book(
            resource_id=resource.pk, quantity=1, hold=True, actor=CUSTOMER
        ).reservation
        reservation.refresh_from_db()
        assert reservation.status == ReservationStatus.HELD
        assert reservation.hold_expires_at - reservation.created_at == timedelta(seconds=300)
        assert counters(resource) == (1, 0)

    def test_sold_out_reports_what_is_left(self) -> None:
        resource = ResourceFactory(capacity=3, name="Friday meetup")
        reservation_book(resource_id=resource.pk, quantity=2, actor=CUSTOMER)
        with pytest.raises(SoldOut) as error:
            reservation_book(resource_id=resource.pk, quantity=2, actor=CUSTOMER)
        assert error.value.extras == {"available": 1}
        assert "Friday meetup" in error.value.detail
        assert Reservation.objects.count() == 1 and counters(resource) == (0, 2)

    @pytest.mark.parametrize(
        ("kwargs", "field"),
        [
            ({"quantity": 0}, "quantity"),
            ({"quantity": -3}, "quantity"),
            ({}, "quantity"),
            ({"quantity": 1, "seat_ids": [1]}, "seats"),
            ({"seat_ids": []}, "seats"),
        ],
    )
    def test_bad_input_is_a_validation_error_and_writes_nothing(self, kwargs, field) -> None:  # type: ignore[no-untyped-def]
        resource = ResourceFactory()
        with pytest.raises(ValidationFailed) as error:
            reservation_book(resource_id=resource.pk, actor=CUSTOMER, **kwargs)
        assert field in error.value.errors
        assert not Reservation.objects.exists()

    def test_unknown_resource_is_not_found(self) -> None:
        with pytest.raises(NotFound):
            reservation_book(resource_id=987654, quantity=1, actor=CUSTOMER)

    @pytest.mark.parametrize(
        "state", [ResourceState.DRAFT, ResourceState.CLOSED, ResourceState.CANCELLED]
    )
    def test_resource_not_open_is_not_bookable(self, state: str) -> None:
        resource = ResourceFactory(state=state)
        with pytest.raises(ResourceNotBookable):
            reservation_book(resource_id=resource.pk, quantity=1, actor=CUSTOMER)

    def test_max_per_booking_from_resource_then_settings(self) -> None:
        resource = ResourceFactory(capacity=50, max_per_booking=3)
        with pytest.raises(LimitExceeded) as error:
            reservation_book(resource_id=resource.pk, quantity=4, actor=CUSTOMER)
        assert error.value.extras == {"limit": 3}
        SystemSettings.objects.filter(id=1).update(default_max_per_booking=6)
        unlimited = ResourceFactory(capacity=50)
        reservation_book(resource_id=unlimited.pk, quantity=6, actor=CUSTOMER)
        with pytest.raises(LimitExceeded):
            reservation_book(resource_id=unlimited.pk, quantity=7, actor=CUSTOMER)

    def test_quantity_on_a_seated_resource_is_refused(self) -> None:
        resource = SeatedResourceFactory()
        with pytest.raises(ValidationFailed) as error:
            reservation_book(resource_id=resource.pk, quantity=1, actor=CUSTOMER)
        assert "quantity" in error.value.errors


class TestBookBySeats:
    def test_seats_are_booked_together(self) -> None:
        resource = SeatedResourceFactory(seats__rows=["A"], seats__per_row=4)
        seats = list(resource.seats.order_by("id").values_list("id", flat=True))
        booking = reservation_book(resource_id=resource.pk, seat_ids=seats[:2], actor=CUSTOMER)
        assert booking.reservation.quantity == 2
        assert set(
            ReservationSeat.objects.filter(active=True).values_list("seat_id", flat=True)
        ) == set(seats[:2])
        assert counters(resource) == (0, 2)

    def test_taken_seat_refuses_the_whole_request(self) -> None:
        resource = SeatedResourceFactory(seats__rows=["A"], seats__per_row=4)
        seats = list(resource.seats.order_by("id").values_list("id", flat=True))
        reservation_book(resource_id=resource.pk, seat_ids=[seats[1]], actor=CUSTOMER)
        with pytest.raises(SeatsUnavailable) as error:
            reservation_book(resource_id=resource.pk, seat_ids=seats[:3], actor=CUSTOMER)
        assert error.value.extras == {"seats": [seats[1]]}
        assert "A2" in error.value.detail
        assert Reservation.objects.count() == 1 and counters(resource) == (0, 1)

    def test_seats_of_another_resource_or_unknown_or_twice_are_invalid(self) -> None:
        resource = SeatedResourceFactory()
        other = SeatedResourceFactory()
        other_seat = other.seats.first().pk
        own = resource.seats.first().pk
        for seat_ids in ([other_seat], [own, 99999999], [own, own]):
            with pytest.raises(ValidationFailed):
                reservation_book(resource_id=resource.pk, seat_ids=seat_ids, actor=CUSTOMER)
        assert not Reservation.objects.exists()

    def test_cancelling_frees_the_seats(self) -> None:
        resource = SeatedResourceFactory()
        seat = resource.seats.first().pk
        first = reservation_book(resource_id=resource.pk, seat_ids=[seat], actor=CUSTOMER)
        reservation_cancel(reservation_id=first.reservation.pk, actor=CUSTOMER)
        again = reservation_book(resource_id=resource.pk, seat_ids=[seat], actor=CUSTOMER)
        assert again.reservation.status == ReservationStatus.CONFIRMED
        assert ReservationSeat.objects.filter(seat_id=seat, active=True).count() == 1


class TestTransitions:
    def test_confirm_a_hold_sets_customer_and_history(self) -> None:
        resource = ResourceFactory(capacity=2)
        held = reservation_book(resource_id=resource.pk, quantity=2, hold=True, actor=CUSTOMER)
        confirmed = reservation_confirm(
            reservation_id=held.reservation.pk,
            actor=CUSTOMER,
            customer_name="Ada",
            customer_email="ada@example.com",
        )
        confirmed.refresh_from_db()
        assert (confirmed.status, confirmed.customer_name) == ("confirmed", "Ada")
        assert counters(resource) == (0, 2)
        assert list(confirmed.events.values_list("from_status", "to_status")) == [
            ("", "held"),
            ("held", "confirmed"),
        ]

    def test_confirm_twice_or_after_cancel_is_invalid_state(self) -> None:
        resource = ResourceFactory()
        booking = reservation_book(resource_id=resource.pk, quantity=1, actor=CUSTOMER)
        with pytest.raises(InvalidState) as error:
            reservation_confirm(reservation_id=booking.reservation.pk, actor=CUSTOMER)
        assert error.value.extras == {"current_status": "confirmed"}
        reservation_cancel(reservation_id=booking.reservation.pk, actor=CUSTOMER)
        with pytest.raises(InvalidState) as error:
            reservation_confirm(reservation_id=booking.reservation.pk, actor=CUSTOMER)
        assert error.value.extras == {"current_status": "cancelled"}
        problem = error.value.as_problem()
        assert problem["status"] == 409 and problem["code"] == "invalid_state"

    def test_cancel_twice_releases_once(self) -> None:
        resource = ResourceFactory(capacity=3)
        booking = reservation_book(resource_id=resource.pk, quantity=2, actor=CUSTOMER)
        reservation_cancel(reservation_id=booking.reservation.pk, actor=CUSTOMER)
        with pytest.raises(InvalidState):
            reservation_cancel(reservation_id=booking.reservation.pk, actor=CUSTOMER)
        assert counters(resource) == (0, 0)
        assert booking.reservation.events.count() == 2

    def test_unknown_reservation_is_not_found(self) -> None:
        with pytest.raises(NotFound):
            reservation_cancel(reservation_id=123456789, actor=CUSTOMER)


class TestHoldsExpireByTheDatabaseClock:
    def test_expired_hold_frees_capacity_for_the_next_booking_without_the_sweep(self) -> None:
        resource = ResourceFactory(capacity=2)
        hold = reservation_book(resource_id=resource.pk, quantity=2, hold=True, actor=CUSTOMER)
        with pytest.raises(SoldOut):
            reservation_book(resource_id=resource.pk, quantity=1, actor=CUSTOMER)
        expire_by_clock(hold.reservation)
        booked = reservation_book(resource_id=resource.pk, quantity=2, actor=CUSTOMER)
        assert booked.reservation.status == ReservationStatus.CONFIRMED
        hold.reservation.refresh_from_db()
        assert hold.reservation.status == ReservationStatus.EXPIRED
        assert hold.reservation.expired_at is not None
        assert counters(resource) == (0, 2)

    def test_a_refused_booking_still_expires_the_due_holds_it_found(self) -> None:
        resource = ResourceFactory(capacity=3)
        hold = reservation_book(resource_id=resource.pk, quantity=1, hold=True, actor=CUSTOMER)
        reservation_book(resource_id=resource.pk, quantity=1, actor=CUSTOMER)
        expire_by_clock(hold.reservation)
        with pytest.raises(SoldOut) as error:
            reservation_book(resource_id=resource.pk, quantity=3, actor=CUSTOMER)
        assert error.value.extras == {"available": 2}
        # The expiry is a change of its own, kept with its history: the refusal is an
        # answer, not a failure that undoes the transaction.
        hold.reservation.refresh_from_db()
        assert hold.reservation.status == ReservationStatus.EXPIRED
        assert counters(resource) == (0, 1)
        assert ReservationEvent.objects.filter(
            reservation=hold.reservation, to_status="expired"
        ).exists()

    def test_expired_hold_cannot_be_confirmed_and_is_expired_for_good(self) -> None:
        resource = ResourceFactory(capacity=2)
        hold = reservation_book(resource_id=resource.pk, quantity=1, hold=True, actor=CUSTOMER)
        expire_by_clock(hold.reservation)
        with pytest.raises(HoldExpired):
            reservation_confirm(reservation_id=hold.reservation.pk, actor=CUSTOMER)
        hold.reservation.refresh_from_db()
        assert hold.reservation.status == ReservationStatus.EXPIRED
        assert counters(resource) == (0, 0)
        with pytest.raises(InvalidState) as error:
            reservation_cancel(reservation_id=hold.reservation.pk, actor=CUSTOMER)
        assert error.value.extras == {"current_status": "expired"}

    def test_cancel_of_a_hold_past_expiry_records_the_expiry(self) -> None:
        resource = ResourceFactory(capacity=2)
        hold = reservation_book(resource_id=resource.pk, quantity=1, hold=True, actor=CUSTOMER)
        expire_by_clock(hold.reservation)
        with pytest.raises(InvalidState):
            reservation_cancel(reservation_id=hold.reservation.pk, actor=CUSTOMER)
        hold.reservation.refresh_from_db()
        assert hold.reservation.status == ReservationStatus.EXPIRED
        assert counters(resource) == (0, 0)

    def test_hold_confirmed_just_before_expiry_stays_confirmed(self) -> None:
        resource = ResourceFactory(capacity=2)
        hold = reservation_book(resource_id=resource.pk, quantity=1, hold=True, actor=CUSTOMER)
        Reservation.objects.filter(pk=hold.reservation.pk).update(
            hold_expires_at=connection_now() + timedelta(milliseconds=500)
        )
        reservation_confirm(reservation_id=hold.reservation.pk, actor=CUSTOMER)
        Reservation.objects.filter(pk=hold.reservation.pk).update(
            hold_expires_at=connection_now() - timedelta(seconds=5)
        )
        assert reservations_expire_due() == 0
        reservation_book(resource_id=resource.pk, quantity=1, actor=CUSTOMER)
        hold.reservation.refresh_from_db()
        assert hold.reservation.status == ReservationStatus.CONFIRMED
        assert counters(resource) == (0, 2)

    def test_sweep_expires_due_holds_across_resources(self) -> None:
        first, second = ResourceFactory(capacity=3), ResourceFactory(capacity=3)
        holds = [
            reservation_book(resource_id=r.pk, quantity=1, hold=True, actor=CUSTOMER).reservation
            for r in (first, first, second)
        ]
        fresh = reservation_book(resource_id=second.pk, quantity=1, hold=True, actor=CUSTOMER)
        for hold in holds:
            expire_by_clock(hold)
        assert reservations_expire_due() == 3
        assert reservations_expire_due() == 0
        assert counters(first) == (0, 0) and counters(second) == (1, 0)
        fresh.reservation.refresh_from_db()
        assert fresh.reservation.status == ReservationStatus.HELD
        assert ReservationEvent.objects.filter(to_status="expired", actor="system").count() == 3


class TestMaintenance:
    def test_customers_and_integrators_are_refused_staff_are_not(self) -> None:
        SystemSettings.objects.filter(id=1).update(
            maintenance_mode=True, maintenance_message="Back at noon."
        )
        resource = ResourceFactory()
        for actor in (CUSTOMER, Actor("api", "shop")):
            with pytest.raises(Maintenance) as error:
                reservation_book(resource_id=resource.pk, quantity=1, actor=actor)
            assert error.value.detail == "Back at noon."
            assert error.value.as_problem()["status"] == 503
        staff = reservation_book(resource_id=resource.pk, quantity=1, actor=Actor("staff", "eve"))
        with pytest.raises(Maintenance):
            reservation_cancel(reservation_id=staff.reservation.pk, actor=CUSTOMER)
        reservation_cancel(reservation_id=staff.reservation.pk, actor=Actor("staff", "eve"))
        assert counters(resource) == (0, 0)


class TestHotPath:
    def test_booking_query_count_is_pinned(self, django_assert_num_queries) -> None:  # type: ignore[no-untyped-def]
        resource = ResourceFactory(capacity=10)
        # Nested in the test's transaction: savepoint, timeouts, resource lock, rules and
        # clock, reservation, history row, release. No recipient: no outbox row. No hold
        # on the resource: no read of due holds.
        with django_assert_num_queries(7):
            reservation_book(resource_id=resource.pk, quantity=1, actor=CUSTOMER)
        # With a hold on it, the due holds are read as well.
        reservation_book(resource_id=resource.pk, quantity=1, hold=True, actor=CUSTOMER)
        with django_assert_num_queries(8):
            reservation_book(resource_id=resource.pk, quantity=1, actor=CUSTOMER)

    def test_confirm_query_count_is_pinned(self, django_assert_num_queries) -> None:  # type: ignore[no-untyped-def]
        resource = ResourceFactory(capacity=10)
        hold = reservation_book(resource_id=resource.pk, quantity=1, hold=True, actor=CUSTOMER)
        # Savepoint, timeouts, the resource id, resource lock, rules and clock, reservation
        # lock, update, history row, release.
        with django_assert_num_queries(9):
            reservation_confirm(reservation_id=hold.reservation.pk, actor=CUSTOMER)
