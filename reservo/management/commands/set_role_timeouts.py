"""Bound every session of the app's database role, behind PgBouncer too: the role's own
defaults, in this database, for statement_timeout and idle_in_transaction_session_timeout.

PgBouncer in transaction mode passes no startup options, and a session-level SET would
follow the server connection to other clients, so the bounds that a direct connection
gets from its startup options must come from the server: PostgreSQL applies a role's
defaults when each server connection starts, and RESET ALL / DISCARD ALL return to them.
"""

from __future__ import annotations

from typing import Any

import psycopg
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, connection

from reservo.errors import SQLSTATE_INSUFFICIENT_PRIVILEGE, sqlstate_of


def role_timeouts() -> dict[str, int]:
    """The bounds, in milliseconds (the unit both parameters take without one)."""
    return {
        "statement_timeout": settings.RESERVO_STATEMENT_TIMEOUT_MS,
        "idle_in_transaction_session_timeout": settings.RESERVO_IDLE_IN_TRANSACTION_TIMEOUT_MS,
    }


def role_and_database(role: str | None) -> tuple[str, str]:
    """The role to bound (the connecting one unless named) and the database, as the
    server knows them (behind PgBouncer the database may have another name)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(%s, current_user), current_database()", [role])
        found, database = cursor.fetchone()
    return str(found), str(database)


def role_timeout_statements(role: str, database: str) -> list[str]:
    quote = connection.ops.quote_name
    return [
        f"ALTER ROLE {quote(role)} IN DATABASE {quote(database)} SET {name} = {int(value)}"
        for name, value in role_timeouts().items()
    ]


def current_role_timeouts(role: str, database: str) -> dict[str, str]:
    """What the role has now, in this database, for each bound ('' when nothing is set)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT split_part(setting, '=', 1), substr(setting, strpos(setting, '=') + 1) "
            "FROM pg_db_role_setting, unnest(setconfig) AS setting "
            "WHERE setrole = (SELECT oid FROM pg_roles WHERE rolname = %s) "
            "AND setdatabase = (SELECT oid FROM pg_database WHERE datname = %s)",
            [role, database],
        )
        found = dict(cursor.fetchall())
    return {name: found.get(name, "") for name in role_timeouts()}


def role_timeouts_drift(role: str, database: str) -> dict[str, tuple[str, int]]:
    """Each bound the role lacks or has with another value: (what it has, what it needs)."""
    current = current_role_timeouts(role, database)
    return {
        name: (current[name], value)
        for name, value in role_timeouts().items()
        if current[name] != str(value)
    }


class Command(BaseCommand):
    help = (
        "Give the app's database role, in this database, the statement and idle-in-transaction "
        "timeouts of the settings as its own defaults (needed behind PgBouncer)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--role", help="the role to bound (default: the role the app connects as)"
        )
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument(
            "--check",
            action="store_true",
            help="change nothing; exit 1 if the role's defaults differ from the settings",
        )
        mode.add_argument(
            "--sql", action="store_true", help="print the statements for a DBA; run nothing"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        role, database = role_and_database(options["role"])
        if options["sql"]:
            for statement in role_timeout_statements(role, database):
                self.stdout.write(statement + ";")
            return
        if options["check"]:
            drift = role_timeouts_drift(role, database)
            for name, (current, wanted) in drift.items():
                self.stdout.write(f"{name}: {current or 'not set'} (expected {wanted})")
            if drift:
                raise CommandError(
                    f"role {role} lacks {len(drift)} timeout(s) in database {database}; "
                    "run manage.py set_role_timeouts",
                    returncode=1,
                )
            self.stdout.write(f"role {role} is bounded in database {database}")
            return
        try:
            with connection.cursor() as cursor:
                for statement in role_timeout_statements(role, database):
                    cursor.execute(statement)
        except (DatabaseError, psycopg.Error) as exc:
            if sqlstate_of(exc) == SQLSTATE_INSUFFICIENT_PRIVILEGE:
                raise CommandError(
                    f"not allowed to change the defaults of role {role}: connect as that role, "
                    "or print the statements with --sql for someone who may"
                ) from exc
            raise
        for name, value in role_timeouts().items():
            self.stdout.write(f"{name} = {value} ms for role {role} in database {database}")
