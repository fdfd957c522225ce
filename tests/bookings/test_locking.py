"""The one retry mechanism for whole transactions: conflicts are retried, a bounded
number of times; anything else goes up at once. The last statement sent with the COMMIT."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg.errors
import pytest
from django.db import IntegrityError, OperationalError, connection, transaction
from django.test.utils import CaptureQueriesContext
from psycopg.pq import TransactionStatus

from bookings.locking import execute_then_commit, is_retryable_conflict, retrying_conflicts
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


# execute_then_commit: the last statement and the COMMIT in one round trip ----------------

PROBE_TABLE = "CREATE TEMPORARY TABLE probe (id int PRIMARY KEY, note text)"


@pytest.fixture
def probe_table() -> Iterator[None]:
    with connection.cursor() as cursor:
        cursor.execute(PROBE_TABLE)
    yield
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS probe")


def sent(queries: CaptureQueriesContext) -> list[str]:
    """The inserts sent (Django also logs its own BEGIN, COMMIT and savepoints)."""
    return [query["sql"] for query in queries.captured_queries if "INSERT" in query["sql"]]


def probe_notes() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT note FROM probe ORDER BY id")
        return [note for (note,) in cursor.fetchall()]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("probe_table")
def test_the_outermost_transaction_commits_with_its_last_statement() -> None:
    committed: list[str] = []
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        transaction.on_commit(lambda: committed.append("hook"))
        row = execute_then_commit("INSERT INTO probe VALUES (%s, %s) RETURNING note", [1, "first"])
        # The transaction has ended: another connection would see the row already.
        assert connection.connection.info.transaction_status == TransactionStatus.IDLE
        assert committed == []  # on_commit callbacks still run when the block ends

    assert row == {"note": "first"}
    # The first statement also carries the BEGIN (reservo/db): the whole transaction is one
    # round trip.
    assert sent(queries) == [
        "BEGIN ISOLATION LEVEL READ COMMITTED; "
        "INSERT INTO probe VALUES (1, 'first') RETURNING note; COMMIT"
    ]
    assert committed == ["hook"]
    assert probe_notes() == ["first"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("probe_table")
def test_a_failing_commit_rolls_back_and_runs_no_hook() -> None:
    """The COMMIT's own error (here a deferred constraint) is raised inside the block."""
    with connection.cursor() as cursor:
        cursor.execute(
            "ALTER TABLE probe ADD COLUMN parent int REFERENCES probe (id) "
            "DEFERRABLE INITIALLY DEFERRED"
        )
    committed: list[str] = []
    with pytest.raises(IntegrityError), transaction.atomic():
        transaction.on_commit(lambda: committed.append("hook"))
        execute_then_commit("INSERT INTO probe VALUES (%s, %s, %s)", [1, "orphan", 99])

    assert committed == []
    assert probe_notes() == []
    assert not connection.in_atomic_block
    execute_then_commit("INSERT INTO probe VALUES (%s, %s)", [2, "usable"])  # autocommit
    assert probe_notes() == ["usable"]


@pytest.mark.django_db
@pytest.mark.usefixtures("probe_table")
def test_nested_it_leaves_the_commit_to_the_enclosing_transaction() -> None:
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        execute_then_commit("INSERT INTO probe VALUES (%s, %s)", [1, "nested"])
        assert connection.connection.info.transaction_status != TransactionStatus.IDLE
    assert sent(queries) == ["INSERT INTO probe VALUES (1, 'nested')"]
    assert probe_notes() == ["nested"]
