"""Races on real PostgreSQL with real threads; the database state is asserted afterwards.

Each test has a negative control: the production path with one guard removed (the
service's row lock, through a test-only hook, or the database's CHECK) still holds, and
with both removed the race is detected, which proves the assertions can fail.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, connections

from bookings.models import Reservation, ReservationSeat, ReservationStatus
from bookings.services import booking as booking_service
from bookings.services import reservation_book, reservation_cancel
from reservo.errors import Busy, InvalidState, SeatsUnavailable, SoldOut
from resources.models import Resource
from tests.concurrency.unlocked import cancel_without_lock, resource_read_without_lock
from tests.conftest import CUSTOMER, run_concurrently, scalar
from tests.factories import ResourceFactory, SeatedResourceFactory

pytestmark = pytest.mark.django_db(transaction=True)


def outcome(result: Any) -> str:
    if isinstance(result, Exception):
        return getattr(result, "code", type(result).__name__)
    return "ok"


def active_quantity(resource_id: int) -> int:
    return int(
        scalar(
            "SELECT coalesce(sum(quantity), 0) FROM bookings_reservation "
            "WHERE resource_id = %s AND status IN ('held', 'confirmed')",
            [resource_id],
        )
    )


def assert_exact(resource: Resource) -> None:
    """Counters equal a recount, and never exceed capacity."""
    resource.refresh_from_db()
    assert resource.held + resource.confirmed == active_quantity(resource.pk)
    assert resource.held + resource.confirmed <= resource.capacity
    call_command("reconcile")  # raises (exit 1) on any drift


def overbooked_by(resource_id: int) -> int:
    capacity = scalar("SELECT capacity FROM resources_resource WHERE id = %s", [resource_id])
    return max(active_quantity(resource_id) - capacity, 0)


# 1. Last unit -----------------------------------------------------------------------


def test_last_unit_goes_to_exactly_one_of_fifty(isolation_level: str) -> None:
    resource = ResourceFactory(capacity=1)
    results = run_concurrently(
        50, lambda i: reservation_book(resource_id=resource.pk, quantity=1, actor=CUSTOMER)
    )
    assert Counter(map(outcome, results)) == {"ok": 1, "sold_out": 49}
    assert overbooked_by(resource.pk) == 0
    assert Reservation.objects.filter(resource=resource).count() == 1
    assert_exact(resource)


@contextmanager
def check_dropped() -> Iterator[None]:
    """The database backstop removed: the CHECK that refuses held + confirmed > capacity."""
    with connection.cursor() as cursor:
        cursor.execute(
            "ALTER TABLE resources_resource DROP CONSTRAINT resource_counters_within_capacity"
        )
    try:
        yield
    finally:
        Reservation.objects.all().delete()
        with connection.cursor() as cursor:
            cursor.execute(
                "ALTER TABLE resources_resource ADD CONSTRAINT resource_counters_within_capacity "
                "CHECK (held <= capacity - confirmed)"
            )


@pytest.fixture
def row_lock_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """Test-only hook: the booking service reads the resource without its row lock, and
    slowly, as a loaded server would (check-then-act)."""

    monkeypatch.setattr(booking_service, "lock_resource", resource_read_without_lock)


def last_unit_race(resource: Resource) -> Counter[str]:
    results = run_concurrently(
        30, lambda i: reservation_book(resource_id=resource.pk, quantity=1, actor=CUSTOMER)
    )
    assert not [r for r in results if isinstance(r, Exception) and not hasattr(r, "code")]
    return Counter(map(outcome, results))


@pytest.mark.usefixtures("row_lock_off")
def test_without_the_row_lock_the_check_refuses_and_the_client_gets_sold_out() -> None:
    """(a) Only the database's CHECK is left: it refuses every booking past capacity, and
    the service answers sold_out, never a 500."""
    resource = ResourceFactory(capacity=1)
    results = run_concurrently(
        30, lambda i: reservation_book(resource_id=resource.pk, quantity=1, actor=CUSTOMER)
    )
    assert Counter(map(outcome, results)) == {"ok": 1, "sold_out": 29}
    # Some racers got past the service's own check: the CHECK stopped them.
    assert any(isinstance(r, SoldOut) and isinstance(r.__cause__, IntegrityError) for r in results)
    assert overbooked_by(resource.pk) == 0
    assert_exact(resource)


def test_without_the_check_the_row_lock_alone_keeps_the_count_exact() -> None:
    """(b) Only the service's row lock is left."""
    resource = ResourceFactory(capacity=1)
    with check_dropped():
        assert last_unit_race(resource) == {"ok": 1, "sold_out": 29}
        assert overbooked_by(resource.pk) == 0
        assert Reservation.objects.filter(resource=resource).count() == 1


@pytest.mark.usefixtures("row_lock_off")
def test_negative_control_without_the_row_lock_and_the_check_the_race_is_caught() -> None:
    """(c) Both guards off: the assertions above now fail, so they can."""
    resource = ResourceFactory(capacity=1)
    with check_dropped():
        successes = last_unit_race(resource)["ok"]
        assert successes > 1
        assert overbooked_by(resource.pk) == successes - 1


# 2. Mixed load ----------------------------------------------------------------------


def test_mixed_bookings_and_cancels_never_exceed_capacity(isolation_level: str) -> None:
    resource = ResourceFactory(capacity=100, max_per_booking=3)
    rng = random.Random(20261122)
    plan = [(rng.randint(1, 3), rng.random() < 0.3, rng.random() < 0.3) for _ in range(300)]
    sampled: list[tuple[int, int]] = []
    stop = threading.Event()

    def sample() -> None:
        try:
            while not stop.is_set():
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT r.capacity, (SELECT coalesce(sum(quantity), 0) "
                        "FROM bookings_reservation WHERE resource_id = r.id "
                        "AND status IN ('held', 'confirmed')) FROM resources_resource r "
                        "WHERE r.id = %s",
                        [resource.pk],
                    )
                    sampled.append(cursor.fetchone())
        finally:
            connections.close_all()

    left_active: dict[int, int] = {}  # index -> quantity its booking still holds

    def work(i: int) -> None:
        quantity, hold, cancel_after = plan[i]
        booking = reservation_book(
            resource_id=resource.pk, quantity=quantity, hold=hold, actor=CUSTOMER
        )
        left_active[i] = quantity
        if cancel_after:
            reservation_cancel(reservation_id=booking.reservation.pk, actor=CUSTOMER)
            del left_active[i]

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        results = run_concurrently(300, work, timeout=120)
    finally:
        stop.set()
        sampler.join()

    outcomes = Counter(map(outcome, results))
    assert set(outcomes) <= {"ok", "sold_out", "busy"}, outcomes
    if isolation_level == "read_committed":
        assert outcomes["busy"] == 0
    assert sampled and all(active <= capacity for capacity, active in sampled)
    assert active_quantity(resource.pk) == sum(left_active.values())
    assert_exact(resource)


# 3. Seats ---------------------------------------------------------------------------


def test_overlapping_seat_sets_are_all_or_nothing(isolation_level: str) -> None:
    resource = SeatedResourceFactory(seats__rows=["A"], seats__per_row=10)
    seats = list(resource.seats.order_by("id").values_list("id", flat=True))
    rng = random.Random(7)
    requests = [rng.sample(seats, rng.randint(1, 4)) for _ in range(30)]
    results = run_concurrently(
        30,
        lambda i: reservation_book(resource_id=resource.pk, seat_ids=requests[i], actor=CUSTOMER),
    )
    outcomes = set(map(outcome, results))
    # Under SERIALIZABLE every commit fails the waiters whose snapshot predates it; past
    # the retry bound they answer busy (503, nothing written), which is still correct.
    allowed = {"ok", "seats_unavailable"} | (
        {"busy"} if isolation_level == "serializable" else set()
    )
    assert outcomes <= allowed, outcomes
    assert "ok" in outcomes
    taken = list(ReservationSeat.objects.filter(active=True).values_list("seat_id", flat=True))
    assert len(taken) == len(set(taken))
    for request, result in zip(requests, results, strict=True):
        if outcome(result) == "ok":
            booked = set(result.reservation.seat_links.values_list("seat_id", flat=True))
            assert booked == set(request)
        elif isinstance(result, SeatsUnavailable):
            assert set(result.extras["seats"]) & set(request)
    assert not Reservation.objects.filter(seat_links__isnull=True).exists()
    assert_exact(resource)


# 4. Concurrent cancels --------------------------------------------------------------


def test_ten_concurrent_cancels_release_capacity_once(isolation_level: str) -> None:
    resource = ResourceFactory(capacity=5)
    booking = reservation_book(resource_id=resource.pk, quantity=3, actor=CUSTOMER)
    reservation_book(resource_id=resource.pk, quantity=2, actor=CUSTOMER)
    results = run_concurrently(
        10, lambda i: reservation_cancel(reservation_id=booking.reservation.pk, actor=CUSTOMER)
    )
    assert Counter(map(outcome, results)) == {"ok": 1, "invalid_state": 9}
    assert all(
        r.extras == {"current_status": "cancelled"} for r in results if isinstance(r, InvalidState)
    )
    resource.refresh_from_db()
    assert resource.confirmed == 2
    assert booking.reservation.events.filter(to_status=ReservationStatus.CANCELLED).count() == 1
    assert_exact(resource)


def test_negative_control_unlocked_cancels_are_detected() -> None:
    resource = ResourceFactory(capacity=5)
    booking = reservation_book(resource_id=resource.pk, quantity=3, actor=CUSTOMER)
    results = run_concurrently(
        10, lambda i: cancel_without_lock(reservation_id=booking.reservation.pk)
    )
    # The race the locked transition must prevent: the same assertions now fail.
    assert Counter(map(outcome, results))["ok"] > 1
    assert booking.reservation.events.filter(to_status=ReservationStatus.CANCELLED).count() > 1


# 8. Opposite lock orders ------------------------------------------------------------


def test_opposite_order_seat_requests_never_deadlock() -> None:
    resource = SeatedResourceFactory(seats__rows=["A"], seats__per_row=6)
    seats = list(resource.seats.order_by("id").values_list("id", flat=True))
    pairs = [seats[0:2], seats[1::-1], seats[2:4], seats[3:1:-1], seats[4:6], seats[5:3:-1]] * 4
    results = run_concurrently(
        len(pairs),
        lambda i: reservation_book(resource_id=resource.pk, seat_ids=pairs[i], actor=CUSTOMER),
    )
    assert set(map(outcome, results)) <= {"ok", "seats_unavailable"}
    assert Counter(map(outcome, results))["ok"] == 3
    assert not any(isinstance(r, Busy | SoldOut) for r in results)
    assert_exact(resource)
