"""The benchmark's database pieces: pgbench's booking, the bulk fill and the oversell check."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any, cast

import pytest
from django.db import DataError, connection

import bench.data
from bench.data import (
    booking_checks,
    database_settle,
    reservations_bulk_fill,
    reservations_count,
)
from bookings.models import Reservation
from bookings.services import Actor, reservation_book
from resources.models import Resource
from tests.conftest import scalar
from tests.factories import ResourceFactory


def _resource(**fields: Any) -> Resource:
    return cast(Resource, ResourceFactory(**fields))


BOOKING_SQL = Path(__file__).resolve().parents[2] / "bench" / "booking.sql"


def _script_statements(resource_id: int) -> list[str]:
    """bench/booking.sql's statements as pgbench sends them, with `:rid` given."""
    lines = [
        line for line in BOOKING_SQL.read_text().splitlines() if not line.startswith(("--", "\\"))
    ]
    # pgbench ends a command at a semicolon at the end of a line.
    statements = re.split(r";[ \t]*\n", "\n".join(lines) + "\n")
    return [s.replace(":rid", str(resource_id)) for s in statements if s.strip()]


@pytest.mark.django_db(transaction=True)  # the script's own BEGIN and COMMIT
def test_booking_sql_books_one_place_as_a_plain_transaction() -> None:
    resource = _resource(capacity=5)
    statements = _script_statements(resource.pk)
    assert [s.split()[0] for s in statements] == ["BEGIN", "SELECT", "INSERT", "COMMIT"]
    assert "FOR UPDATE" in statements[1]
    with connection.cursor() as cursor:
        for _ in range(2):
            for statement in statements:
                cursor.execute(statement)
    rows = Reservation.objects.filter(resource=resource)
    assert list(rows.values_list("status", "quantity")) == [("confirmed", 1)] * 2
    assert len(set(rows.values_list("reference", flat=True))) == 2
    checks = booking_checks([resource.pk], created_201=2)
    assert checks["sold"] == 2
    assert checks["counters_match_rows"] is True


@pytest.mark.django_db(transaction=True)  # VACUUM runs outside a transaction
def test_bulk_fill_adds_history_that_holds_no_places() -> None:
    resource = _resource(capacity=3)
    for _ in range(2):
        reservation_book(resource_id=resource.pk, actor=Actor("api", "bench"), quantity=1)
    before = reservations_count()
    schema = _reservation_schema()
    added = reservations_bulk_fill(before + 500, filler_resources=10)
    assert added == 500
    assert reservations_count() == before + 500
    assert reservations_bulk_fill(before + 500) == 0
    assert _reservation_schema() == schema  # indexes rebuilt, trigger on again
    statuses = set(
        Reservation.objects.exclude(resource=resource).values_list("status", flat=True).distinct()
    )
    assert statuses == {"cancelled", "expired"}
    checks = booking_checks([resource.pk], created_201=2)
    assert checks["oversold"] == 0
    assert checks["sold"] == 2
    assert checks["rows_match_201"] is True
    assert checks["counters_match_rows"] is True
    assert checks["reconcile_ok"] is True
    with connection.cursor() as cursor:  # vacuumed, not left to autovacuum
        cursor.execute(
            "SELECT last_vacuum IS NOT NULL FROM pg_stat_user_tables"
            " WHERE relname = 'bookings_reservation'"
        )
        assert cursor.fetchone() == (True,)


@pytest.mark.django_db(transaction=True)  # in autocommit, as the benchmark runs it
def test_settling_after_a_fill_checkpoints_its_writes() -> None:
    _resource()  # some WAL since the last checkpoint
    written_up_to = scalar("SELECT pg_current_wal_insert_lsn()::text")
    assert not _checkpoint_started_after(written_up_to)
    assert database_settle() is True
    assert _checkpoint_started_after(written_up_to)


@pytest.mark.django_db(transaction=True)
def test_settling_is_skipped_for_a_role_that_may_not_checkpoint() -> None:
    role = f"bench_settle_{uuid.uuid4().hex[:8]}"
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE ROLE {role}")
        try:
            cursor.execute(f"SET ROLE {role}")
            assert database_settle() is False
            cursor.execute("SELECT 1")  # the connection is still usable
        finally:
            cursor.execute("RESET ROLE")
            cursor.execute(f"DROP ROLE {role}")


def _checkpoint_started_after(lsn: str) -> bool:
    return bool(scalar("SELECT redo_lsn >= %s::pg_lsn FROM pg_control_checkpoint()", [lsn]))


@pytest.mark.django_db(transaction=True)
def test_an_interrupted_bulk_fill_leaves_the_table_as_it_was(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before, schema = reservations_count(), _reservation_schema()
    drop = bench.data._bulk_load_obstacles_drop

    def drop_then_fail_to_rebuild(cursor: Any) -> list[str]:
        # Fails once the rows are in and before any index is built again.
        return ["SELECT 1 / 0", *drop(cursor)]

    monkeypatch.setattr(bench.data, "_bulk_load_obstacles_drop", drop_then_fail_to_rebuild)
    with pytest.raises(DataError):
        reservations_bulk_fill(before + 100, filler_resources=10)
    assert reservations_count() == before
    assert _reservation_schema() == schema


def _reservation_schema() -> tuple[list[tuple[str, ...]], ...]:
    """The reservations table's indexes, constraints and triggers (with their state)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes"
            " WHERE tablename = 'bookings_reservation' ORDER BY 1"
        )
        indexes = cursor.fetchall()
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = 'bookings_reservation'::regclass ORDER BY 1"
        )
        constraints = cursor.fetchall()
        # A foreign key's own triggers are named after their oid, new when it is made
        # again: they are known by their constraint instead.
        cursor.execute(
            "SELECT coalesce(constraint_.conname, trigger.tgname), trigger.tgfoid::regproc,"
            " trigger.tgtype, trigger.tgenabled"
            " FROM pg_trigger AS trigger LEFT JOIN pg_constraint AS constraint_"
            " ON trigger.tgisinternal AND constraint_.oid = trigger.tgconstraint"
            " WHERE trigger.tgrelid = 'bookings_reservation'::regclass ORDER BY 1, 2, 3"
        )
        triggers = cursor.fetchall()
    assert indexes and constraints and triggers
    return indexes, constraints, triggers


@pytest.mark.django_db
def test_checks_notice_rows_that_no_201_reported() -> None:
    resource = _resource(capacity=3)
    reservation_book(resource_id=resource.pk, actor=Actor("api", "bench"), quantity=1)
    checks = booking_checks([resource.pk], created_201=0)
    assert checks["rows_match_201"] is False
    assert checks["oversold"] == 0
