"""Staff moving bookings to other seats at once: real threads on real PostgreSQL, the
database state asserted afterwards, with the service's locks removed (the unique index on
active seats still refuses) and, as the negative control, that index dropped too."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import IntegrityError, connection

from bookings.models import Reservation, ReservationEvent, ReservationSeat
from bookings.services import Actor, reservation_book, reservation_move_seats
from bookings.services import common as common_service
from bookings.services import staff as staff_service
from reservo.errors import SeatsUnavailable
from resources.models import Resource
from tests.concurrency.unlocked import resource_read_without_lock
from tests.conftest import CUSTOMER, run_concurrently
from tests.factories import SeatedResourceFactory

pytestmark = pytest.mark.django_db(transaction=True)

STAFF = 2  # two members of staff, each moving a different booking


def outcome(result: Any) -> str:
    if isinstance(result, Exception):
        return getattr(result, "code", type(result).__name__)
    return "ok"


def seat_id(resource: Resource, label: str) -> int:
    return int(resource.seats.get(label=label).pk)


def two_bookings_and_a_free_seat() -> tuple[list[int], int]:
    """Bookings on A1 and A2; B1 is free."""
    resource = SeatedResourceFactory(seats__rows=["A", "B"], seats__per_row=3)
    bookings = [
        reservation_book(
            resource_id=resource.pk, seat_ids=[seat_id(resource, label)], actor=CUSTOMER
        ).reservation.pk
        for label in ("A1", "A2")
    ]
    return bookings, seat_id(resource, "B1")


def race(bookings: list[int], seat: int) -> list[Any]:
    return run_concurrently(
        STAFF,
        lambda i: reservation_move_seats(
            reservation_id=bookings[i], actor=Actor("staff", f"clerk {i}"), seat_ids=[seat]
        ),
    )


def holders_of(seat: int) -> list[int]:
    return list(
        ReservationSeat.objects.filter(seat_id=seat, active=True).values_list(
            "reservation_id", flat=True
        )
    )


def assert_one_moved(results: list[Any], bookings: list[int], seat: int) -> SeatsUnavailable:
    """Exactly one booking moved to the seat; the other kept its own and was told which
    seat was taken; one history row of a move."""
    assert Counter(map(outcome, results)) == {"ok": 1, "seats_unavailable": 1}
    (winner,) = [r for r in results if isinstance(r, Reservation)]
    (refusal,) = [r for r in results if isinstance(r, SeatsUnavailable)]
    assert refusal.extras["seats"] == [seat]
    assert holders_of(seat) == [winner.pk]
    (loser,) = [pk for pk in bookings if pk != winner.pk]
    assert ReservationSeat.objects.filter(reservation_id=loser, active=True).count() == 1
    assert not ReservationSeat.objects.filter(reservation_id=loser, seat_id=seat).exists()
    assert ReservationEvent.objects.filter(note__startswith="seats").count() == 1
    return refusal


def test_two_staff_moving_to_the_same_free_seat_one_wins(isolation_level: str) -> None:
    bookings, seat = two_bookings_and_a_free_seat()
    assert_one_moved(race(bookings, seat), bookings, seat)


@pytest.fixture
def seat_locking_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """Test-only hooks: the move reads the resource without its row lock and does not lock
    or check the seats it moves to, slowly, as a loaded server would (check-then-act)."""

    monkeypatch.setattr(common_service, "lock_resource", resource_read_without_lock)
    monkeypatch.setattr(staff_service, "lock_free_seats", lambda resource_id, seat_ids: None)


@pytest.mark.usefixtures("seat_locking_off")
def test_without_seat_locking_the_unique_index_refuses_as_seats_unavailable() -> None:
    """Only the partial unique index on active seats is left: it refuses the second
    move, and the service answers seats_unavailable naming the seat, never a 500."""
    bookings, seat = two_bookings_and_a_free_seat()
    refusal = assert_one_moved(race(bookings, seat), bookings, seat)
    assert isinstance(refusal.__cause__, IntegrityError)


@contextmanager
def unique_index_dropped() -> Iterator[None]:
    with connection.cursor() as cursor:
        cursor.execute("DROP INDEX reservation_seat_active_unique")
    try:
        yield
    finally:
        ReservationSeat.objects.all().delete()
        with connection.cursor() as cursor:
            cursor.execute(
                "CREATE UNIQUE INDEX reservation_seat_active_unique "
                "ON bookings_reservationseat (seat_id) WHERE active"
            )


@pytest.mark.usefixtures("seat_locking_off")
def test_negative_control_without_the_locks_and_the_index_the_race_is_caught() -> None:
    """Both guards off: both moves go through and the seat is sold twice, so the
    assertions above can fail."""
    bookings, seat = two_bookings_and_a_free_seat()
    with unique_index_dropped():
        results = race(bookings, seat)
        assert Counter(map(outcome, results)) == {"ok": STAFF}
        assert sorted(holders_of(seat)) == sorted(bookings)
