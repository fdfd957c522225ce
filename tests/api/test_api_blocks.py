"""The house's blocks stay out of the API: no client lists, reads, confirms or cancels one,
and the booking analytics do not count them."""

from __future__ import annotations

from typing import Any

import pytest

from bookings.services import Actor, reservation_book
from tests.api.conftest import Api
from tests.factories import ResourceFactory

pytestmark = pytest.mark.django_db

RESERVATIONS = "/api/v1/reservations/"
STAFF = Actor("staff", "sam")


@pytest.fixture
def booked_and_blocked(book_api: Api) -> dict[str, Any]:
    resource = ResourceFactory(capacity=10)
    created = book_api.post(RESERVATIONS, {"resource": resource.pk, "quantity": 1})
    assert created.status_code == 201
    block = reservation_book(resource_id=resource.pk, actor=STAFF, quantity=3, block=True)
    return {"resource": resource, "booking": created.json()["id"], "block": block.reservation}


@pytest.mark.parametrize("api_name", ["book_api", "manage_api"])
def test_no_client_lists_or_reads_a_block(
    api_name: str, booked_and_blocked: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    api: Api = request.getfixturevalue(api_name)
    block = booked_and_blocked["block"]
    listed = api.get(RESERVATIONS, {"status": "held"}).json()
    assert listed["count"] == 0
    every = api.get(RESERVATIONS).json()
    assert [item["id"] for item in every["results"]] == [booked_and_blocked["booking"]]
    assert api.get(f"{RESERVATIONS}{block.public_id}/").status_code == 404


def test_a_manage_client_cannot_cancel_or_confirm_a_block(
    manage_api: Api, booked_and_blocked: dict[str, Any]
) -> None:
    block = booked_and_blocked["block"]
    for action in ("cancel", "confirm"):
        response = manage_api.post(f"{RESERVATIONS}{block.public_id}/{action}/")
        assert response.status_code == 404
    block.refresh_from_db()
    assert (block.status, block.blocked) == ("held", True)


def test_the_booking_analytics_leave_blocks_out(
    manage_api: Api, booked_and_blocked: dict[str, Any]
) -> None:
    response = manage_api.get("/api/v1/analytics/bookings/", {"group_by": "resource"})
    assert response.status_code == 200
    (row,) = response.json()["results"]
    assert (row["reservations"], row["quantity"]) == (1, 1)
