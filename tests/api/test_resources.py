"""Resource endpoints: shapes, pagination, filters, create/patch, seats, read-your-writes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from bookings.models import ApiClient
from bookings.services import Actor, reservation_book
from resources.models import Resource
from tests.api.conftest import Api, problem
from tests.factories import ResourceFactory, SeatedResourceFactory

pytestmark = pytest.mark.django_db

RESOURCE_FIELDS = {
    "id",
    "slug",
    "name",
    "kind",
    "capacity",
    "held",
    "confirmed",
    "available",
    "state",
    "starts_at",
    "ends_at",
    "max_per_booking",
}


def assert_offset_timestamp(value: str | None) -> None:
    if value is not None:
        parsed = datetime.fromisoformat(value)
        assert parsed.utcoffset() is not None
        assert value.endswith("+00:00")


def test_resource_detail_has_the_contract_fields(book_api: Api) -> None:
    resource = ResourceFactory(capacity=40, max_per_booking=10, name="Friday meetup")

    body = book_api.get(f"/api/v1/resources/{resource.pk}/").json()

    assert set(body) >= RESOURCE_FIELDS
    assert body["id"] == resource.pk
    assert body["name"] == "Friday meetup"
    assert (body["capacity"], body["held"], body["confirmed"], body["available"]) == (40, 0, 0, 40)
    assert (body["kind"], body["state"], body["max_per_booking"]) == ("capacity", "open", 10)
    assert body["ends_at"] is None
    assert_offset_timestamp(body["starts_at"])


@pytest.mark.django_db(transaction=True)
def test_available_is_exact_right_after_a_booking_and_ignores_expired_holds(
    book_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bookings.models import Reservation
    from resources import selectors

    resource = ResourceFactory(capacity=10)
    detail = f"/api/v1/resources/{resource.pk}/"
    assert book_api.get(detail).json()["available"] == 10

    book_api.post("/api/v1/reservations/", {"resource": resource.pk, "quantity": 3})
    held = book_api.post(
        "/api/v1/reservations/", {"resource": resource.pk, "quantity": 2, "hold": True}
    ).json()
    body = book_api.get(detail).json()
    assert (body["held"], body["confirmed"], body["available"]) == (2, 3, 5)

    # Time passes: the hold's expiry comes (the database clock says so; nothing is written).
    hold = Reservation.objects.get(public_id=held["id"])
    expired_at = hold.hold_expires_at
    Reservation.objects.filter(pk=hold.pk).update(hold_expires_at=hold.created_at)
    monkeypatch.setattr(selectors.time, "time", lambda: expired_at.timestamp() + 0.001)
    body = book_api.get(detail).json()
    assert (body["held"], body["confirmed"], body["available"]) == (0, 3, 7)


def test_list_is_paginated_and_filtered(book_api: Api) -> None:
    for _ in range(3):
        ResourceFactory(state="open")
    closed = ResourceFactory(state="closed")
    seated = SeatedResourceFactory()

    page = book_api.get("/api/v1/resources/", {"page_size": 2}).json()
    assert set(page) == {"count", "next", "previous", "results"}
    assert page["count"] == 5
    assert len(page["results"]) == 2
    assert page["previous"] is None
    assert "page=2" in page["next"]
    last = book_api.get("/api/v1/resources/", {"page_size": 2, "page": 3}).json()
    assert len(last["results"]) == 1
    assert last["next"] is None

    closed_only = book_api.get("/api/v1/resources/", {"state": "closed"}).json()
    assert [r["id"] for r in closed_only["results"]] == [closed.pk]
    seated_only = book_api.get("/api/v1/resources/", {"kind": "seated"}).json()
    assert [r["id"] for r in seated_only["results"]] == [seated.pk]
    problem(book_api.get("/api/v1/resources/", {"state": "nope"}), 400, "validation_error")
    problem(book_api.get("/api/v1/resources/", {"page": 99}), 404, "not_found")


def test_page_size_is_capped_at_200(book_api: Api) -> None:
    Resource.objects.bulk_create(
        Resource(name=f"R{n}", slug=f"r-{n}", capacity=1) for n in range(205)
    )
    page = book_api.get("/api/v1/resources/", {"page_size": 500}).json()
    assert page["count"] == 205
    assert len(page["results"]) == 200


def test_create_a_capacity_resource(manage_api: Api) -> None:
    response = manage_api.post(
        "/api/v1/resources/",
        {
            "name": "Friday meetup",
            "kind": "capacity",
            "capacity": 40,
            "starts_at": "2026-12-04T18:00:00+00:00",
            "max_per_booking": 10,
        },
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["slug"] == "friday-meetup"
    assert (body["capacity"], body["available"], body["state"]) == (40, 40, "open")
    assert body["starts_at"] == "2026-12-04T18:00:00+00:00"
    assert Resource.objects.get(pk=body["id"]).max_per_booking == 10


@pytest.mark.parametrize(
    ("seats", "labels"),
    [
        ({"rows": ["A", "B"], "per_row": 3}, ["A1", "A2", "A3", "B1", "B2", "B3"]),
        (["A1", "A2", "VIP"], ["A1", "A2", "VIP"]),
    ],
)
def test_create_a_seated_resource(manage_api: Api, seats: object, labels: list[str]) -> None:
    response = manage_api.post(
        "/api/v1/resources/", {"name": "Show", "kind": "seated", "seats": seats, "state": "draft"}
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["capacity"] == len(labels)
    assert body["state"] == "draft"
    listed = manage_api.get(f"/api/v1/resources/{body['id']}/seats/").json()
    assert sorted(s["label"] for s in listed) == sorted(labels)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "capacity", "capacity": 5}, "name"),
        ({"name": "X", "kind": "capacity"}, "capacity"),
        ({"name": "X", "kind": "seated"}, "seats"),
        ({"name": "X", "kind": "capacity", "capacity": 5, "seats": ["A1"]}, "seats"),
        ({"name": "X", "kind": "seated", "seats": {"rows": [], "per_row": 3}}, "seats"),
        ({"name": "X", "kind": "seated", "seats": "A1"}, "seats"),
        ({"name": "X", "capacity": 5, "state": "gone"}, "state"),
        (
            {"name": "X", "capacity": 5, "starts_at": "2026-01-02T00:00Z", "ends_at": "2026-01-01"},
            "ends_at",
        ),
    ],
)
def test_create_refuses_invalid_resources(
    manage_api: Api, body: dict[str, object], field: str
) -> None:
    found = problem(manage_api.post("/api/v1/resources/", body), 400, "validation_error")
    assert field in found["errors"], found
    assert not Resource.objects.exists()


def test_patch_changes_a_resource(manage_api: Api) -> None:
    resource = ResourceFactory(capacity=5)
    response = manage_api.patch(
        f"/api/v1/resources/{resource.pk}/",
        {"name": "Renamed", "capacity": 8, "state": "closed", "max_per_booking": None},
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["name"], body["capacity"], body["available"], body["state"]) == (
        "Renamed",
        8,
        8,
        "closed",
    )
    problem(
        manage_api.patch(f"/api/v1/resources/{resource.pk}/", {"capacity": 0}),
        400,
        "validation_error",
    )
    problem(manage_api.patch("/api/v1/resources/424242/", {"name": "x"}), 404, "not_found")


def test_seat_map_reports_available_held_and_booked(book_api: Api) -> None:
    seated = SeatedResourceFactory(seats__rows=["A"], seats__per_row=3)
    a1, a2, a3 = seated.seats.order_by("number").values_list("pk", flat=True)
    book_api.post("/api/v1/reservations/", {"resource": seated.pk, "seats": [a1], "hold": True})
    book_api.post("/api/v1/reservations/", {"resource": seated.pk, "seats": [a2]})

    seats = book_api.get(f"/api/v1/resources/{seated.pk}/seats/").json()

    assert seats == [
        {"id": a1, "label": "A1", "row": "A", "number": 1, "status": "held"},
        {"id": a2, "label": "A2", "row": "A", "number": 2, "status": "booked"},
        {"id": a3, "label": "A3", "row": "A", "number": 3, "status": "available"},
    ]


def test_seats_of_a_capacity_resource_are_an_empty_list(book_api: Api) -> None:
    resource = ResourceFactory()
    assert book_api.get(f"/api/v1/resources/{resource.pk}/seats/").json() == []


def test_adding_seats_grows_capacity(manage_api: Api) -> None:
    seated = SeatedResourceFactory(seats__rows=["A"], seats__per_row=2)
    response = manage_api.post(f"/api/v1/resources/{seated.pk}/seats/", {"seats": ["B1", "B2"]})
    assert response.status_code == 201, response.content
    assert response.json()["capacity"] == 4
    problem(
        manage_api.post(f"/api/v1/resources/{seated.pk}/seats/", {"seats": ["B1"]}),
        400,
        "validation_error",
    )


def test_resource_detail_is_served_from_the_cache_until_a_write(
    book_api: Api,
    django_assert_num_queries: Callable[..., object],
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    resource = ResourceFactory()
    detail = f"/api/v1/resources/{resource.pk}/"
    book_api.get(detail)  # records the key's first use, fills the cache
    assert ApiClient.objects.get(pk=book_api.client.pk).last_used_at is not None  # type: ignore[union-attr]

    with django_assert_num_queries(0):  # the key is known, the resource cached
        assert book_api.get(detail).json()["available"] == 10
    with django_capture_on_commit_callbacks(execute=True):
        reservation_book(resource_id=resource.pk, quantity=4, actor=Actor("api", "other"))
    with django_assert_num_queries(1):  # the commit left the cached entry behind
        assert book_api.get(detail).json()["available"] == 6


def test_resource_list_costs_two_queries(
    book_api: Api, django_assert_num_queries: Callable[..., object]
) -> None:
    for _ in range(5):
        ResourceFactory()
    book_api.get("/api/v1/resources/")

    with django_assert_num_queries(2):  # the count, the page (the key is known)
        response = book_api.get("/api/v1/resources/")
    assert len(response.json()["results"]) == 5
