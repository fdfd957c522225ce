"""A young installation's first sale: plans a session made while the tables were small
still find rows by index (bookings/migrations/0008)."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection

from tests.api.conftest import Api
from tests.factories import ResourceFactory

pytestmark = pytest.mark.django_db(transaction=True)

# The tables every booking adds a row to, and reads by key.
GROWING = ["bookings_reservation", "bookings_idempotencyrecord"]


def sequential_scans() -> dict[str, int]:
    with connection.cursor() as cursor:
        # This session's counts, sent now rather than within the second; read afresh.
        cursor.execute("SELECT pg_stat_force_next_flush()")
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT relname, seq_scan FROM pg_stat_user_tables WHERE relname = ANY(%s)",
            [GROWING],
        )
        return dict(cursor.fetchall())


def test_a_session_planned_on_small_tables_books_without_scanning_them(book_api: Api) -> None:
    resource = ResourceFactory(capacity=1000)

    def book() -> None:
        response = book_api.post(
            "/api/v1/reservations/",
            {"resource": resource.pk, "quantity": 1},
            **{"Idempotency-Key": uuid.uuid4().hex},
        )
        assert response.status_code == 201, response.content

    book()  # a young installation's first rows, then its tables are analysed
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {', '.join(GROWING)}")
    # A new session: it plans the booking path now, on tables analysed with a row or two.
    # Its plans stay as made (until the next ANALYZE), however large the tables grow.
    connection.close()
    book()
    before = sequential_scans()
    for _ in range(10):
        book()
    assert sequential_scans() == before
