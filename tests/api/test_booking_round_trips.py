"""An idempotent API booking's round trips to the database: the claim (which carries the
transaction's BEGIN), the booking, and the record (which carries the COMMIT)."""

from __future__ import annotations

import uuid

import pytest

from tests.api.conftest import Api
from tests.bookings.test_transaction_begin import traced
from tests.factories import ResourceFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_idempotent_api_booking_is_three_round_trips(book_api: Api) -> None:
    resource = ResourceFactory(capacity=10)
    with traced() as trace:
        response = book_api.post(
            "/api/v1/reservations/",
            {"resource": resource.pk, "quantity": 1},
            **{"Idempotency-Key": uuid.uuid4().hex},
        )
    assert response.status_code == 201, response.content
    start = next(i for i, query in enumerate(trace.queries) if "idempotency_claim" in query)
    claim, book, record, *_rest = trace.queries[start:]
    assert claim.startswith("BEGIN ISOLATION LEVEL READ COMMITTED; SELECT * FROM reservo_idem")
    assert "reservo_book" in book
    assert record.startswith("INSERT INTO bookings_idempotencyrecord")
    assert record.endswith("; COMMIT")
    assert "BEGIN" not in trace.queries
