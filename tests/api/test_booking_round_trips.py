"""An idempotent API booking's round trip to the database: the booking call, which carries
the transaction's BEGIN and the key's first claim, and writes the record of its outcome
before the COMMIT it carries too. A duplicate never gets past the first claim, and is
answered by the full one."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from django.db import DatabaseError, connection, transaction

from bookings.api.idempotency import SQLSTATE_CLAIMED_ALREADY
from bookings.models import Reservation
from reservo.errors import sqlstate_of
from tests.api.conftest import Api
from tests.bookings.test_transaction_begin import traced
from tests.factories import ApiClientFactory, ResourceFactory

pytestmark = pytest.mark.django_db(transaction=True)


def book(api: Api, resource_id: int, key: str) -> object:
    return api.post(
        "/api/v1/reservations/",
        {"resource": resource_id, "quantity": 1},
        **{"Idempotency-Key": key},
    )


def test_an_idempotent_api_booking_is_one_round_trip(book_api: Api) -> None:
    resource = ResourceFactory(capacity=10)
    with traced() as trace:
        response = book(book_api, resource.pk, uuid.uuid4().hex)
    assert response.status_code == 201, response.content
    start = next(i for i, query in enumerate(trace.queries) if "idempotency_claim" in query)
    booking, *rest = trace.queries[start:]
    assert booking.startswith(
        "BEGIN ISOLATION LEVEL READ COMMITTED; SELECT reservo_idempotency_claim_first("
    )
    assert "SELECT * FROM reservo_book(" in booking
    assert "INSERT INTO bookings_idempotencyrecord" in booking
    assert booking.endswith("; COMMIT")
    assert not [query for query in rest if "bookings_" in query or "COMMIT" in query]
    assert "BEGIN" not in trace.queries


def test_a_duplicate_is_replayed_without_running_the_booking_again(book_api: Api) -> None:
    resource = ResourceFactory(capacity=10)
    key = uuid.uuid4().hex
    first = book(book_api, resource.pk, key)
    with traced() as trace:
        replay = book(book_api, resource.pk, key)
    assert replay.status_code == 201
    assert replay.content == first.content
    assert replay["Idempotent-Replayed"] == "true"
    assert Reservation.objects.filter(resource=resource).count() == 1
    resource.refresh_from_db()
    assert resource.confirmed == 1
    # The first claim ended the query before the booking call; the full claim answered.
    assert any("reservo_idempotency_claim_first" in query for query in trace.queries)
    assert any("reservo_idempotency_claim(" in query for query in trace.queries)


def test_both_claims_take_the_same_lock() -> None:
    """While a request holds the key through the full claim, the first claim gives way."""
    client = ApiClientFactory()
    params = {**connection.get_connection_params(), "autocommit": False}
    with psycopg.connect(**params) as other:
        other.execute(
            "SELECT * FROM reservo_idempotency_claim(%s, %s, '2s', '5s')", [client.pk, "held"]
        )
        with (
            pytest.raises(DatabaseError) as raised,
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute("SELECT reservo_idempotency_claim_first(%s, %s)", [client.pk, "held"])
        assert sqlstate_of(raised.value) == SQLSTATE_CLAIMED_ALREADY
        with transaction.atomic(), connection.cursor() as cursor:  # another key: free
            cursor.execute("SELECT reservo_idempotency_claim_first(%s, %s)", [client.pk, "free"])
