"""The OpenAPI document: valid, complete, served with offline docs, and honoured by the
API under a bounded property-based run (no 5xx, no response outside the schema)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from drf_spectacular.validation import validate_schema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.conftest import Api
from tests.factories import ResourceFactory, SeatedResourceFactory

pytestmark = pytest.mark.django_db

CONTRACT = {
    ("get", "/api/v1/resources/"),
    ("post", "/api/v1/resources/"),
    ("get", "/api/v1/resources/{resource_id}/"),
    ("patch", "/api/v1/resources/{resource_id}/"),
    ("get", "/api/v1/resources/{resource_id}/seats/"),
    ("get", "/api/v1/reservations/"),
    ("post", "/api/v1/reservations/"),
    ("get", "/api/v1/reservations/{public_id}/"),
    ("post", "/api/v1/reservations/{public_id}/confirm/"),
    ("post", "/api/v1/reservations/{public_id}/cancel/"),
    ("get", "/api/v1/analytics/bookings/"),
}


@pytest.fixture
def openapi(anonymous_api: Api) -> dict[str, Any]:
    response = anonymous_api.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    document: dict[str, Any] = json.loads(response.content)
    return document


def test_the_schema_is_valid_openapi_3(openapi: dict[str, Any]) -> None:
    assert openapi["openapi"].startswith("3.")
    validate_schema(openapi)


def test_the_schema_describes_every_endpoint_with_auth_errors_and_idempotency(
    openapi: dict[str, Any],
) -> None:
    operations = {
        (method, path): operation
        for path, item in openapi["paths"].items()
        for method, operation in item.items()
    }
    assert set(operations) >= CONTRACT
    assert openapi["components"]["securitySchemes"]["ApiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": openapi["components"]["securitySchemes"]["ApiKey"]["description"],
    }
    for (method, path), operation in operations.items():
        if not path.startswith("/api/v1/"):
            continue
        assert operation["security"] == [{"ApiKey": []}]
        for status in ("400", "401", "403", "404", "429", "500", "503"):
            problem = operation["responses"][status]["content"]["application/problem+json"]
            assert problem["schema"] == {"$ref": "#/components/schemas/Problem"}
        headers = {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}
        unsafe = method in ("post", "put", "patch", "delete")
        assert ("Idempotency-Key" in headers) == unsafe
        if unsafe:
            assert {"409", "422"} <= set(operation["responses"])
    reservation = openapi["components"]["schemas"]["Reservation"]["properties"]
    assert set(reservation) >= {"id", "reference", "seats", "status", "customer"}


def test_interactive_docs_are_served_without_a_cdn(anonymous_api: Api) -> None:
    response = anonymous_api.get("/api/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "swagger-ui" in page
    assert "/static/drf_spectacular_sidecar/" in page
    assert "cdn.jsdelivr.net" not in page and "unpkg.com" not in page


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.mark.django_db(transaction=True)
def test_property_based_run_finds_no_5xx_and_no_schema_violation(manage_api: Api) -> None:
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())
    resource = ResourceFactory(capacity=1000)
    SeatedResourceFactory(seats__rows=["A"], seats__per_row=5)
    booked = manage_api.post("/api/v1/reservations/", {"resource": resource.pk, "quantity": 1})
    known_ids = {
        "resource_id": [resource.pk, resource.pk + 1],
        "public_id": [booked.json()["id"]],
    }
    headers = {"Authorization": f"Api-Key {manage_api.key}"}

    operations = [result.ok() for result in schema.get_all_operations()]
    contract = [op for op in operations if (op.method.lower(), op.path) in CONTRACT]
    assert len(contract) == len(CONTRACT)
    for operation in contract:
        fuzz(operation, known_ids, headers)


def fuzz(operation: Any, known_ids: dict[str, list[Any]], headers: dict[str, str]) -> None:
    """A bounded run on one operation; path ids are drawn from existing objects (and one
    missing resource) so that the run gets past 404."""
    path_parameters = st.fixed_dictionaries(
        {p.name: st.sampled_from(known_ids[p.name]) for p in operation.path_parameters}
    )

    @settings(
        max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        fixed = data.draw(path_parameters)
        case = data.draw(operation.as_strategy(path_parameters=fixed or None))
        case.call_and_validate(headers=headers, checks=CHECKS)

    run()
