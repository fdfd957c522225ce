"""Resource services: creation, seats, capacity changes under the lock, availability reads."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from bookings.models import Reservation
from bookings.services import reservation_book
from reservo.errors import CapacityBelowBooked, NotFound, ValidationFailed
from resources.models import Resource, ResourceKind, Seat
from resources.selectors import resource_availability, seat_map
from resources.services import (
    resource_add_seats,
    resource_create,
    resource_update,
    seat_specs_from_labels,
    seat_specs_from_rows,
)
from tests.conftest import CUSTOMER, cache_errors, make_redis_unreachable
from tests.factories import ResourceFactory

pytestmark = pytest.mark.django_db


def test_rows_times_seats_per_row() -> None:
    specs = seat_specs_from_rows(["A", "B"], 3)
    assert [(s.label, s.row, s.number) for s in specs] == [
        ("A1", "A", 1), ("A2", "A", 2), ("A3", "A", 3),
        ("B1", "B", 1), ("B2", "B", 2), ("B3", "B", 3),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("rows", "per_row"), [([], 3), (["A", "A"], 3), (["A"], 0), ([""], 2), (["A"] * 2, 10_001)]
)
def test_bad_seat_rows_are_refused(rows: list[str], per_row: int) -> None:
    with pytest.raises(ValidationFailed) as error:
        seat_specs_from_rows(rows, per_row)
    assert "seats" in error.value.errors


def test_seat_labels_keep_row_and_number_when_they_have_that_shape() -> None:
    specs = seat_specs_from_labels(["A1", "b12", "Stool"])
    assert [(s.label, s.row, s.number) for s in specs] == [
        ("A1", "A", 1),
        ("b12", "b", 12),
        ("Stool", "Stool", None),
    ]
    with pytest.raises(ValidationFailed):
        seat_specs_from_labels(["A1", "A1"])


def test_seated_resource_capacity_is_its_seat_count() -> None:
    resource = resource_create(
        name="Chamber concert", kind=ResourceKind.SEATED, seats=seat_specs_from_rows(["A", "B"], 4)
    )
    assert resource.capacity == 8 and resource.slug == "chamber-concert"
    assert Seat.objects.filter(resource=resource).count() == 8
    again = resource_create(name="Chamber concert", capacity=5)
    assert again.slug == "chamber-concert-2"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": " ", "capacity": 3}, "name"),
        ({"name": "x", "capacity": 0}, "capacity"),
        ({"name": "x"}, "capacity"),
        ({"name": "x", "kind": "tables", "capacity": 2}, "kind"),
        ({"name": "x", "kind": "seated"}, "seats"),
        ({"name": "x", "capacity": 2, "seats": seat_specs_from_rows(["A"], 2)}, "seats"),
        ({"name": "x", "capacity": 2, "max_per_booking": 0}, "max_per_booking"),
    ],
)
def test_bad_resources_are_refused_with_the_field(kwargs: dict, field: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValidationFailed) as error:
        resource_create(**kwargs)
    assert field in error.value.errors
    assert not Resource.objects.exists()


def test_end_before_start_is_refused() -> None:
    start = timezone.now()
    with pytest.raises(ValidationFailed) as error:
        resource_create(name="x", capacity=1, starts_at=start, ends_at=start - timedelta(hours=1))
    assert "ends_at" in error.value.errors


def test_capacity_cannot_go_below_held_plus_confirmed() -> None:
    resource = ResourceFactory(capacity=10)
    reservation_book(resource_id=resource.pk, quantity=3, actor=CUSTOMER)
    reservation_book(resource_id=resource.pk, quantity=2, hold=True, actor=CUSTOMER)
    with pytest.raises(CapacityBelowBooked) as error:
        resource_update(resource_id=resource.pk, capacity=4)
    assert error.value.extras == {"booked": 5}
    updated = resource_update(resource_id=resource.pk, capacity=5, name="Renamed")
    assert (updated.capacity, updated.name) == (5, "Renamed")
    resource.refresh_from_db()
    assert (resource.capacity, resource.held, resource.confirmed) == (5, 2, 3)


def test_update_refuses_counters_and_unknown_resources() -> None:
    resource = ResourceFactory()
    with pytest.raises(ValidationFailed) as error:
        resource_update(resource_id=resource.pk, confirmed=0)
    assert "confirmed" in error.value.errors
    with pytest.raises(NotFound):
        resource_update(resource_id=999999, name="x")


def test_adding_seats_grows_capacity() -> None:
    resource = resource_create(name="Show", kind="seated", seats=seat_specs_from_rows(["A"], 2))
    resource_add_seats(resource_id=resource.pk, seats=seat_specs_from_rows(["B"], 3))
    resource.refresh_from_db()
    assert resource.capacity == 5
    with pytest.raises(ValidationFailed):
        resource_add_seats(resource_id=resource.pk, seats=seat_specs_from_labels(["A1"]))


def test_availability_counts_only_unexpired_holds_and_is_exact_after_a_write(
    django_capture_on_commit_callbacks,  # type: ignore[no-untyped-def]
) -> None:
    resource = ResourceFactory(capacity=10)
    assert resource_availability(resource.pk) == {
        "capacity": 10, "held": 0, "confirmed": 0, "available": 10,
    }  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        hold = reservation_book(resource_id=resource.pk, quantity=4, hold=True, actor=CUSTOMER)
    assert callbacks, "the booking must invalidate the cache on commit"
    # The cached value was dropped on commit: read-your-writes.
    assert resource_availability(resource.pk)["available"] == 6
    Reservation.objects.filter(pk=hold.reservation.pk).update(
        hold_expires_at=timezone.now() - timedelta(seconds=5)
    )
    from resources.selectors import availability_invalidate

    availability_invalidate(resource.pk)
    # Not swept yet, yet no longer counted.
    assert resource_availability(resource.pk) == {
        "capacity": 10, "held": 0, "confirmed": 0, "available": 10,
    }  # fmt: skip


def test_seat_map_shows_held_and_booked() -> None:
    resource = resource_create(name="Show", kind="seated", seats=seat_specs_from_rows(["A"], 3))
    seats = list(resource.seats.order_by("id").values_list("id", flat=True))
    reservation_book(resource_id=resource.pk, seat_ids=[seats[0]], actor=CUSTOMER)
    reservation_book(resource_id=resource.pk, seat_ids=[seats[1]], hold=True, actor=CUSTOMER)
    assert [(s["label"], s["status"]) for s in seat_map(resource.pk)] == [
        ("A1", "booked"), ("A2", "held"), ("A3", "available"),
    ]  # fmt: skip


def test_seed_demo_is_idempotent_and_bookable(capsys) -> None:  # type: ignore[no-untyped-def]
    call_command("seed_demo")
    count = Resource.objects.count()
    assert count >= 4
    assert Resource.objects.filter(kind="seated").exists()
    call_command("seed_demo")
    assert Resource.objects.count() == count
    assert "0 demo resource(s) created" in capsys.readouterr().out
    for resource in Resource.objects.filter(kind="capacity"):
        reservation_book(resource_id=resource.pk, quantity=1, actor=CUSTOMER)
    call_command("reconcile")


def test_expire_holds_command(capsys) -> None:  # type: ignore[no-untyped-def]
    resource = ResourceFactory(capacity=3)
    hold = reservation_book(resource_id=resource.pk, quantity=2, hold=True, actor=CUSTOMER)
    Reservation.objects.filter(pk=hold.reservation.pk).update(
        hold_expires_at=timezone.now() - timedelta(seconds=5)
    )
    call_command("expire_holds")
    assert "1 hold(s) expired" in capsys.readouterr().out
    resource.refresh_from_db()
    assert resource.held == 0


def test_redis_down_reads_fall_back_to_postgresql_and_are_counted(settings) -> None:  # type: ignore[no-untyped-def]
    resource = ResourceFactory(capacity=4)
    reservation_book(resource_id=resource.pk, quantity=1, actor=CUSTOMER)
    make_redis_unreachable(settings)

    before = cache_errors()
    assert resource_availability(resource.pk)["available"] == 3
    assert [s["status"] for s in seat_map(resource.pk)] == []
    assert cache_errors() > before
    # Writes never needed the cache: booking still works and reads stay exact.
    reservation_book(resource_id=resource.pk, quantity=2, actor=CUSTOMER)
    assert resource_availability(resource.pk)["available"] == 1


def test_a_read_racing_a_commit_cannot_cache_the_old_value(
    django_capture_on_commit_callbacks,  # type: ignore[no-untyped-def]
) -> None:
    """The audit's invalidation race: a read computes from the database, a commit
    invalidates, then the read stores what it computed. The next read must not get it."""
    from resources import selectors

    resource = ResourceFactory(capacity=10)

    def stale_read_racing_a_booking() -> tuple[dict[str, int], None]:
        stale = {"capacity": 10, "held": 0, "confirmed": 0, "available": 10}
        with django_capture_on_commit_callbacks(execute=True):
            reservation_book(resource_id=resource.pk, quantity=3, actor=CUSTOMER)
        return stale, None

    assert selectors._cached("availability", resource.pk, stale_read_racing_a_booking) == {
        "capacity": 10, "held": 0, "confirmed": 0, "available": 10,
    }  # fmt: skip
    assert resource_availability(resource.pk)["available"] == 7
