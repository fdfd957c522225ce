"""The SQL migrations (trigger, guards, composite key, booking functions, the outbox's
guard, index plans) are reversible, and the booking functions keep their plans."""

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


def test_counter_trigger_migration_goes_back_and_forth() -> None:
    assert scalar(OBJECTS) == 5
    call_command("migrate", "bookings", "0001", verbosity=0)
    try:
        assert scalar(OBJECTS) == 0
    finally:
        call_command("migrate", verbosity=0)
    assert scalar(OBJECTS) == 5


BOOKING_PATH_SETTINGS = ["plan_cache_mode=force_generic_plan", "enable_seqscan=off", "jit=off"]


def test_booking_functions_keep_their_plans() -> None:
    """No function on the booking path is planned again per call: none is LANGUAGE sql
    (whose body PostgreSQL plans on every call), each uses generic plans, made with index
    scans whatever the tables' size then (0008), and none is JIT-compiled (0010: before
    PostgreSQL 18 the disabled sequential scans priced every plan above the JIT threshold,
    and a server with JIT compiled them on every call)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.proname, l.lanname, p.proconfig FROM pg_proc p"
            " JOIN pg_language l ON l.oid = p.prolang"
            " WHERE p.proname LIKE 'reservo%' AND p.proname <> 'reservo_resource_counters_guard'"
        )
        rows = {name: (language, config) for name, language, config in cursor.fetchall()}
    assert set(rows) == {
        "reservo_book",
        "reservo_expire_due_holds",
        "reservo_idempotency_claim",
        "reservo_idempotency_claim_first",
        "reservo_outbox_enqueue",
        "reservo_reservation_counters",
        "reservo_transition",
    }
    for name, (language, config) in rows.items():
        assert language == "plpgsql", name
        assert config == BOOKING_PATH_SETTINGS, name


OUTBOX_FUNCTION = (
    "SELECT prosrc, proconfig FROM pg_proc"
    " WHERE oid = 'reservo_outbox_enqueue(bigint[], text[], text[])'::regprocedure"
)


def test_outbox_guard_goes_back_and_forth_around_the_same_statement() -> None:
    with connection.cursor() as cursor:
        cursor.execute(OUTBOX_FUNCTION)
        guarded, settings = cursor.fetchone()
    assert guarded.startswith("BEGIN IF EXISTS (") and guarded.endswith("; END IF; END")
    call_command("migrate", "bookings", "0006", verbosity=0)
    try:
        with connection.cursor() as cursor:
            cursor.execute(OUTBOX_FUNCTION)
            plain, plain_settings = cursor.fetchone()
    finally:
        call_command("migrate", verbosity=0)
    assert plain.startswith("BEGIN\nWITH changed AS (") and plain.endswith("; END")
    assert plain_settings == ["plan_cache_mode=force_generic_plan"]
    statement = plain.removeprefix("BEGIN").removesuffix("; END")
    assert statement in guarded
    with connection.cursor() as cursor:
        cursor.execute(OUTBOX_FUNCTION)
        assert cursor.fetchone() == (guarded, settings)


FOREIGN_KEYS_DEFERRABLE = """
    SELECT condeferrable FROM pg_constraint
     WHERE contype = 'f' AND conrelid::regclass::text IN
           ('bookings_reservation', 'bookings_reservationevent', 'bookings_reservationseat',
            'bookings_outboxmessage')
"""


def foreign_keys_deferrable() -> list[bool]:
    with connection.cursor() as cursor:
        cursor.execute(FOREIGN_KEYS_DEFERRABLE)
        return [deferrable for (deferrable,) in cursor.fetchall()]


def test_the_booking_functions_rows_have_their_foreign_keys_checked_at_once() -> None:
    """Checked inside the booking functions, under their settings, not at COMMIT (0008).
    Going back restores Django's deferred checks and the functions' settings."""
    immediate = foreign_keys_deferrable()
    assert len(immediate) == 8 and not any(immediate)
    call_command("migrate", "bookings", "0007", verbosity=0)
    try:
        assert all(foreign_keys_deferrable())
        assert scalar(OUTBOX_FUNCTION.replace("prosrc, ", "")) == [
            "plan_cache_mode=force_generic_plan"
        ]
    finally:
        call_command("migrate", verbosity=0)
    assert foreign_keys_deferrable() == immediate


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
