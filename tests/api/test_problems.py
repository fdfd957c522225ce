"""Every problem code of API.md is reachable, with its status, extras and headers."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import OperationalError
from django.test import override_settings
from redis.client import Pipeline

from bookings.models import Reservation
from settings_app.services import system_settings_update
from tests.api.conftest import Api, problem
from tests.conftest import resource_row_locked
from tests.factories import ResourceFactory, SeatedResourceFactory

pytestmark = pytest.mark.django_db

RESERVATIONS = "/api/v1/reservations/"


def book(api: Api, body: dict[str, Any], **headers: str) -> Any:
    return api.post(RESERVATIONS, body, **headers)


# validation_error -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"quantity": 1}, "resource"),
        ({"resource": "seven", "quantity": 1}, "resource"),
        ({"resource": "{resource}", "quantity": 0}, "quantity"),
        ({"resource": "{resource}", "quantity": "lots"}, "quantity"),
        ({"resource": "{resource}"}, "quantity"),
        ({"resource": "{resource}", "quantity": 1, "seats": [1]}, "seats"),
        (
            {"resource": "{resource}", "quantity": 1, "customer": {"email": "nope"}},
            "customer.email",
        ),
        ({"resource": 999999, "quantity": 1}, "resource"),
    ],
)
def test_validation_error_names_the_fields(book_api: Api, body: dict[str, Any], field: str) -> None:
    resource = ResourceFactory()
    body = {k: resource.pk if v == "{resource}" else v for k, v in body.items()}

    found = problem(book(book_api, body), 400, "validation_error")

    assert field in found["errors"], found
    assert all(isinstance(m, str) for m in found["errors"][field])
    assert not Reservation.objects.exists()


def test_malformed_json_is_a_validation_error(book_api: Api) -> None:
    found = problem(book_api.post(RESERVATIONS, "{not json"), 400, "validation_error")
    assert "body" in found["errors"]


def test_unknown_seats_and_seats_of_another_resource_are_validation_errors(book_api: Api) -> None:
    seated = SeatedResourceFactory(seats__rows=["A"], seats__per_row=2)
    other = SeatedResourceFactory(seats__rows=["A"], seats__per_row=2)
    foreign_seat = other.seats.first().pk

    for seats in ([foreign_seat], [999999]):
        found = problem(
            book(book_api, {"resource": seated.pk, "seats": seats}), 400, "validation_error"
        )
        assert "seats" in found["errors"]
    assert not Reservation.objects.exists()


def test_quantity_for_a_seated_resource_is_a_validation_error(book_api: Api) -> None:
    seated = SeatedResourceFactory()
    found = problem(book(book_api, {"resource": seated.pk, "quantity": 1}), 400, "validation_error")
    assert "quantity" in found["errors"]


def test_invalid_idempotency_key_is_a_validation_error(book_api: Api) -> None:
    resource = ResourceFactory()
    found = problem(
        book(book_api, {"resource": resource.pk, "quantity": 1}, **{"Idempotency-Key": "é" * 3}),
        400,
        "validation_error",
    )
    assert "Idempotency-Key" in found["errors"]


# 401, 403, 404, 405 -----------------------------------------------------------------------


def test_not_authenticated_and_permission_denied(anonymous_api: Api, book_api: Api) -> None:
    response = anonymous_api.get("/api/v1/resources/")
    problem(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Api-Key"
    problem(
        book_api.post("/api/v1/resources/", {"name": "x", "capacity": 1}), 403, "permission_denied"
    )


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/resources/424242/",
        "/api/v1/resources/424242/seats/",
        "/api/v1/resources/99999999999999999999999/",
        "/api/v1/reservations/6f1c0000-0000-4000-8000-000000000000/",
        "/api/v1/reservations/not-a-uuid/",
        "/api/v1/no-such-thing/",
        "/api/v2/resources/",
        "/api/nothing",
    ],
)
def test_not_found_everywhere_under_api(book_api: Api, path: str) -> None:
    problem(book_api.get(path), 404, "not_found")


def test_method_not_allowed(book_api: Api) -> None:
    response = book_api.delete("/api/v1/resources/")
    problem(response, 405, "method_not_allowed")
    assert "GET" in response["Allow"]
    problem(
        book_api.http.put("/api/v1/resources/", headers=book_api.headers()),
        405,
        "method_not_allowed",
    )


# 409 domain errors --------------------------------------------------------------------------


def test_sold_out_says_how_many_are_left(book_api: Api) -> None:
    resource = ResourceFactory(capacity=3)
    assert book(book_api, {"resource": resource.pk, "quantity": 2}).status_code == 201

    found = problem(book(book_api, {"resource": resource.pk, "quantity": 2}), 409, "sold_out")
    assert found["available"] == 1


def test_seats_unavailable_lists_the_taken_seats(book_api: Api) -> None:
    seated = SeatedResourceFactory(seats__rows=["A"], seats__per_row=3)
    a1, a2, a3 = seated.seats.order_by("number").values_list("pk", flat=True)
    assert (
        book(book_api, {"resource": seated.pk, "seats": [a1, a2], "hold": True}).status_code == 201
    )

    found = problem(
        book(book_api, {"resource": seated.pk, "seats": [a2, a3]}), 409, "seats_unavailable"
    )
    assert found["seats"] == [a2]


def test_hold_expired(book_api: Api) -> None:
    resource = ResourceFactory(capacity=2)
    held = book(book_api, {"resource": resource.pk, "quantity": 2, "hold": True}).json()
    Reservation.objects.filter(public_id=held["id"]).update(
        hold_expires_at=Reservation.objects.get(public_id=held["id"]).created_at
    )

    problem(book_api.post(f"{RESERVATIONS}{held['id']}/confirm/"), 409, "hold_expired")
    assert Reservation.objects.get(public_id=held["id"]).status == "expired"
    assert book_api.get(f"/api/v1/resources/{resource.pk}/").json()["available"] == 2


def test_invalid_state_gives_the_current_status(book_api: Api) -> None:
    resource = ResourceFactory()
    created = book(book_api, {"resource": resource.pk, "quantity": 1}).json()
    assert book_api.post(f"{RESERVATIONS}{created['id']}/cancel/").status_code == 200

    found = problem(book_api.post(f"{RESERVATIONS}{created['id']}/cancel/"), 409, "invalid_state")
    assert found["current_status"] == "cancelled"
    assert found["status"] == 409
    found = problem(book_api.post(f"{RESERVATIONS}{created['id']}/confirm/"), 409, "invalid_state")
    assert found["current_status"] == "cancelled"


def test_resource_not_bookable(book_api: Api) -> None:
    resource = ResourceFactory(state="closed")
    problem(book(book_api, {"resource": resource.pk, "quantity": 1}), 409, "resource_not_bookable")


def test_capacity_below_booked(book_api: Api, manage_api: Api) -> None:
    resource = ResourceFactory(capacity=5)
    assert book(book_api, {"resource": resource.pk, "quantity": 3}).status_code == 201

    problem(
        manage_api.patch(f"/api/v1/resources/{resource.pk}/", {"capacity": 2}),
        409,
        "capacity_below_booked",
    )
    resource.refresh_from_db()
    assert resource.capacity == 5


def test_limit_exceeded(book_api: Api) -> None:
    resource = ResourceFactory(capacity=10, max_per_booking=2)
    problem(book(book_api, {"resource": resource.pk, "quantity": 3}), 409, "limit_exceeded")


# 429, 503, 500 -------------------------------------------------------------------------------


def test_rate_limited_with_retry_after(
    book_api: Api, other_book_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bookings.api import base

    resource = ResourceFactory(capacity=100)
    # One fixed instant, so the requests cannot straddle two throttle windows.
    monkeypatch.setattr(base.ClientRateThrottle, "clock", staticmethod(lambda: 1_800_000_030.0))
    rates = {"read": "2/min", "book": "2/min", "manage": "2/min"}
    with override_settings(RESERVO_THROTTLE_RATES=rates):
        # A burst, not exactly three requests: a test run sharing this Redis may flush
        # it meanwhile, which can only let more requests through.
        responses = [book(book_api, {"resource": resource.pk, "quantity": 1}) for _ in range(8)]
        statuses = [r.status_code for r in responses]
        assert statuses[:2] == [201, 201]
        limited = next(r for r in responses if r.status_code == 429)
        problem(limited, 429, "rate_limited")
        assert int(limited["Retry-After"]) == 30
        # Per client: another client is not affected.
        assert book(other_book_api, {"resource": resource.pk, "quantity": 1}).status_code == 201
    assert Reservation.objects.count() == statuses.count(201) + 1


def test_throttling_fails_open_when_the_cache_is_down(
    book_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bookings.api import base

    def down(*args: object, **kwargs: object) -> None:
        raise ConnectionError("cache unreachable")

    monkeypatch.setattr(base.cache, "add", down)
    # The throttle counts in one pipeline on the raw client: it fails there (only while
    # the requests run: the suite's cache clearing uses pipelines too).
    with (
        monkeypatch.context() as failing,
        override_settings(RESERVO_THROTTLE_RATES={"read": "1/min"}),
    ):
        failing.setattr(Pipeline, "execute", down)
        for _ in range(3):
            assert book_api.get("/api/v1/resources/").status_code == 200


def test_maintenance_refuses_writes_with_retry_after(book_api: Api) -> None:
    resource = ResourceFactory()
    system_settings_update(maintenance_mode=True)

    response = book(book_api, {"resource": resource.pk, "quantity": 1})
    problem(response, 503, "maintenance")
    assert int(response["Retry-After"]) > 0
    assert book_api.get(f"/api/v1/resources/{resource.pk}/").status_code == 200
    assert not Reservation.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_busy_when_the_resource_lock_wait_passes_its_bound(book_api: Api) -> None:
    resource = ResourceFactory(capacity=5)
    with resource_row_locked(resource.pk), override_settings(RESERVO_LOCK_TIMEOUT_MS=100):
        response = book(book_api, {"resource": resource.pk, "quantity": 1})
    problem(response, 503, "busy")
    assert int(response["Retry-After"]) >= 1
    assert not Reservation.objects.exists()


def test_database_unreachable_is_unavailable(
    book_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    from resources import selectors

    def unreachable() -> None:
        raise OperationalError("could not connect to server")

    monkeypatch.setattr(selectors, "resources_with_availability", unreachable)
    response = book_api.get("/api/v1/resources/1/")
    problem(response, 503, "unavailable")
    assert int(response["Retry-After"]) >= 1


def test_a_bug_is_a_500_with_a_request_id_and_nothing_internal(
    book_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    from resources import selectors

    def broken() -> None:
        raise RuntimeError("secret internal detail: SELECT password FROM x")

    monkeypatch.setattr(selectors, "resources_with_availability", broken)
    response = book_api.get("/api/v1/resources/1/")

    found = problem(response, 500, "server_error")
    assert found["request_id"] == response["X-Request-ID"]
    assert b"secret" not in response.content
    assert b"RuntimeError" not in response.content
