"""The booking transaction: bounded lock waits, bounded retries, database errors as domain errors.

Every service that changes reservations runs its work through `in_booking_transaction`.
Lock order inside it is always: the resource row first, then seats or reservations by
primary key. Nothing slow (mail, HTTP, cache writes) may run inside: use on_commit.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import psycopg
from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from psycopg import pq
from psycopg.rows import dict_row

from reservo.errors import (
    RETRYABLE_SQLSTATES,
    ReservoError,
    constraint_of,
    database_error_to_domain,
    sqlstate_of,
)

T = TypeVar("T")
RETRY_BACKOFF_CAP_S = 0.1
logger = logging.getLogger(__name__)

# Maps a constraint name to the domain error its violation means in this operation. The
# factory runs after the rollback, so it may query the database for the error's extras.
ConstraintErrors = Mapping[str, Callable[[], ReservoError]]


def local_timeouts() -> tuple[str, str]:
    """The lock and statement timeouts of a booking transaction, as set_config takes them."""
    return f"{settings.RESERVO_LOCK_TIMEOUT_MS}ms", f"{settings.RESERVO_STATEMENT_TIMEOUT_MS}ms"


def set_local_timeouts() -> None:
    """SET LOCAL equivalents in one round trip; they end with the transaction (PgBouncer-safe)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config('lock_timeout', %s, true), "
            "set_config('statement_timeout', %s, true)",
            local_timeouts(),
        )


def array_literal(values: Iterable[object]) -> str:
    """A PostgreSQL array literal of plain values (ids, references, status names): cheaper
    to send on the hot path than a list, whose every element psycopg inspects."""
    return "{" + ",".join(map(str, values)) + "}"


def execute_then_commit(
    sql: str, params: Sequence[Any] | Mapping[str, Any], *, commit: bool | None = None
) -> dict[str, Any] | None:
    """Execute `sql` and, in the outermost transaction, its COMMIT in the same round trip;
    returns `sql`'s first row by column name (None if it returns none).

    For the last statement of a transaction holding a hot lock: the lock is released one
    round trip sooner. Django's cursors bind parameters on the client, so the statement and
    the COMMIT go as one simple query. An error in either is raised here, inside the atomic
    block, which then rolls back as usual (psycopg's rollback does nothing once the
    transaction has ended); on success psycopg's commit finds no transaction open and does
    nothing, and the block runs its on_commit callbacks. Nothing that can fail may follow
    this call inside the block. Nested in an enclosing transaction, only `sql` runs, and
    the enclosing block commits. `commit=True` commits nested too: for a caller that knows
    `sql` is its whole transaction's last statement, and that ends the outermost block
    normally whatever follows, so that its on_commit callbacks run
    (bookings.api.idempotency).
    """
    with connection.cursor() as cursor:
        if commit is None:
            commit = len(connection.atomic_blocks) == 1
        commit = commit and isinstance(cursor.cursor, psycopg.ClientCursor)
        # Names straight from the result: `description` builds a Column object (with a
        # type lookup) per column on every access.
        cursor.cursor.row_factory = dict_row
        cursor.execute(f"{sql}; COMMIT" if commit else sql, params)
        result = cursor.cursor.pgresult
        if result is None or result.status != pq.ExecStatus.TUPLES_OK:
            return None
        row: dict[str, Any] | None = cursor.fetchone()
        return row


def caused_by(error: BaseException, sqlstates: Collection[str]) -> bool:
    """Whether `error`, or an error it was raised from, has one of these SQLSTATEs."""
    cause: BaseException | None = error
    while cause is not None:
        if sqlstate_of(cause) in sqlstates:
            return True
        cause = cause.__cause__
    return False


def is_retryable_conflict(error: BaseException) -> bool:
    """A serialization failure or deadlock, itself or as the cause of a domain error."""
    return caused_by(error, RETRYABLE_SQLSTATES)


def retrying_conflicts(
    attempt: Callable[[], T], *, also: Callable[[BaseException], bool] = lambda error: False
) -> T:
    """Run `attempt` (one whole transaction) again after a serialization failure or a
    deadlock (or what `also` accepts), a bounded number of times with capped, jittered
    backoff. Past the bound the last error goes up (`busy` for a conflict)."""
    attempts = max(1, settings.RESERVO_SERIALIZATION_RETRIES)
    for number in range(1, attempts + 1):
        try:
            return attempt()
        except (DatabaseError, ReservoError) as error:
            if number == attempts or not (is_retryable_conflict(error) or also(error)):
                raise
            logger.debug("retrying a transaction after %r", error)
            time.sleep(random.uniform(0, min(RETRY_BACKOFF_CAP_S, 0.005 * 2**number)))
    raise AssertionError("unreachable: the last attempt returns or raises")


def in_booking_transaction(
    work: Callable[[], T],
    *,
    constraint_errors: ConstraintErrors | None = None,
    savepoint: bool = True,
    set_timeouts: bool = True,
) -> T:
    """Run `work` in one transaction with bounded lock waits; database errors come out as
    domain errors. As the outermost transaction it is retried after serialization
    failures and deadlocks; nested (a savepoint cannot be retried on its own), the
    enclosing transaction's caller retries it with `retrying_conflicts`.

    `savepoint=False`, for work that refuses by returning rather than raising: nested, it
    runs without a savepoint (two round trips fewer), and a database error inside marks
    the enclosing transaction for rollback. `set_timeouts=False`, for work whose first
    statement sets the timeouts itself.
    """

    def attempt() -> T:
        try:
            with transaction.atomic(savepoint=savepoint):
                if set_timeouts:
                    set_local_timeouts()
                return work()
        except IntegrityError as exc:
            factory = (constraint_errors or {}).get(constraint_of(exc) or "")
            if factory is not None:
                raise factory() from exc
            raise
        except DatabaseError as exc:
            domain_error = database_error_to_domain(exc)
            if domain_error is not None:
                raise domain_error from exc
            raise

    if connection.in_atomic_block:
        return attempt()
    return retrying_conflicts(attempt)
