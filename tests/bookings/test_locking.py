"""The one retry mechanism for whole transactions: conflicts are retried, a bounded
number of times; anything else goes up at once. The transaction is atomic and bounded."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg.errors
import pytest
from django.db import IntegrityError, OperationalError, connection, transaction
from django.test import override_settings

from bookings.locking import in_booking_transaction, is_retryable_conflict, retrying_conflicts
from bookings.models import Reservation
from reservo.errors import Busy, SoldOut


def conflict() -> OperationalError:
    try:
        raise OperationalError("could not serialize access") from (
            psycopg.errors.SerializationFailure()
        )
    except OperationalError as error:
        return error


def busy_from_deadlock() -> Busy:
    try:
        raise Busy() from psycopg.errors.DeadlockDetected()
    except Busy as error:
        return error


def test_a_conflict_is_retried_until_the_transaction_gets_through(settings) -> None:  # type: ignore[no-untyped-def]
    settings.RESERVO_SERIALIZATION_RETRIES = 5
    failures = [conflict(), busy_from_deadlock()]
    calls = []

    def attempt() -> str:
        calls.append(1)
        if failures:
            raise failures.pop(0)
        return "booked"

    assert retrying_conflicts(attempt) == "booked"
    assert len(calls) == 3


def test_retries_are_bounded(settings) -> None:  # type: ignore[no-untyped-def]
    settings.RESERVO_SERIALIZATION_RETRIES = 3
    calls = []

    def attempt() -> None:
        calls.append(1)
        raise busy_from_deadlock()

    with pytest.raises(Busy):
        retrying_conflicts(attempt)
    assert len(calls) == 3


def test_other_errors_are_not_retried() -> None:
    calls = []

    def attempt() -> None:
        calls.append(1)
        raise SoldOut(available=0)

    with pytest.raises(SoldOut):
        retrying_conflicts(attempt)
    assert len(calls) == 1
    assert not is_retryable_conflict(SoldOut(available=0))


# The booking transaction is Django's own: atomic() means atomic ----------------------

PROBE_TABLE = "CREATE TEMPORARY TABLE probe (id int PRIMARY KEY, note text)"


@pytest.fixture
def probe_table() -> Iterator[None]:
    with connection.cursor() as cursor:
        cursor.execute(PROBE_TABLE)
    yield
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS probe")


def insert(row_id: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO probe VALUES (%s, %s)", [row_id, "note"])


def probe_ids() -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM probe ORDER BY id")
        return [row_id for (row_id,) in cursor.fetchall()]


class Failure(Exception):
    pass


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("probe_table")
def test_two_inserts_then_an_error_leave_no_row() -> None:
    committed: list[str] = []
    with pytest.raises(Failure), transaction.atomic():
        transaction.on_commit(lambda: committed.append("hook"))
        insert(1)
        insert(2)
        raise Failure
    assert probe_ids() == []
    assert committed == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("probe_table")
def test_a_savepoint_between_the_inserts_leaves_no_row_either() -> None:
    with pytest.raises(Failure), transaction.atomic():
        insert(1)
        with transaction.atomic():
            insert(2)
        list(Reservation.objects.iterator())
        raise Failure
    assert probe_ids() == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("probe_table")
def test_a_booking_transaction_is_bounded_and_atomic() -> None:
    def work() -> None:
        insert(1)
        insert(1)  # a duplicate key: the whole transaction goes

    with override_settings(RESERVO_LOCK_TIMEOUT_MS=1234, RESERVO_STATEMENT_TIMEOUT_MS=4321):
        with pytest.raises(IntegrityError):
            in_booking_transaction(work)
        assert probe_ids() == []
        assert in_booking_transaction(bounds) == ("1234ms", "4321ms")
    # The bounds were local to the transaction.
    assert bounds() != ("1234ms", "4321ms")


def bounds() -> tuple[str, str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('lock_timeout'), current_setting('statement_timeout')"
        )
        row = cursor.fetchone()
    assert row is not None
    return row[0], row[1]
