"""Faults injected into the real test database: a table whose inserts or reads fail with a
chosen SQLSTATE, or take as long as we like; and a database that turns read-only, as one
does after a failover to a standby. Each is installed from a connection that is not
Django's and removed when its block ends."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.db import connection

from tests.conftest import outside_connection

# In the message of every injected error: a client must never see it.
LEAKED_DETAIL = 'reservo-internal: relation "bookings_reservation" violates "capacity_check"'
FAULT_FUNCTION = "reservo_test_fault"
FAULT_CALLS = "reservo_test_fault_calls"
# Before a fault is removed: a statement still sleeping in it (a bound that did not hold,
# in a failing test) would hold its locks, and the fault's removal would wait on them.
STOP_SLEEPERS = (
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event = 'PgSleep'"
)


def raising(sqlstate: str) -> str:
    """PL/pgSQL raising an error with `sqlstate` (and a message full of internals)."""
    return f"RAISE EXCEPTION USING ERRCODE = '{sqlstate}', MESSAGE = '{LEAKED_DETAIL}';"


def sleeping(seconds: float) -> str:
    return f"PERFORM pg_sleep({seconds});"


def _execute(*statements: str) -> None:
    with outside_connection() as admin:
        admin.autocommit = True
        for statement in statements:
            admin.execute(statement)


def _calls() -> int:
    with outside_connection() as admin:
        row = admin.execute(
            f"SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {FAULT_CALLS}"  # noqa: S608
        ).fetchone()
    return int(row[0]) if row else 0


@contextmanager
def on_insert_into(table: str, body: str) -> Iterator[Callable[[], int]]:
    """Every insert into `table` first runs the PL/pgSQL `body` (a BEFORE INSERT trigger).
    Yields how many times it ran so far (counted by a sequence, which rollbacks keep)."""
    _execute(
        f"CREATE SEQUENCE {FAULT_CALLS}",
        f"CREATE FUNCTION {FAULT_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN PERFORM nextval('{FAULT_CALLS}'); {body} RETURN NEW; END $$",
        f"CREATE TRIGGER {FAULT_FUNCTION} BEFORE INSERT ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION {FAULT_FUNCTION}()",
    )
    try:
        yield _calls
    finally:
        _execute(
            STOP_SLEEPERS,
            f"DROP TRIGGER {FAULT_FUNCTION} ON {table}",
            f"DROP FUNCTION {FAULT_FUNCTION}()",
            f"DROP SEQUENCE {FAULT_CALLS}",
        )


@contextmanager
def on_read_of(table: str, body: str) -> Iterator[Callable[[], int]]:
    """Every query reading `table` first runs the PL/pgSQL `body`; yields how many times
    it ran so far.

    A trigger cannot fire on SELECT, so the table is renamed and a view of the same name
    put in its place, filtered by a function that runs `body` once per query (STABLE and
    argument-free, it is evaluated once, whatever the rows). Writes keep going to the
    table: foreign keys point at it, not at its name.
    """
    hidden = f"{table}__behind_fault"
    _execute(
        f"CREATE SEQUENCE {FAULT_CALLS}",
        f"CREATE FUNCTION {FAULT_FUNCTION}() RETURNS boolean LANGUAGE plpgsql STABLE AS $$ "
        f"BEGIN PERFORM nextval('{FAULT_CALLS}'); {body} RETURN true; END $$",
        f"ALTER TABLE {table} RENAME TO {hidden}",
        f"CREATE VIEW {table} AS SELECT * FROM {hidden} WHERE {FAULT_FUNCTION}()",  # noqa: S608
    )
    try:
        yield _calls
    finally:
        _execute(
            STOP_SLEEPERS,
            f"DROP VIEW {table}",
            f"ALTER TABLE {hidden} RENAME TO {table}",
            f"DROP FUNCTION {FAULT_FUNCTION}()",
            f"DROP SEQUENCE {FAULT_CALLS}",
        )


@contextmanager
def read_only_database() -> Iterator[None]:
    """New sessions of the test database start read-only, as on a standby after a
    failover: reads work, every write fails with SQLSTATE 25006. Django's connection is
    closed on the way in and out, so its next session has the new default."""
    name = connection.ops.quote_name(connection.settings_dict["NAME"])
    _execute(f"ALTER DATABASE {name} SET default_transaction_read_only = on")
    connection.close()
    try:
        yield
    finally:
        # This session starts read-only too: it lifts the default for itself first.
        _execute(
            "SET default_transaction_read_only = off",
            f"ALTER DATABASE {name} RESET default_transaction_read_only",
        )
        connection.close()


def sessions_sleeping() -> int:
    """How many other sessions of the test database are in pg_sleep right now (a cancelled
    statement no longer is)."""
    with outside_connection() as admin:
        row = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND wait_event = 'PgSleep'"
        ).fetchone()
    return int(row[0]) if row else 0
