"""Webhook endpoints through the v1 API: `manage` scope, own endpoints only."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from bookings.api_keys import api_client_create
from bookings.models import ApiClient, WebhookEndpoint

pytestmark = [
    pytest.mark.django_db,
    # Names resolve from a table, and no connection leaves the machine.
    pytest.mark.usefixtures("resolver", "connect_guard"),
    # whitenoise warns when collectstatic has not run (a fresh checkout); not a concern here.
    pytest.mark.filterwarnings("ignore:No directory at:UserWarning"),
]

BASE = "/api/v1/webhooks/"


class Api:
    def __init__(self, *scopes: str) -> None:
        self.client, key = api_client_create(
            name=f"client-{ApiClient.objects.count() + 1}", scopes=scopes
        )
        self.http = Client(headers={"Authorization": f"Api-Key {key}"})

    def get(self, path: str) -> Any:
        return self.http.get(path)

    def send(self, method: str, path: str, body: Any = None) -> Any:
        return getattr(self.http, method)(
            path, json.dumps(body or {}), content_type="application/json"
        )


@pytest.fixture
def manager() -> Api:
    return Api("manage")


def test_create_list_read_update_delete(manager: Api) -> None:
    created = manager.send(
        "post",
        BASE,
        {"url": "https://example.com/hooks", "event_types": ["reservation.cancelled"]},
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["url"] == "https://example.com/hooks"
    assert body["event_types"] == ["reservation.cancelled"]
    assert body["active"] is True
    assert body["secret"].startswith("whsec_")
    endpoint = WebhookEndpoint.objects.get(pk=body["id"])
    assert endpoint.api_client == manager.client
    assert endpoint.secret == body["secret"]

    listed = manager.get(BASE).json()
    assert listed["count"] == 1
    assert "secret" not in listed["results"][0]
    read = manager.get(f"{BASE}{endpoint.pk}/").json()
    assert read["id"] == endpoint.pk and "secret" not in read

    updated = manager.send("patch", f"{BASE}{endpoint.pk}/", {"event_types": [], "active": False})
    assert updated.status_code == 200
    endpoint.refresh_from_db()
    assert (endpoint.event_types, endpoint.active) == ([], False)

    rotated = manager.send("post", f"{BASE}{endpoint.pk}/rotate-secret/")
    assert rotated.status_code == 200
    assert rotated.json()["secret"] != body["secret"]
    endpoint.refresh_from_db()
    assert endpoint.secret == rotated.json()["secret"]

    assert manager.send("delete", f"{BASE}{endpoint.pk}/").status_code == 204
    assert not WebhookEndpoint.objects.exists()


def test_invalid_input_is_a_validation_problem(manager: Api) -> None:
    for body in (
        {"url": "ftp://example.com/x"},
        {"url": "not a url"},
        {"url": "https://example.com", "event_types": ["reservation.exploded"]},
        {},
    ):
        response = manager.send("post", BASE, body)
        assert response.status_code == 400, body
        assert response["Content-Type"] == "application/problem+json"
        assert response.json()["code"] == "validation_error"
    assert not WebhookEndpoint.objects.exists()


def test_book_scope_is_refused_and_other_clients_endpoints_are_not_found(manager: Api) -> None:
    booker = Api("book")
    response = booker.send("post", BASE, {"url": "https://example.com/hooks"})
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert Client().get(BASE).status_code == 401

    theirs = WebhookEndpoint.objects.create(
        api_client=Api("manage").client, url="https://example.com/theirs", secret="s"
    )
    assert manager.get(f"{BASE}{theirs.pk}/").status_code == 404
    assert manager.send("delete", f"{BASE}{theirs.pk}/").status_code == 404
    assert manager.get(BASE).json()["count"] == 0
    assert WebhookEndpoint.objects.filter(pk=theirs.pk).exists()


def test_an_api_client_has_a_bounded_number_of_endpoints(manager: Api, settings: Any) -> None:
    settings.RESERVO_WEBHOOK_MAX_PER_CLIENT = 2
    created = [manager.send("post", BASE, {"url": f"https://example.com/{n}"}) for n in range(2)]
    assert [r.status_code for r in created] == [201, 201]

    refused = manager.send("post", BASE, {"url": "https://example.com/2"})
    assert refused.status_code == 409
    assert refused["Content-Type"] == "application/problem+json"
    problem = refused.json()
    assert (problem["code"], problem["limit"]) == ("limit_exceeded", 2)
    assert "at most 2 webhook endpoints" in problem["detail"]
    assert WebhookEndpoint.objects.count() == 2

    # Another client has its own allowance; a deleted endpoint frees a place.
    assert Api("manage").send("post", BASE, {"url": "https://example.com/x"}).status_code == 201
    assert manager.send("delete", f"{BASE}{created[0].json()['id']}/").status_code == 204
    assert manager.send("post", BASE, {"url": "https://example.com/3"}).status_code == 201


def test_the_admin_keeps_to_the_same_bound(admin_client: Client, settings: Any) -> None:
    settings.RESERVO_WEBHOOK_MAX_PER_CLIENT = 1
    client = Api("manage").client
    WebhookEndpoint.objects.create(api_client=client, url="https://example.com/1", secret="s")
    response = admin_client.post(
        "/admin/bookings/webhookendpoint/add/",
        {"api_client": client.pk, "url": "https://example.com/2", "active": "on"},
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "at most 1 webhook endpoint." in errors["api_client"][0]
    assert WebhookEndpoint.objects.count() == 1


def test_enabling_an_endpoint_again_closes_its_circuit(manager: Api) -> None:
    created = manager.send("post", BASE, {"url": "https://example.com/hooks"}).json()
    WebhookEndpoint.objects.filter(pk=created["id"]).update(
        active=False, disabled_reason="The receiver answered 410 Gone.", consecutive_failures=7
    )
    response = manager.send("patch", f"{BASE}{created['id']}/", {"active": True})
    assert response.status_code == 200
    assert (response.json()["active"], response.json()["disabled_reason"]) == (True, "")
    endpoint = WebhookEndpoint.objects.get()
    assert (endpoint.consecutive_failures, endpoint.circuit_open_until) == (0, None)
