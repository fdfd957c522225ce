"""Check-in is exactly-once under concurrency: real threads on real PostgreSQL, the
database state asserted afterwards, and a negative control without the row locks."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from bookings.models import Reservation, ReservationEvent
from bookings.services import Actor, reservation_book, reservation_check_in
from bookings.services import common as common_service
from bookings.services.checkin import CHECKED_IN_NOTE
from reservo.errors import AlreadyCheckedIn
from tests.concurrency.unlocked import reservation_read_without_lock, resource_read_without_lock
from tests.conftest import CUSTOMER, run_concurrently
from tests.factories import ResourceFactory

pytestmark = pytest.mark.django_db(transaction=True)

DOORS = 10


def outcome(result: Any) -> str:
    if isinstance(result, Exception):
        return getattr(result, "code", type(result).__name__)
    return "ok"


def race(reservation_id: int) -> list[Any]:
    """Ten doors check the same reservation in at once, each as a different member of staff."""
    return run_concurrently(
        DOORS,
        lambda i: reservation_check_in(
            reservation_id=reservation_id, actor=Actor("staff", f"door {i}")
        ),
    )


def check_in_rows(reservation_id: int) -> int:
    return ReservationEvent.objects.filter(
        reservation_id=reservation_id, note=CHECKED_IN_NOTE
    ).count()


def test_ten_concurrent_check_ins_succeed_once(isolation_level: str) -> None:
    booking = reservation_book(resource_id=ResourceFactory().pk, quantity=2, actor=CUSTOMER)
    reservation_id = booking.reservation.pk

    results = race(reservation_id)

    assert Counter(map(outcome, results)) == {"ok": 1, "already_checked_in": DOORS - 1}
    (winner,) = [r for r in results if isinstance(r, Reservation)]
    reservation = Reservation.objects.get(pk=reservation_id)
    assert reservation.checked_in_at == winner.checked_in_at
    assert reservation.checked_in_by == winner.checked_in_by
    # Every refusal names the one check-in that happened.
    refusals = [r for r in results if isinstance(r, AlreadyCheckedIn)]
    assert {r.extras["checked_in_by"] for r in refusals} == {reservation.checked_in_by}
    assert check_in_rows(reservation_id) == 1


@pytest.fixture
def row_locks_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """Test-only hook: the check-in reads the resource and the reservation without their row
    locks, and slowly, as a loaded server would (check-then-act)."""

    monkeypatch.setattr(common_service, "lock_resource", resource_read_without_lock)
    monkeypatch.setattr(common_service, "lock_reservation", reservation_read_without_lock)


@pytest.mark.usefixtures("row_locks_off")
def test_negative_control_without_the_row_locks_the_double_check_in_is_caught() -> None:
    """The same race with the locks removed: the assertions above now fail, so they can."""
    booking = reservation_book(resource_id=ResourceFactory().pk, quantity=2, actor=CUSTOMER)
    reservation_id = booking.reservation.pk

    results = race(reservation_id)

    successes = Counter(map(outcome, results))["ok"]
    assert successes > 1
    assert check_in_rows(reservation_id) == successes
