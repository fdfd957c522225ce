"""A transaction's BEGIN travels with its first statement (reservo/db/base.py): one round
trip fewer per transaction, and the transaction is the same as with a BEGIN of its own."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.db import DataError, ProgrammingError, connection, transaction
from django.db.transaction import TransactionManagementError
from psycopg import IsolationLevel, pq

from bookings.models import Reservation
from bookings.services import Actor, reservation_book
from reservo.db.base import send_before_next_statement
from resources.models import Resource
from tests.factories import ResourceFactory

pytestmark = pytest.mark.django_db(transaction=True)

# libpq's trace: one message per entry, each starting a line with F (sent) or B (received);
# a query's text may span lines.
MESSAGE_START = re.compile(r"^(?=[FB]\t)", re.MULTILINE)
QUERY = re.compile(r'^F\t\d+\tQuery\t "(?P<query>.*)"\s*$', re.DOTALL)


@dataclass
class Trace:
    """The simple queries this session sent, and its round trips (one ReadyForQuery each)."""

    queries: list[str] = field(default_factory=list)
    round_trips: int = 0


@contextmanager
def traced() -> Iterator[Trace]:
    """The protocol messages of this test's connection, through libpq's own trace."""
    connection.ensure_connection()
    pgconn = connection.connection.pgconn
    trace = Trace()
    with tempfile.TemporaryFile("w+") as log:
        pgconn.trace(log.fileno())
        pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        try:
            yield trace
        finally:
            pgconn.untrace()
            log.seek(0)
            for message in MESSAGE_START.split(log.read()):
                if query := QUERY.match(message):
                    trace.queries.append(query["query"])
                elif message.startswith("B") and "\tReadyForQuery\t" in message:
                    trace.round_trips += 1


def one(sql: str) -> object:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        row = cursor.fetchone()
        assert row is not None
        return row[0]


def test_a_transaction_is_a_round_trip_per_statement_and_one_for_its_commit() -> None:
    with traced() as trace, transaction.atomic():
        first = one("SELECT txid_current()")
        second = one("SELECT txid_current()")
    assert first == second  # one transaction
    assert trace.round_trips == 3
    assert trace.queries == [
        "BEGIN ISOLATION LEVEL READ COMMITTED; SELECT txid_current()",
        "SELECT txid_current()",
        "COMMIT",
    ]


def test_a_booking_from_the_pages_is_one_round_trip() -> None:
    resource = ResourceFactory(capacity=10)
    with traced() as trace:
        reservation_book(resource_id=resource.pk, actor=Actor("customer"), quantity=1)
    (booking,) = [query for query in trace.queries if "reservo_book" in query]
    assert booking.startswith("BEGIN ISOLATION LEVEL READ COMMITTED; ")
    assert booking.endswith("; COMMIT")
    assert "BEGIN" not in {query.split(" ")[0] for query in trace.queries if query != booking}
    assert Reservation.objects.filter(resource=resource).count() == 1


def test_a_transaction_whose_first_statement_fails_is_rolled_back_whole() -> None:
    with pytest.raises(DataError), transaction.atomic():
        one("SELECT 1/0")
    assert connection.connection.info.transaction_status == pq.TransactionStatus.IDLE
    with transaction.atomic():
        assert one("SELECT 2") == 2


def test_a_statement_that_was_never_sent_leaves_the_begin_for_the_next() -> None:
    resource = ResourceFactory(capacity=10)
    with pytest.raises(RuntimeError), transaction.atomic():
        with pytest.raises(ProgrammingError), connection.cursor() as cursor:
            cursor.execute("SELECT %s", [object()])  # psycopg cannot adapt it: nothing sent
        Resource.objects.filter(pk=resource.pk).update(capacity=99)
        raise RuntimeError("roll back")
    resource.refresh_from_db()
    assert resource.capacity == 10  # the update was inside the transaction


def test_with_autocommit_off_each_transaction_gets_its_begin() -> None:
    """Django's manual transactions: after a commit, the next statement opens the next one."""
    resource = ResourceFactory(capacity=10)
    transaction.set_autocommit(False)
    try:
        Resource.objects.filter(pk=resource.pk).update(capacity=20)
        transaction.commit()
        Resource.objects.filter(pk=resource.pk).update(capacity=30)
        transaction.rollback()
    finally:
        transaction.set_autocommit(True)
    resource.refresh_from_db()
    assert resource.capacity == 20


def test_a_server_side_cursor_opens_the_transaction_first() -> None:
    ResourceFactory.create_batch(3)
    with transaction.atomic():
        rows = Resource.objects.order_by("pk").values_list("pk", flat=True).iterator(1)
        next(rows)
        (holdable,) = [row for row in _cursors()]
        assert holdable is False  # declared inside the transaction, as Django does
        assert len([next(rows), next(rows)]) == 2


def _cursors() -> list[bool]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT is_holdable FROM pg_cursors WHERE name LIKE '_django_curs_%%'")
        return [row[0] for row in cursor.fetchall()]


def test_executemany_as_the_first_statement_is_inside_the_transaction() -> None:
    resource = ResourceFactory(capacity=10)
    with pytest.raises(RuntimeError), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.executemany(
                "UPDATE resources_resource SET capacity = %s WHERE id = %s", [(50, resource.pk)]
            )
        raise RuntimeError("roll back")
    resource.refresh_from_db()
    assert resource.capacity == 10


@pytest.mark.parametrize(
    ("level", "shown"),
    [
        (IsolationLevel.READ_COMMITTED, "read committed"),
        (IsolationLevel.REPEATABLE_READ, "repeatable read"),
        (IsolationLevel.SERIALIZABLE, "serializable"),
    ],
)
def test_the_begin_keeps_the_configured_isolation_level(level: IsolationLevel, shown: str) -> None:
    connection.ensure_connection()
    configured = connection.connection.isolation_level
    connection.connection.isolation_level = level
    try:
        with transaction.atomic():
            assert one("SHOW transaction_isolation") == shown
    finally:
        connection.connection.isolation_level = configured


def _copied_txid(cursor: Any) -> int:
    with cursor.copy("COPY (SELECT txid_current()) TO STDOUT") as copy:
        return int(b"".join(bytes(block) for block in copy).decode())


def _streamed_txid(cursor: Any) -> int:
    return int(next(iter(cursor.stream("SELECT txid_current()")))[0])


@pytest.mark.parametrize("first", [_copied_txid, _streamed_txid])
def test_copy_and_stream_as_the_first_statement_are_inside_the_transaction(
    first: Callable[[Any], int],
) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        txid = first(cursor.cursor)
        assert one("SELECT txid_current()") == txid


# Statements sent before the next one (send_before_next_statement) ------------------------


def capacity_update(capacity: int, resource: Resource) -> tuple[str, list[int]]:
    return "UPDATE resources_resource SET capacity = %s WHERE id = %s", [capacity, resource.pk]


def test_a_queued_statement_goes_in_the_next_statements_query() -> None:
    resource = ResourceFactory(capacity=10)
    with traced() as trace, transaction.atomic():
        send_before_next_statement(
            "UPDATE resources_resource SET name = %s WHERE id = %s", ["50% off", resource.pk]
        )
        with connection.cursor() as cursor:
            cursor.execute("SELECT name FROM resources_resource WHERE id = %s", [resource.pk])
            assert cursor.fetchone() == ("50% off",)  # the statement's own result
    expected = (  # the query as traced, not one to send
        "BEGIN ISOLATION LEVEL READ COMMITTED; "
        "UPDATE resources_resource SET name = '50% off' WHERE id = :id; "
        "SELECT name FROM resources_resource WHERE id = :id"
    )
    assert trace.queries[0] == expected.replace(":id", str(resource.pk))
    assert trace.round_trips == 2  # with the COMMIT


def test_an_error_in_a_queued_statement_stops_the_next_one() -> None:
    resource = ResourceFactory(capacity=10)
    with pytest.raises(DataError), transaction.atomic():
        send_before_next_statement("SELECT 1 / %s", [0])
        Resource.objects.filter(pk=resource.pk).update(capacity=30)
    resource.refresh_from_db()
    assert resource.capacity == 10


def test_a_queued_statement_not_yet_sent_goes_with_the_following_one() -> None:
    resource = ResourceFactory(capacity=10)
    with pytest.raises(RuntimeError), transaction.atomic():
        one("SELECT 1")
        send_before_next_statement(*capacity_update(20, resource))
        with pytest.raises(ProgrammingError), connection.cursor() as cursor:
            cursor.execute("SELECT %s", [object()])  # psycopg cannot adapt it: nothing sent
        assert Resource.objects.values_list("capacity", flat=True).get(pk=resource.pk) == 20
        raise RuntimeError("roll back")
    resource.refresh_from_db()
    assert resource.capacity == 10


def test_a_queued_statement_goes_before_the_commit_and_a_rollback_drops_it() -> None:
    resource = ResourceFactory(capacity=10)
    with transaction.atomic():
        send_before_next_statement(*capacity_update(20, resource))
    resource.refresh_from_db()
    assert resource.capacity == 20
    with pytest.raises(RuntimeError), transaction.atomic():
        send_before_next_statement(*capacity_update(30, resource))
        raise RuntimeError("roll back")
    with transaction.atomic():
        assert one("SELECT 1") == 1  # nothing left over from the rolled-back block
    resource.refresh_from_db()
    assert resource.capacity == 20


def test_what_cannot_carry_a_queued_statement_sends_it_first() -> None:
    resource = ResourceFactory(capacity=10)
    with transaction.atomic():
        send_before_next_statement(*capacity_update(20, resource))
        rows = Resource.objects.filter(pk=resource.pk).values_list("capacity", flat=True)
        assert list(rows.iterator(1)) == [20]  # a server-side cursor


def test_queueing_needs_a_transaction() -> None:
    with pytest.raises(TransactionManagementError):
        send_before_next_statement("SELECT 1", [])
