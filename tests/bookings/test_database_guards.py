"""PostgreSQL itself refuses overbooking, whatever code path writes: raw SQL included."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction

from bookings.services import reservation_book
from reservo.errors import constraint_of
from resources.models import Resource
from tests.conftest import CUSTOMER, scalar
from tests.factories import ResourceFactory, SeatedResourceFactory

pytestmark = pytest.mark.django_db

INSERT_RESERVATION = """
    INSERT INTO bookings_reservation
        (public_id, reference, resource_id, quantity, status, created_at, confirmed_at,
         customer_name, customer_email, manage_token_hash)
    VALUES (gen_random_uuid(), %s, %s, %s, 'confirmed', now(), now(), '', '', '')
    RETURNING id
"""


def raw(sql: str, params: list[object]) -> object:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0] if cursor.description else None


def refused_by(sql: str, params: list[object]) -> str | None:
    """Run sql in a savepoint; return the constraint that refused it (None if accepted)."""
    try:
        with transaction.atomic():
            raw(sql, params)
    except IntegrityError as exc:
        return constraint_of(exc)
    return None


def test_counter_trigger_exists_and_fires_on_every_change() -> None:
    assert (
        scalar(
            "SELECT count(*) FROM pg_trigger WHERE tgname IN "
            "('reservo_reservation_counters', 'reservo_resource_counters_guard') AND NOT tgisinternal"
        )
        == 2
    )
    resource = ResourceFactory(capacity=10)
    reservation_id = raw(INSERT_RESERVATION, ["RSV-RAW00001", resource.pk, 3])
    resource.refresh_from_db()
    assert (resource.held, resource.confirmed) == (0, 3)
    raw("UPDATE bookings_reservation SET quantity = 5 WHERE id = %s", [reservation_id])
    resource.refresh_from_db()
    assert (resource.held, resource.confirmed) == (0, 5)
    other = ResourceFactory(capacity=10)
    raw(
        "UPDATE bookings_reservation SET resource_id = %s WHERE id = %s", [other.pk, reservation_id]
    )
    resource.refresh_from_db()
    other.refresh_from_db()
    assert (resource.confirmed, other.confirmed) == (0, 5)
    raw(
        "UPDATE bookings_reservation SET status = 'cancelled', cancelled_at = now() WHERE id = %s",
        [reservation_id],
    )
    other.refresh_from_db()
    assert other.confirmed == 0
    raw("DELETE FROM bookings_reservationevent WHERE reservation_id = %s", [reservation_id])
    raw("DELETE FROM bookings_reservation WHERE id = %s", [reservation_id])
    other.refresh_from_db()
    assert (other.held, other.confirmed) == (0, 0)


def test_raw_insert_beyond_capacity_is_refused() -> None:
    resource = ResourceFactory(capacity=2)
    raw(INSERT_RESERVATION, ["RSV-RAW00002", resource.pk, 2])
    assert refused_by(INSERT_RESERVATION, ["RSV-RAW00003", resource.pk, 1]) == (
        "resource_counters_within_capacity"
    )
    resource.refresh_from_db()
    assert resource.confirmed == 2


def test_raw_update_growing_a_booking_beyond_capacity_is_refused() -> None:
    resource = ResourceFactory(capacity=2)
    reservation_id = raw(INSERT_RESERVATION, ["RSV-RAW00004", resource.pk, 1])
    assert (
        refused_by("UPDATE bookings_reservation SET quantity = 3 WHERE id = %s", [reservation_id])
        == "resource_counters_within_capacity"
    )


def test_counters_cannot_be_written_directly() -> None:
    resource = ResourceFactory(capacity=5)
    assert (
        refused_by("UPDATE resources_resource SET confirmed = 3 WHERE id = %s", [resource.pk])
        == "resource_counters_by_trigger_only"
    )
    assert (
        refused_by(
            "INSERT INTO resources_resource (name, slug, description, venue, kind, capacity, held,"
            " confirmed, state, created_at, updated_at) VALUES ('x', 'x', '', '', 'capacity', 5, 1,"
            " 0, 'open', now(), now())",
            [],
        )
        == "resource_counters_by_trigger_only"
    )


def test_capacity_cannot_drop_below_booked_even_by_sql() -> None:
    resource = ResourceFactory(capacity=5)
    reservation_book(resource_id=resource.pk, quantity=4, actor=CUSTOMER)
    assert (
        refused_by("UPDATE resources_resource SET capacity = 3 WHERE id = %s", [resource.pk])
        == "resource_counters_within_capacity"
    )


def test_one_seat_cannot_be_in_two_active_reservations() -> None:
    resource = SeatedResourceFactory()
    seat = resource.seats.first()
    booking = reservation_book(resource_id=resource.pk, seat_ids=[seat.pk], actor=CUSTOMER)
    other_id = raw(INSERT_RESERVATION, ["RSV-RAW00005", resource.pk, 1])
    assert (
        refused_by(
            "INSERT INTO bookings_reservationseat (reservation_id, seat_id, resource_id, active)"
            " VALUES (%s, %s, %s, true)",
            [other_id, seat.pk, resource.pk],
        )
        == "reservation_seat_active_unique"
    )
    assert booking.reservation.seat_links.get().active


def test_a_reservation_seat_stays_on_its_own_resource() -> None:
    resource, other = SeatedResourceFactory(), SeatedResourceFactory()
    reservation_id = raw(INSERT_RESERVATION, ["RSV-RAW00006", resource.pk, 1])
    foreign_seat = other.seats.first().pk
    with pytest.raises(IntegrityError) as error, transaction.atomic():
        raw(
            "INSERT INTO bookings_reservationseat (reservation_id, seat_id, resource_id, active)"
            " VALUES (%s, %s, %s, true)",
            [reservation_id, foreign_seat, resource.pk],
        )
        raw("SET CONSTRAINTS ALL IMMEDIATE", [])
    assert constraint_of(error.value) == "reservation_seat_on_own_resource"


@pytest.mark.parametrize(
    ("column", "value", "constraint"),
    [
        ("status", "'lost'", "reservation_status_valid"),
        ("quantity", "0", "reservation_quantity_positive"),
    ],
)
def test_reservation_checks(column: str, value: str, constraint: str) -> None:
    resource = ResourceFactory()
    reservation_id = raw(INSERT_RESERVATION, ["RSV-RAW00007", resource.pk, 1])
    assert (
        refused_by(
            f"UPDATE bookings_reservation SET {column} = {value} WHERE id = %s",  # noqa: S608
            [reservation_id],
        )
        == constraint
    )


@pytest.mark.parametrize(
    ("assignment", "constraint"),
    [
        ("kind = 'tables'", "resource_kind_valid"),
        ("state = 'sold'", "resource_state_valid"),
        ("capacity = 0", "resource_capacity_positive"),
        ("max_per_booking = 0", "resource_max_per_booking_positive"),
        ("ends_at = starts_at - interval '1 hour'", "resource_ends_after_start"),
    ],
)
def test_resource_checks(assignment: str, constraint: str) -> None:
    resource = ResourceFactory()
    assert (
        refused_by(
            f"UPDATE resources_resource SET {assignment} WHERE id = %s",  # noqa: S608
            [resource.pk],
        )
        == constraint
    )


def test_settings_is_a_singleton() -> None:
    assert (
        refused_by(
            "INSERT INTO settings_app_systemsettings (id, maintenance_mode, maintenance_message,"
            " hold_ttl_seconds, default_max_per_booking, updated_at)"
            " VALUES (2, false, '', 600, 10, now())",
            [],
        )
        == "system_settings_singleton"
    )


def test_reconcile_reports_zero_drift_then_exits_1_on_drift(capsys) -> None:  # type: ignore[no-untyped-def]
    resource = ResourceFactory(capacity=5)
    reservation_book(resource_id=resource.pk, quantity=2, actor=CUSTOMER)
    call_command("reconcile")
    assert "no drift" in capsys.readouterr().out
    # Simulate corruption by a superuser who disabled the guard.
    raw("ALTER TABLE resources_resource DISABLE TRIGGER reservo_resource_counters_guard", [])
    Resource.objects.filter(pk=resource.pk).update(confirmed=1)
    raw("ALTER TABLE resources_resource ENABLE TRIGGER reservo_resource_counters_guard", [])
    with pytest.raises(CommandError) as error:
        call_command("reconcile")
    assert error.value.returncode == 1
    assert f"{resource.slug}: held 0 (expected 0), confirmed 1 (expected 2)" in (
        capsys.readouterr().out
    )
