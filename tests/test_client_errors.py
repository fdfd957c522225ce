"""Client errors are answered as such (4xx), never as a 500 with a traceback in the log:
a body over the size limit, JSON nested too deeply, malformed ids, an oversized list."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework import serializers

from bookings.api_keys import api_client_create
from bookings.models import Reservation
from tests.factories import ResourceFactory

pytestmark = pytest.mark.django_db

RESERVATIONS = "/api/v1/reservations/"


@pytest.fixture
def api() -> Client:
    _client, key = api_client_create(name="client-errors", scopes=["book"])
    return Client(raise_request_exception=False, HTTP_AUTHORIZATION=f"Api-Key {key}")


@pytest.fixture
def no_errors_logged(caplog: pytest.LogCaptureFixture) -> Any:
    caplog.set_level(logging.WARNING)
    yield
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code and body["status"] == status
    return body


def oversized_booking(settings: Any, resource_id: int) -> str:
    name = "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
    return json.dumps({"resource": resource_id, "quantity": 1, "customer": {"name": name}})


@pytest.mark.usefixtures("no_errors_logged")
@pytest.mark.parametrize("headers", [{}, {"HTTP_IDEMPOTENCY_KEY": "order-1"}])
def test_an_api_body_over_the_size_limit_is_413(
    api: Client, settings: Any, headers: dict[str, str]
) -> None:
    resource = ResourceFactory(capacity=5)
    body = oversized_booking(settings, resource.pk)

    response = api.post(RESERVATIONS, body, content_type="application/json", **headers)

    assert_problem(response, 413, "payload_too_large")
    assert not Reservation.objects.exists()


@pytest.mark.usefixtures("no_errors_logged")
def test_a_page_body_over_the_size_limit_is_a_friendly_413(settings: Any) -> None:
    resource = ResourceFactory(capacity=5)
    client = Client(raise_request_exception=False, enforce_csrf_checks=True)

    response = client.post(
        reverse("bookings:resource", args=[resource.slug]),
        {"quantity": "1", "note": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)},
    )

    assert response.status_code == 413
    assert response["Content-Type"].startswith("text/html")
    assert 'data-error-code="payload_too_large"' in response.content.decode()


@pytest.mark.usefixtures("no_errors_logged")
def test_deeply_nested_json_is_a_validation_error(api: Client) -> None:
    depth = 100_000
    response = api.post(RESERVATIONS, "[" * depth + "]" * depth, content_type="application/json")

    body = assert_problem(response, 400, "validation_error")
    assert "body" in body["errors"]


@pytest.mark.usefixtures("no_errors_logged")
@pytest.mark.parametrize("ids", ["²", "1,²", "x", "1" * 19, "-1"])
def test_malformed_live_ids_are_400(ids: str) -> None:
    response = Client(raise_request_exception=False).get(
        reverse("bookings:live_resources"), {"ids": ids}
    )
    assert response.status_code == 400
    assert "detail" in response.json()


def test_well_formed_live_ids_still_answer(client: Client) -> None:
    resource = ResourceFactory(capacity=3)
    response = client.get(reverse("bookings:live_resources"), {"ids": f"{resource.pk},,999999"})
    assert response.status_code == 200
    assert [item["id"] for item in response.json()["results"]] == [resource.pk]


def test_an_oversized_seat_list_is_refused_before_its_items_are_validated(
    api: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """2 MB of seat ids: the length is checked first, not after 300,000 validations."""
    validated = []
    to_internal_value = serializers.IntegerField.to_internal_value

    def counted(field: serializers.IntegerField, data: Any) -> Any:
        validated.append(data)
        return to_internal_value(field, data)

    monkeypatch.setattr(serializers.IntegerField, "to_internal_value", counted)
    resource = ResourceFactory(capacity=5)
    body = json.dumps({"resource": resource.pk, "seats": list(range(1, 300_000))})
    assert len(body) > 2_000_000

    response = api.post(RESERVATIONS, body, content_type="application/json")

    found = assert_problem(response, 400, "validation_error")
    assert "seats" in found["errors"]
    assert len(validated) < 10  # the resource id, not the seats
