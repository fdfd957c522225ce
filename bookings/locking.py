"""The booking transaction: bounded lock waits, bounded retries, database errors as domain errors.

Every service that changes reservations runs its work through `in_booking_transaction`.
Lock order inside it is always: the resource row first, then seats or reservations by
primary key. Nothing slow (mail, HTTP, cache writes) may run inside: use on_commit.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Collection, Mapping
from typing import TypeVar

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction

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


def set_local_timeouts() -> None:
    """SET LOCAL equivalents in one round trip; they end with the transaction (PgBouncer-safe)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config('lock_timeout', %s, true), "
            "set_config('statement_timeout', %s, true)",
            [f"{settings.RESERVO_LOCK_TIMEOUT_MS}ms", f"{settings.RESERVO_STATEMENT_TIMEOUT_MS}ms"],
        )


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
    work: Callable[[], T], *, constraint_errors: ConstraintErrors | None = None
) -> T:
    """Run `work` in one transaction that starts with its lock and statement timeouts;
    database errors come out as domain errors. As the outermost transaction it is retried
    after serialization failures and deadlocks; nested (a savepoint cannot be retried on
    its own), the enclosing transaction's caller retries it with `retrying_conflicts`.
    """

    def attempt() -> T:
        try:
            with transaction.atomic():
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
