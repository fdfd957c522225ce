"""The sales window through the API: 409 sales_closed, the list without closed sales
unless `include_past=true`, the window set on create and update."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.api.conftest import Api, problem
from tests.bookings.test_sales_window import close_by_the_database_clock
from tests.factories import ResourceFactory

pytestmark = pytest.mark.django_db

RESERVATIONS = "/api/v1/reservations/"


def test_the_api_answers_sales_closed(book_api: Api) -> None:
    resource = ResourceFactory()
    close_by_the_database_clock(resource)
    response = book_api.post(RESERVATIONS, {"resource": resource.pk, "quantity": 1})
    problem(response, 409, "sales_closed")


def test_the_list_hides_closed_sales_unless_asked(book_api: Api) -> None:
    open_now = ResourceFactory(name="Open")
    upcoming = ResourceFactory(name="Upcoming", sales_open_at=timezone.now() + timedelta(days=1))
    closed = ResourceFactory(name="Closed")
    close_by_the_database_clock(closed)

    listed = book_api.get("/api/v1/resources/").json()["results"]
    assert {r["id"] for r in listed} == {open_now.pk, upcoming.pk}
    everything = book_api.get("/api/v1/resources/", {"include_past": "true"}).json()["results"]
    assert {r["id"] for r in everything} == {open_now.pk, upcoming.pk, closed.pk}
    shown = next(r for r in everything if r["id"] == upcoming.pk)
    assert shown["sales_open_at"] is not None and shown["sales_close_at"] is None
    problem(book_api.get("/api/v1/resources/", {"include_past": "maybe"}), 400, "validation_error")


def test_the_window_is_set_through_the_api(manage_api: Api) -> None:
    opens = "2030-01-01T10:00:00+00:00"
    created = manage_api.post(
        "/api/v1/resources/", {"name": "Gala", "capacity": 5, "sales_open_at": opens}
    )
    assert created.status_code == 201, created.content
    assert created.json()["sales_open_at"] == opens
    refused = manage_api.patch(
        f"/api/v1/resources/{created.json()['id']}/", {"sales_close_at": "2029-12-31T10:00Z"}
    )
    problem(refused, 400, "validation_error")
    assert "sales_close_at" in refused.json()["errors"]
