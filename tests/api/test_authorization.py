"""Who may do what: anonymous / invalid / revoked / book / manage x every endpoint."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from bookings.api_keys import api_client_create, api_client_revoke
from bookings.models import Reservation
from bookings.services import Actor, reservation_book
from tests.api.conftest import Api, problem
from tests.factories import ResourceFactory, SeatedResourceFactory

pytestmark = pytest.mark.django_db


@dataclass
class World:
    resource_id: int
    seated_id: int
    reservation: str  # a hold owned by the "book" client
    others_reservation: str  # a hold owned by another client


@pytest.fixture
def world(book_api: Api, other_book_api: Api) -> World:
    resource = ResourceFactory(capacity=100)
    seated = SeatedResourceFactory(seats__rows=["A"], seats__per_row=3)

    def hold(api: Api) -> str:
        assert api.client is not None
        booking = reservation_book(
            resource_id=resource.pk,
            actor=Actor("api", api.client.name),
            quantity=1,
            hold=True,
            api_client=api.client,
        )
        return str(booking.reservation.public_id)

    return World(resource.pk, seated.pk, hold(book_api), hold(other_book_api))


Call = Callable[[Api, World], Any]

ENDPOINTS: dict[str, tuple[Call, int, int]] = {
    # name: (call, status for book, status for manage)
    "resources list": (lambda api, w: api.get("/api/v1/resources/"), 200, 200),
    "resource detail": (lambda api, w: api.get(f"/api/v1/resources/{w.resource_id}/"), 200, 200),
    "resource create": (
        lambda api, w: api.post("/api/v1/resources/", {"name": "New", "capacity": 5}),
        403,
        201,
    ),
    "resource patch": (
        lambda api, w: api.patch(f"/api/v1/resources/{w.resource_id}/", {"name": "Renamed"}),
        403,
        200,
    ),
    "seats list": (lambda api, w: api.get(f"/api/v1/resources/{w.seated_id}/seats/"), 200, 200),
    "seats add": (
        lambda api, w: api.post(f"/api/v1/resources/{w.seated_id}/seats/", {"seats": ["Z1"]}),
        403,
        201,
    ),
    "reservation create": (
        lambda api, w: api.post(
            "/api/v1/reservations/", {"resource": w.resource_id, "quantity": 1}
        ),
        201,
        201,
    ),
    "reservations list": (lambda api, w: api.get("/api/v1/reservations/"), 200, 200),
    "reservation detail": (
        lambda api, w: api.get(f"/api/v1/reservations/{w.reservation}/"),
        200,
        200,
    ),
    "reservation confirm": (
        lambda api, w: api.post(f"/api/v1/reservations/{w.reservation}/confirm/"),
        200,
        200,
    ),
    "reservation cancel": (
        lambda api, w: api.post(f"/api/v1/reservations/{w.reservation}/cancel/"),
        200,
        200,
    ),
    "analytics": (lambda api, w: api.get("/api/v1/analytics/bookings/"), 403, 200),
}


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_anonymous_invalid_and_revoked_keys_get_401(endpoint: str, world: World) -> None:
    call = ENDPOINTS[endpoint][0]
    client, key = api_client_create(name="gone", scopes=["manage"])
    api_client_revoke(client_id=client.pk)

    for api in (Api(), Api("rsv_0000_not-a-key"), Api(key)):
        problem(call(api, world), 401, "not_authenticated")


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_book_scope(endpoint: str, world: World, book_api: Api) -> None:
    call, expected, _manage = ENDPOINTS[endpoint]
    response = call(book_api, world)
    if expected == 403:
        problem(response, 403, "permission_denied")
    else:
        assert response.status_code == expected, response.content


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_manage_scope(endpoint: str, world: World, manage_api: Api) -> None:
    call, _book, expected = ENDPOINTS[endpoint]
    response = call(manage_api, world)
    assert response.status_code == expected, response.content


@pytest.mark.parametrize(
    "call",
    [
        lambda api, r: api.get(f"/api/v1/reservations/{r}/"),
        lambda api, r: api.post(f"/api/v1/reservations/{r}/confirm/"),
        lambda api, r: api.post(f"/api/v1/reservations/{r}/cancel/"),
    ],
    ids=["detail", "confirm", "cancel"],
)
def test_another_clients_reservation_is_not_found_for_book(
    call: Callable[[Api, str], Any], world: World, book_api: Api, manage_api: Api
) -> None:
    problem(call(book_api, world.others_reservation), 404, "not_found")
    assert Reservation.objects.get(public_id=world.others_reservation).status == "held"
    assert call(manage_api, world.others_reservation).status_code == 200


def test_lists_show_own_reservations_to_book_and_all_to_manage(
    world: World, book_api: Api, manage_api: Api
) -> None:
    own = book_api.get("/api/v1/reservations/").json()
    assert [r["id"] for r in own["results"]] == [world.reservation]
    every = manage_api.get("/api/v1/reservations/").json()
    assert {r["id"] for r in every["results"]} == {world.reservation, world.others_reservation}
