"""The benchmark's data: resources for each scenario, the bulk-filled history, the checks.

Runs inside the harness process with Django set up on the benchmark's own database.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Sequence
from typing import Any

from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction
from django.db.models import Count, Q, Sum

from bookings.models import ACTIVE_STATUSES, Reservation
from reservo.errors import SQLSTATE_INSUFFICIENT_PRIVILEGE, sqlstate_of
from resources.models import Resource

# Within PositiveIntegerField: a resource that never sells out during a timed run.
UNLIMITED_CAPACITY = 2_000_000_000


def resources_create(prefix: str, count: int, capacity: int) -> list[int]:
    """`count` open capacity resources with `capacity` places each; returns their ids."""
    run = uuid.uuid4().hex[:8]
    created = Resource.objects.bulk_create(
        Resource(
            name=f"{prefix} {index}",
            slug=f"bench-{prefix}-{run}-{index}",
            capacity=capacity,
            state=Resource.State.OPEN,
            max_per_booking=10,
        )
        for index in range(count)
    )
    return [resource.pk for resource in created]


def reservations_count() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM bookings_reservation")
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def reservations_bulk_fill(total_rows: int, filler_resources: int = 1000) -> int:
    """Grow the reservations table to `total_rows` in bulk SQL; returns the rows added.

    The rows are cancelled and expired reservations of filler resources: history that
    weighs on every index and scan but holds no places, so counters stay exact.

    Loaded as PostgreSQL's manual advises for a bulk load: the secondary indexes that
    take these rows and the foreign keys are dropped and made again afterwards (a foreign
    key made again checks every row in one query, a kept one each row as it is written),
    and the table's own triggers are off meanwhile (the counter trigger changes nothing
    for a row that holds no places). The public ids are md5 hashes of a random salt and
    the row's number, spread as random UUIDs are: `gen_random_uuid()` asks for random
    bytes once per row, which took a tenth of the fill. All in one transaction, which
    holds the table's exclusive lock from its first change: no other session writes a
    row while the trigger is off, and an interrupted fill leaves the table as it was,
    indexes, foreign keys and trigger included. The role must own the table, as the one
    that ran the migrations does.
    """
    missing = total_rows - reservations_count()
    if missing <= 0:
        return 0
    filler_ids = resources_create("growth-filler", filler_resources, 1)
    first, last = min(filler_ids), max(filler_ids)
    assert last - first + 1 == len(filler_ids), "filler resources are one id range"
    with transaction.atomic(), connection.cursor() as cursor:
        # A bulk load, not a request: the request-sized statement bound does not apply.
        cursor.execute("SET LOCAL statement_timeout = 0")
        rebuild = _bulk_load_obstacles_drop(cursor)
        cursor.execute("ALTER TABLE bookings_reservation DISABLE TRIGGER USER")
        cursor.execute(
            """
            INSERT INTO bookings_reservation (
                public_id, reference, resource_id, quantity, status, hold_expires_at,
                created_at, confirmed_at, cancelled_at, expired_at, customer_name,
                customer_email, api_client_id, manage_token_hash)
            SELECT md5(%(salt)s || n)::uuid,
                   'G' || %(tag)s || lpad(to_hex(n), 11, '0'),
                   %(first)s + n %% %(count)s,
                   1 + n %% 3,
                   CASE WHEN n %% 2 = 0 THEN 'cancelled' ELSE 'expired' END,
                   CASE WHEN n %% 2 = 0 THEN NULL ELSE now() - interval '1 day' END,
                   now() - interval '2 days' + n * interval '1 millisecond',
                   CASE WHEN n %% 2 = 0 THEN now() - interval '2 days' END,
                   CASE WHEN n %% 2 = 0 THEN now() - interval '1 day' END,
                   CASE WHEN n %% 2 = 0 THEN NULL ELSE now() - interval '1 day' END,
                   'Bench customer ' || n,
                   'customer' || n || '@example.com',
                   NULL,
                   md5(n::text) || md5(n::text || 'x')
              FROM generate_series(0, %(missing)s - 1) AS n
            """,
            {
                "tag": uuid.uuid4().hex[:4].upper(),
                "salt": uuid.uuid4().hex,
                "first": first,
                "count": len(filler_ids),
                "missing": missing,
            },
        )
        cursor.execute("ALTER TABLE bookings_reservation ENABLE TRIGGER USER")
        for statement in rebuild:
            cursor.execute(statement)
    # Vacuumed as well as analysed: a table that grew over months has been vacuumed all
    # along. Left to autovacuum, the vacuum of a million fresh rows would run during the
    # growth rounds and be measured as the cost of the table's size.
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) bookings_reservation")
    return missing


def database_settle() -> bool:
    """A CHECKPOINT: the pages a bulk fill wrote reach the disk now, not during what is
    measured next. False when the role may not (it needs superuser or `pg_checkpoint`).

    A fill writes half a gigabyte of WAL in seconds, which starts a checkpoint that
    spreads its writes over the next minute or more, and every page first changed after
    it starts is written to the WAL whole. A table that grew over months carries neither.
    """
    try:
        with connection.cursor() as cursor:
            cursor.execute("CHECKPOINT")
    except DatabaseError as exc:
        if sqlstate_of(exc) == SQLSTATE_INSUFFICIENT_PRIVILEGE:
            return False
        raise
    return True


def _bulk_load_obstacles_drop(cursor: Any) -> list[str]:
    """Drop the reservations table's foreign keys and its indexes but its primary key and
    partial indexes; returns the statements that make them again, unique constraints as
    constraints, under the same names, the indexes before the foreign keys.

    A partial index stays: the filler rows are not in it, and its predicate, printed and
    parsed again, would come back written differently.
    """
    cursor.execute(
        """
        SELECT index.indexrelid::regclass::text, pg_get_indexdef(index.indexrelid),
               quote_ident(constraint_.conname), pg_get_constraintdef(constraint_.oid)
          FROM pg_index AS index
          LEFT JOIN pg_constraint AS constraint_ ON constraint_.conindid = index.indexrelid
               AND constraint_.conrelid = index.indrelid
         WHERE index.indrelid = 'bookings_reservation'::regclass AND NOT index.indisprimary
               AND index.indpred IS NULL
         UNION ALL
        SELECT NULL, NULL, quote_ident(conname), pg_get_constraintdef(oid)
          FROM pg_constraint
         WHERE conrelid = 'bookings_reservation'::regclass AND contype = 'f'
         ORDER BY 1 NULLS LAST, 3
        """
    )
    rebuild = []
    for index_name, index_definition, constraint_name, constraint_definition in cursor.fetchall():
        if constraint_name is None:
            cursor.execute(f"DROP INDEX {index_name}")
            rebuild.append(index_definition)
        else:
            cursor.execute(f"ALTER TABLE bookings_reservation DROP CONSTRAINT {constraint_name}")
            rebuild.append(
                f"ALTER TABLE bookings_reservation ADD CONSTRAINT {constraint_name} "
                f"{constraint_definition}"
            )
    return rebuild


def booking_checks(resource_ids: Sequence[int], created_201: int) -> dict[str, Any]:
    """The oversell check: recount from rows, counters, rows against 201s, reconcile."""
    rows = Reservation.objects.filter(resource_id__in=resource_ids).count()
    per_resource = Resource.objects.filter(pk__in=resource_ids).annotate(
        recounted=Sum(
            "reservations__quantity",
            filter=Q(reservations__status__in=ACTIVE_STATUSES),
            default=0,
        ),
        rows=Count("reservations"),
    )
    oversold = 0
    counters_off = 0
    sold = 0
    capacity = 0
    for resource in per_resource:
        active = resource.recounted  # type: ignore[attr-defined]
        booked = resource.held + resource.confirmed
        oversold += max(0, active - resource.capacity, booked - resource.capacity)
        counters_off += int(resource.held + resource.confirmed != active)
        sold += active
        capacity += resource.capacity
    return {
        "oversold": oversold,
        "capacity": capacity,
        "sold": sold,
        "rows_created": rows,
        "created_201": created_201,
        "rows_match_201": rows == created_201,
        "counters_match_rows": counters_off == 0,
        "reconcile_ok": reconcile_ok(),
    }


def reconcile_ok() -> bool:
    """`manage.py reconcile` over the whole database: True when it reports no drift."""
    try:
        call_command("reconcile", stdout=io.StringIO())
    except CommandError:
        return False
    return True
