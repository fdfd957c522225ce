"""Check-in through the API (API.md, "Check-in"): the reservation's fields, both endpoints,
and every answer they can give."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings

from bookings.models import Reservation, ReservationEvent
from bookings.services import check_in_code
from bookings.services.checkin import CHECKED_IN_NOTE
from settings_app.models import SystemSettings
from tests.api.conftest import Api, problem
from tests.factories import ResourceFactory

pytestmark = pytest.mark.django_db

RESERVATIONS = "/api/v1/reservations/"
BY_CODE = "/api/v1/check-in/"


def book(api: Api, *, hold: bool = False, quantity: int = 2) -> dict[str, Any]:
    resource = ResourceFactory(capacity=10)
    response = api.post(
        RESERVATIONS,
        {"resource": resource.pk, "quantity": quantity, "hold": hold, "customer": {"name": "Ada"}},
    )
    assert response.status_code == 201, response.content
    body: dict[str, Any] = response.json()
    return body


def check_in_path(reservation_id: str) -> str:
    return f"{RESERVATIONS}{reservation_id}/check-in/"


def history_rows(reservation_id: str) -> int:
    return ReservationEvent.objects.filter(
        reservation__public_id=reservation_id, note=CHECKED_IN_NOTE
    ).count()


def test_reservations_carry_checked_in_at_and_their_signed_code(book_api: Api) -> None:
    created = book(book_api)
    assert created["checked_in_at"] is None
    assert created["check_in_code"] == check_in_code(created["reference"])
    listed = book_api.get(RESERVATIONS).json()["results"][0]
    assert listed["check_in_code"] == created["check_in_code"]
    assert book_api.get(f"{RESERVATIONS}{created['id']}/").json()["checked_in_at"] is None


def test_check_in_answers_the_reservation_with_checked_in_at(
    book_api: Api, manage_api: Api
) -> None:
    created = book(book_api)
    response = manage_api.post(check_in_path(created["id"]))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["id"] == created["id"] and body["status"] == "confirmed"
    assert body["checked_in_at"].endswith("+00:00")
    assert body["check_in_code"] == created["check_in_code"]
    # The owner sees it too.
    seen = book_api.get(f"{RESERVATIONS}{created['id']}/").json()
    assert seen["checked_in_at"] == body["checked_in_at"]
    reservation = Reservation.objects.get(public_id=created["id"])
    assert reservation.checked_in_by == "manager"
    assert history_rows(created["id"]) == 1


def test_again_is_already_checked_in_with_checked_in_at(book_api: Api, manage_api: Api) -> None:
    created = book(book_api)
    first = manage_api.post(check_in_path(created["id"])).json()
    again = problem(manage_api.post(check_in_path(created["id"])), 409, "already_checked_in")
    assert again["checked_in_at"] == first["checked_in_at"]
    assert again["checked_in_by"] == "manager"
    by_code = problem(
        manage_api.post(BY_CODE, {"code": created["check_in_code"]}), 409, "already_checked_in"
    )
    assert by_code["checked_in_at"] == first["checked_in_at"]
    assert history_rows(created["id"]) == 1


def test_only_a_confirmed_reservation_checks_in(book_api: Api, manage_api: Api) -> None:
    held = book(book_api, hold=True)
    body = problem(manage_api.post(check_in_path(held["id"])), 409, "invalid_state")
    assert body["current_status"] == "held"
    cancelled = book(book_api)
    assert book_api.post(f"{RESERVATIONS}{cancelled['id']}/cancel/").status_code == 200
    body = problem(
        manage_api.post(BY_CODE, {"code": cancelled["check_in_code"]}), 409, "invalid_state"
    )
    assert body["current_status"] == "cancelled"
    assert not Reservation.objects.filter(checked_in_at__isnull=False).exists()


def test_a_checked_in_reservation_cannot_be_cancelled(book_api: Api, manage_api: Api) -> None:
    created = book(book_api)
    assert manage_api.post(check_in_path(created["id"])).status_code == 200
    for api in (book_api, manage_api):
        body = problem(api.post(f"{RESERVATIONS}{created['id']}/cancel/"), 409, "invalid_state")
        assert body["current_status"] == "confirmed"
    assert Reservation.objects.get(public_id=created["id"]).status == "confirmed"


def test_check_in_by_code(book_api: Api, manage_api: Api) -> None:
    created = book(book_api)
    response = manage_api.post(BY_CODE, {"code": created["check_in_code"]})
    assert response.status_code == 200, response.content
    assert response.json()["id"] == created["id"]
    assert response.json()["checked_in_at"] is not None
    assert history_rows(created["id"]) == 1


@pytest.mark.parametrize(
    "code",
    [
        "garbage",
        "RSV-7K3Q9MAB",
        "RSV-7K3Q9MAB:bm90LWEtc2lnbmF0dXJl",
        ":",
        "x" * 5000,
    ],
)
def test_a_malformed_code_is_invalid_code(manage_api: Api, code: str) -> None:
    problem(manage_api.post(BY_CODE, {"code": code}), 400, "invalid_code")


def test_a_tampered_code_or_one_of_another_installation_is_invalid_code(
    book_api: Api, manage_api: Api
) -> None:
    created = book(book_api)
    code = created["check_in_code"]
    tampered = code[:-2] + ("AA" if not code.endswith("AA") else "BB")
    problem(manage_api.post(BY_CODE, {"code": tampered}), 400, "invalid_code")
    with override_settings(SECRET_KEY="another-installation-" + "k" * 40):
        foreign = check_in_code(created["reference"])
    problem(manage_api.post(BY_CODE, {"code": foreign}), 400, "invalid_code")
    assert history_rows(created["id"]) == 0


def test_a_missing_code_is_a_validation_error(manage_api: Api) -> None:
    body = problem(manage_api.post(BY_CODE, {}), 400, "validation_error")
    assert "code" in body["errors"]
    problem(manage_api.post(BY_CODE, {"code": 42.5, "x": []}), 400, "invalid_code")
    problem(manage_api.post(BY_CODE, {"code": ["a"]}), 400, "validation_error")


def test_check_in_needs_the_manage_scope(book_api: Api, anonymous_api: Api) -> None:
    created = book(book_api)
    problem(book_api.post(check_in_path(created["id"])), 403, "permission_denied")
    problem(book_api.post(BY_CODE, {"code": created["check_in_code"]}), 403, "permission_denied")
    problem(anonymous_api.post(check_in_path(created["id"])), 401, "not_authenticated")
    problem(anonymous_api.post(BY_CODE, {"code": "x"}), 401, "not_authenticated")
    assert history_rows(created["id"]) == 0


def test_unknown_reservations_are_not_found(manage_api: Api) -> None:
    problem(
        manage_api.post(check_in_path("6f1c0000-0000-4000-8000-000000000000")), 404, "not_found"
    )
    problem(manage_api.post(check_in_path("not-a-uuid")), 404, "not_found")
    problem(manage_api.post(BY_CODE, {"code": check_in_code("RSV-NOSUCH22")}), 404, "not_found")


def test_get_is_method_not_allowed(manage_api: Api) -> None:
    problem(manage_api.get(BY_CODE), 405, "method_not_allowed")


def test_maintenance_refuses_check_in_through_the_api(book_api: Api, manage_api: Api) -> None:
    created = book(book_api)
    SystemSettings.objects.update(maintenance_mode=True)
    problem(manage_api.post(check_in_path(created["id"])), 503, "maintenance")
    assert history_rows(created["id"]) == 0


def test_a_retry_with_the_same_idempotency_key_replays_the_check_in(
    book_api: Api, manage_api: Api
) -> None:
    created = book(book_api)
    key = {"Idempotency-Key": "door-1"}
    first = manage_api.post(BY_CODE, {"code": created["check_in_code"]}, **key)
    again = manage_api.post(BY_CODE, {"code": created["check_in_code"]}, **key)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert history_rows(created["id"]) == 1


def test_the_schema_documents_both_endpoints(anonymous_api: Api) -> None:
    schema = anonymous_api.get("/api/schema/", {"format": "json"}).json()
    assert "/api/v1/check-in/" in schema["paths"]
    assert "post" in schema["paths"]["/api/v1/reservations/{public_id}/check-in/"]
    reservation = schema["components"]["schemas"]["Reservation"]["properties"]
    assert {"checked_in_at", "check_in_code"} <= set(reservation)
