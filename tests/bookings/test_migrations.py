"""The bookings schema reads from its migrations: the guards PostgreSQL keeps (trigger,
counter guard, composite key) and no other function; every step is reversible."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.db import connection

from tests.conftest import scalar

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

OBJECTS = """
    SELECT (SELECT count(*) FROM pg_trigger WHERE tgname IN
               ('reservo_reservation_counters', 'reservo_resource_counters_guard'))
         + (SELECT count(*) FROM pg_proc WHERE proname IN
               ('reservo_reservation_counters', 'reservo_resource_counters_guard'))
         + (SELECT count(*) FROM pg_constraint WHERE conname = 'reservation_seat_on_own_resource')
"""

FUNCTIONS = """
    SELECT p.proname, p.prorettype::regtype::text FROM pg_proc p
     WHERE p.pronamespace = 'public'::regnamespace ORDER BY p.proname
"""


def functions() -> list[tuple[str, str]]:
    with connection.cursor() as cursor:
        cursor.execute(FUNCTIONS)
        return list(cursor.fetchall())


def test_the_schema_has_trigger_functions_only() -> None:
    assert functions() == [
        ("reservo_reservation_counters", "trigger"),
        ("reservo_resource_counters_guard", "trigger"),
    ]


def test_the_bookings_schema_goes_back_to_nothing_and_forth() -> None:
    assert scalar(OBJECTS) == 5
    call_command("migrate", "bookings", "zero", verbosity=0)
    try:
        assert scalar(OBJECTS) == 0
        assert functions() == []
    finally:
        call_command("migrate", verbosity=0)
    assert scalar(OBJECTS) == 5


def test_a_database_migrated_with_the_stored_booking_functions_loses_them() -> None:
    """Such a database recorded the squashed migrations as applied; the next one drops
    what they left behind."""
    call_command("migrate", "bookings", "0001", verbosity=0)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "CREATE FUNCTION reservo_idempotency_claim_first(bigint, text) RETURNS void"
                " LANGUAGE sql AS 'SELECT NULL'"
            )
            cursor.execute(
                "ALTER TABLE bookings_idempotencyrecord ADD CONSTRAINT"
                " idempotency_answer_or_outcome CHECK (response_status IS NOT NULL)"
            )
        assert "reservo_idempotency_claim_first" in {name for name, _type in functions()}
    finally:
        call_command("migrate", verbosity=0)
    assert [name for name, _type in functions()] == [
        "reservo_reservation_counters",
        "reservo_resource_counters_guard",
    ]
    assert not scalar(
        "SELECT count(*) FROM pg_constraint WHERE conname = 'idempotency_answer_or_outcome'"
    )


def test_no_index_of_ours_is_the_start_of_another() -> None:
    """An index whose columns (and operator classes) begin another index only costs every
    insert a write: the longer one serves its lookups and foreign-key checks too."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT ic.relname, jc.relname
              FROM pg_index i
              JOIN pg_class ic ON ic.oid = i.indexrelid
              JOIN pg_class t ON t.oid = i.indrelid
              JOIN pg_index j ON j.indrelid = i.indrelid AND j.indexrelid <> i.indexrelid
              JOIN pg_class jc ON jc.oid = j.indexrelid
             WHERE t.relname ~ '^(bookings|resources|settings_app)_'
               AND NOT i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
               AND j.indpred IS NULL AND j.indexprs IS NULL
               AND (j.indkey::text || ' ') LIKE (i.indkey::text || ' %%')
               AND (j.indclass::text || ' ') LIKE (i.indclass::text || ' %%')
            """
        )
        assert cursor.fetchall() == []
