"""Reservation endpoints: create by quantity or seats, hold or confirm, list, detail,
confirm, cancel, analytics."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from rest_framework import serializers

from bookings.api.serializers import ReservationCreateSerializer, ReservationSerializer
from bookings.models import Reservation, ReservationEvent
from settings_app.selectors import system_settings
from tests.api.conftest import Api, problem
from tests.factories import ResourceFactory, SeatedResourceFactory

pytestmark = pytest.mark.django_db

RESERVATIONS = "/api/v1/reservations/"
RESERVATION_FIELDS = {
    "id",
    "reference",
    "resource",
    "quantity",
    "seats",
    "status",
    "hold_expires_at",
    "created_at",
    "confirmed_at",
    "cancelled_at",
    "customer",
}


def ts(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset() is not None, value
    return parsed


def test_book_a_quantity_confirmed_at_once(book_api: Api) -> None:
    resource = ResourceFactory(capacity=40)
    response = book_api.post(
        RESERVATIONS,
        {
            "resource": resource.pk,
            "quantity": 2,
            "hold": False,
            "customer": {"name": "Ada", "email": "ada@example.com"},
        },
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) >= RESERVATION_FIELDS
    reservation = Reservation.objects.get()
    assert body["id"] == str(reservation.public_id)
    assert uuid.UUID(body["id"])
    assert body["reference"] == reservation.reference
    assert (body["resource"], body["quantity"], body["seats"]) == (resource.pk, 2, [])
    assert body["status"] == "confirmed"
    assert body["hold_expires_at"] is None and body["cancelled_at"] is None
    assert ts(body["confirmed_at"]) == ts(body["created_at"]) == reservation.created_at
    assert body["customer"] == {"name": "Ada", "email": "ada@example.com"}
    assert reservation.api_client == book_api.client
    assert ReservationEvent.objects.get().actor == "api:booker"


def test_hold_seats_then_confirm(book_api: Api) -> None:
    seated = SeatedResourceFactory(seats__rows=["A"], seats__per_row=4)
    seat_ids = sorted(seated.seats.values_list("pk", flat=True))[:2]

    held = book_api.post(RESERVATIONS, {"resource": seated.pk, "seats": seat_ids, "hold": True})

    assert held.status_code == 201, held.content
    body = held.json()
    assert (body["status"], body["quantity"], body["seats"]) == ("held", 2, seat_ids)
    assert ts(body["hold_expires_at"]) > ts(body["created_at"])
    assert body["confirmed_at"] is None

    confirmed = book_api.post(
        f"{RESERVATIONS}{body['id']}/confirm/", {"customer": {"name": "Grace"}}
    )
    assert confirmed.status_code == 200, confirmed.content
    after = confirmed.json()
    assert (after["status"], after["seats"], after["customer"]["name"]) == (
        "confirmed",
        seat_ids,
        "Grace",
    )
    assert ts(after["confirmed_at"]) >= ts(after["created_at"])
    assert book_api.get(f"{RESERVATIONS}{body['id']}/").json() == after


def test_cancel_releases_the_places(book_api: Api) -> None:
    resource = ResourceFactory(capacity=2)
    created = book_api.post(RESERVATIONS, {"resource": resource.pk, "quantity": 2}).json()

    cancelled = book_api.post(f"{RESERVATIONS}{created['id']}/cancel/")

    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert ts(cancelled.json()["cancelled_at"]) >= ts(created["created_at"])
    assert book_api.get(f"/api/v1/resources/{resource.pk}/").json()["available"] == 2


def test_all_seats_or_none(book_api: Api) -> None:
    seated = SeatedResourceFactory(seats__rows=["A"], seats__per_row=3)
    a1, a2, a3 = seated.seats.order_by("number").values_list("pk", flat=True)
    book_api.post(RESERVATIONS, {"resource": seated.pk, "seats": [a3]})

    problem(
        book_api.post(RESERVATIONS, {"resource": seated.pk, "seats": [a1, a2, a3]}),
        409,
        "seats_unavailable",
    )
    assert Reservation.objects.count() == 1
    assert book_api.get(f"/api/v1/resources/{seated.pk}/").json()["available"] == 2


def test_list_filters_by_resource_and_status(book_api: Api) -> None:
    first, second = ResourceFactory(), ResourceFactory()
    kept = book_api.post(RESERVATIONS, {"resource": first.pk, "quantity": 1}).json()
    held = book_api.post(RESERVATIONS, {"resource": second.pk, "quantity": 1, "hold": True}).json()

    everything = book_api.get(RESERVATIONS).json()
    assert everything["count"] == 2
    assert [r["id"] for r in everything["results"]] == [held["id"], kept["id"]]  # newest first
    by_resource = book_api.get(RESERVATIONS, {"resource": first.pk}).json()
    assert [r["id"] for r in by_resource["results"]] == [kept["id"]]
    by_status = book_api.get(RESERVATIONS, {"status": "held"}).json()
    assert [r["id"] for r in by_status["results"]] == [held["id"]]
    problem(book_api.get(RESERVATIONS, {"status": "lost"}), 400, "validation_error")
    problem(book_api.get(RESERVATIONS, {"resource": "x"}), 400, "validation_error")


def test_analytics_by_day_and_by_resource(book_api: Api, manage_api: Api) -> None:
    first, second = ResourceFactory(capacity=50), ResourceFactory(capacity=50)
    book_api.post(RESERVATIONS, {"resource": first.pk, "quantity": 2})
    cancelled = book_api.post(RESERVATIONS, {"resource": first.pk, "quantity": 3}).json()
    book_api.post(f"{RESERVATIONS}{cancelled['id']}/cancel/")
    book_api.post(RESERVATIONS, {"resource": second.pk, "quantity": 4})
    day = ts(cancelled["created_at"]).date()

    by_day = manage_api.get("/api/v1/analytics/bookings/", {"group_by": "day"}).json()
    assert by_day == {
        "results": [{"key": day.isoformat(), "reservations": 3, "quantity": 9, "cancelled": 1}]
    }
    by_resource = manage_api.get(
        "/api/v1/analytics/bookings/",
        {"group_by": "resource", "from": day.isoformat(), "to": day.isoformat()},
    ).json()["results"]
    assert [(r["key"], r["reservations"], r["quantity"], r["cancelled"]) for r in by_resource] == [
        (first.slug, 2, 5, 1),
        (second.slug, 1, 4, 0),
    ]
    tomorrow = (day + timedelta(days=1)).isoformat()
    assert manage_api.get("/api/v1/analytics/bookings/", {"from": tomorrow}).json() == {
        "results": []
    }
    problem(
        manage_api.get("/api/v1/analytics/bookings/", {"group_by": "week"}), 400, "validation_error"
    )
    problem(
        manage_api.get("/api/v1/analytics/bookings/", {"from": tomorrow, "to": day.isoformat()}),
        400,
        "validation_error",
    )


def test_create_reservation_query_count(
    book_api: Api, django_assert_num_queries: Callable[..., object]
) -> None:
    resource = ResourceFactory(capacity=100)
    book_api.post(RESERVATIONS, {"resource": resource.pk, "quantity": 1})

    system_settings()  # the maintenance switch is served from the shared cache

    # The API key is known to this process (for a second at most). Nested in the test's
    # transaction: the client's webhook endpoints, savepoint, timeouts, resource lock,
    # rules and clock, reservation, history row, release. (No hold on the resource: no
    # read of due holds.)
    with django_assert_num_queries(8) as queries:
        response = book_api.post(RESERVATIONS, {"resource": resource.pk, "quantity": 1})
    assert response.status_code == 201
    statements = [query["sql"] for query in queries.captured_queries]
    lock = next(i for i, sql in enumerate(statements) if "FOR UPDATE" in sql)
    endpoints = next(i for i, sql in enumerate(statements) if "bookings_webhookendpoint" in sql)
    assert endpoints < lock  # read before the resource is locked, not under the lock


def test_idempotent_create_reservation_query_count(
    book_api: Api, django_assert_num_queries: Callable[..., object]
) -> None:
    resource = ResourceFactory(capacity=100)
    book_api.post(RESERVATIONS, {"resource": resource.pk, "quantity": 1})

    system_settings()

    # The above, plus: savepoint, timeouts and the record's insert before it; the record
    # filled in with the answer, and the release, after it.
    with django_assert_num_queries(13):
        response = book_api.post(
            RESERVATIONS, {"resource": resource.pk, "quantity": 1}, **{"Idempotency-Key": "q"}
        )
    assert response.status_code == 201
    system_settings()
    # Savepoint, timeouts, the insert that finds the record, its read, release.
    with django_assert_num_queries(5):
        replay = book_api.post(
            RESERVATIONS, {"resource": resource.pk, "quantity": 1}, **{"Idempotency-Key": "q"}
        )
    assert replay.content == response.content


def test_reservation_detail_query_count(
    book_api: Api, django_assert_num_queries: Callable[..., object]
) -> None:
    resource = ResourceFactory()
    created = book_api.post(RESERVATIONS, {"resource": resource.pk, "quantity": 1}).json()

    with django_assert_num_queries(3):  # id lookup, reservation, its seats
        assert book_api.get(f"{RESERVATIONS}{created['id']}/").status_code == 200


def test_written_out_representation_matches_the_declared_fields(book_api: Api) -> None:
    """ReservationSerializer writes its answer out by hand; the declared fields (the
    schema) and DRF's own rendering of them must give the same thing."""
    resource = SeatedResourceFactory()
    seat = resource.seats.order_by("id").first()
    created = book_api.post(
        RESERVATIONS,
        {"resource": resource.pk, "seats": [seat.pk], "hold": True, "customer": {"name": "Ada"}},
    ).json()
    reservation = Reservation.objects.get(public_id=created["id"])
    book_api.post(f"{RESERVATIONS}{created['id']}/cancel/")
    reservation.refresh_from_db()

    serializer = ReservationSerializer(reservation)
    by_fields = serializers.Serializer.to_representation(serializer, reservation)
    assert serializer.data == by_fields
    assert list(serializer.data) == list(serializer.fields)
    assert by_fields["cancelled_at"] is not None and by_fields["seats"] == [seat.pk]


REQUEST_PAYLOADS: list[Any] = [
    {"resource": 1, "quantity": 2},
    {"resource": 1, "seats": [3, 1]},
    {"resource": 1, "quantity": 1, "hold": True, "customer": {"name": "Ada", "email": "a@b.org"}},
    {"resource": 0, "quantity": 1},
    {"resource": "x"},
    {"resource": 1, "quantity": 1, "seats": [1]},
    {"resource": 1},
    {"resource": 1, "seats": []},
    {"resource": 1, "quantity": 1, "customer": {"email": "not-an-email"}},
    {"resource": 1, "quantity": 2**31},
    {"resource": 1, "quantity": 1, "customer": "Ada"},
    {},
    [],
    "text",
]


@pytest.mark.parametrize("payload", REQUEST_PAYLOADS)
def test_request_fields_built_once_validate_as_drf_copies_them(payload: Any) -> None:
    """The booking request's fields are shared by every instance; validation must give
    what DRF gives with its own per-instance copy of the same declared fields."""
    per_instance = type(
        "PerInstance",
        (serializers.Serializer,),
        {
            **copy.deepcopy(ReservationCreateSerializer._declared_fields),
            "validate": ReservationCreateSerializer.validate,
        },
    )
    for _ in range(2):  # the second instance reuses the first one's fields
        shared = ReservationCreateSerializer(data=payload)
        reference = per_instance(data=payload)
        assert shared.is_valid() == reference.is_valid()
        assert shared.errors == reference.errors
        if reference.errors == {}:
            assert shared.validated_data == reference.validated_data
    assert ReservationCreateSerializer().fields is ReservationCreateSerializer().fields
