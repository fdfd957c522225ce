"""Webhook signing secrets: stored encrypted, shown once (on creation and rotation) in the
API and the admin, and still signing deliveries."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client

from bookings.api_keys import api_client_create
from bookings.models import OutboxMessage, WebhookEndpoint
from bookings.services import reservation_book
from bookings.webhook_secrets import (
    WebhookSecretUnreadable,
    webhook_secret_decrypt,
    webhook_secret_encrypt,
)
from bookings.worker import outbox_deliver_due
from tests.conftest import CUSTOMER
from tests.factories import ApiClientFactory, ResourceFactory

pytestmark = [
    pytest.mark.usefixtures("resolver", "connect_guard"),
    # whitenoise warns when collectstatic has not run (a fresh checkout); not a concern here.
    pytest.mark.filterwarnings("ignore:No directory at:UserWarning"),
]

ADMIN = "/admin/bookings/webhookendpoint/"


def stored(endpoint_id: int) -> dict[str, Any]:
    """The endpoint's row as PostgreSQL has it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM bookings_webhookendpoint WHERE id = %s", [endpoint_id])
        columns = [column.name for column in cursor.description]
        row = cursor.fetchone()
    assert row is not None
    return dict(zip(columns, row, strict=True))


@pytest.mark.django_db
class TestAtRest:
    def test_the_secret_is_not_in_the_database(self) -> None:
        _client, key = api_client_create(name="shop", scopes=["manage"])
        api = Client(headers={"Authorization": f"Api-Key {key}"})
        created = api.post(
            "/api/v1/webhooks/",
            json.dumps({"url": "https://example.com/hook"}),
            content_type="application/json",
        )
        assert created.status_code == 201
        assert created["Cache-Control"] == "no-store"
        secret = created.json()["secret"]
        row = stored(created.json()["id"])
        assert secret not in repr(row)
        assert "secret" not in row  # no plain-text column any more
        assert row["secret_encrypted"].startswith("gAAAAA")  # a Fernet token
        assert WebhookEndpoint.objects.get().secret == secret

        rotated = api.post(f"/api/v1/webhooks/{created.json()['id']}/rotate-secret/")
        assert rotated["Cache-Control"] == "no-store"
        new_secret = rotated.json()["secret"]
        assert new_secret != secret
        assert new_secret not in repr(stored(created.json()["id"]))
        assert WebhookEndpoint.objects.get().secret == new_secret

    def test_two_endpoints_with_one_secret_store_different_tokens(self) -> None:
        client = ApiClientFactory()
        first = WebhookEndpoint.objects.create(api_client=client, url="https://a.test/", secret="s")
        second = WebhookEndpoint.objects.create(
            api_client=client, url="https://b.test/", secret="s"
        )
        assert first.secret_encrypted != second.secret_encrypted
        assert first.secret == second.secret == "s"


class TestKeys:
    def test_a_dedicated_key_does_not_depend_on_secret_key(self, settings: Any) -> None:
        settings.RESERVO_WEBHOOK_SECRET_KEY = "a dedicated key"
        token = webhook_secret_encrypt("whsec_x")
        settings.SECRET_KEY = "another secret key altogether"
        assert webhook_secret_decrypt(token) == "whsec_x"
        settings.RESERVO_WEBHOOK_SECRET_KEY = "a different dedicated key"
        with pytest.raises(WebhookSecretUnreadable):
            webhook_secret_decrypt(token)

    def test_secret_key_rotation_keeps_secrets_readable_through_its_fallbacks(
        self, settings: Any
    ) -> None:
        settings.RESERVO_WEBHOOK_SECRET_KEY = ""
        settings.SECRET_KEY = "the old secret key"
        token = webhook_secret_encrypt("whsec_x")
        settings.SECRET_KEY = "the new secret key"
        settings.SECRET_KEY_FALLBACKS = ["the old secret key"]
        assert webhook_secret_decrypt(token) == "whsec_x"
        settings.SECRET_KEY_FALLBACKS = []
        with pytest.raises(WebhookSecretUnreadable):
            webhook_secret_decrypt(token)

    def test_setting_a_dedicated_key_later_keeps_secrets_readable(self, settings: Any) -> None:
        settings.RESERVO_WEBHOOK_SECRET_KEY = ""
        token = webhook_secret_encrypt("whsec_x")
        settings.RESERVO_WEBHOOK_SECRET_KEY = "now a dedicated key"
        assert webhook_secret_decrypt(token) == "whsec_x"
        assert webhook_secret_decrypt(webhook_secret_encrypt("whsec_y")) == "whsec_y"

    @pytest.mark.django_db(transaction=True)
    def test_an_unreadable_secret_fails_the_delivery_with_a_clear_error(
        self, settings: Any
    ) -> None:
        endpoint = WebhookEndpoint.objects.create(
            api_client=ApiClientFactory(), url="https://example.com/", secret="whsec_x"
        )
        reservation_book(
            resource_id=ResourceFactory(capacity=1).pk,
            quantity=1,
            actor=CUSTOMER,
            api_client=endpoint.api_client,
        )
        settings.RESERVO_WEBHOOK_SECRET_KEY = ""
        settings.SECRET_KEY = "a key that did not encrypt it"
        settings.SECRET_KEY_FALLBACKS = []
        assert outbox_deliver_due(worker="test") == 1
        message = OutboxMessage.objects.get()
        assert message.status == OutboxMessage.Status.PENDING
        assert "cannot be decrypted" in message.last_error
        assert "rotate it" in message.last_error


@pytest.mark.django_db
class TestAdmin:
    def test_created_shows_the_secret_once(self, admin_client: Client) -> None:
        client = ApiClientFactory()
        response = admin_client.post(
            ADMIN + "add/",
            {"api_client": client.pk, "url": "https://example.com/hook", "active": "on"},
        )
        assert response.status_code == 200
        assert "no-store" in response["Cache-Control"]
        endpoint = WebhookEndpoint.objects.get()
        [(shown_endpoint, secret)] = response.context["shown"]
        assert shown_endpoint == endpoint
        assert secret == endpoint.secret and secret.startswith("whsec_")
        page = response.content.decode()
        assert secret in page and "shown only this once" in page
        # Nowhere to be seen again.
        detail = admin_client.get(f"{ADMIN}{endpoint.pk}/change/").content.decode()
        listing = admin_client.get(ADMIN).content.decode()
        assert secret not in detail and secret not in listing
        assert "Rotate it" in detail

    def test_a_change_keeps_the_secret_and_does_not_show_it(self, admin_client: Client) -> None:
        endpoint = WebhookEndpoint.objects.create(
            api_client=ApiClientFactory(), url="https://example.com/a", secret="whsec_kept"
        )
        response = admin_client.post(
            f"{ADMIN}{endpoint.pk}/change/",
            {
                "api_client": endpoint.api_client_id,
                "url": "https://example.com/b",
                "active": "on",
            },
            follow=True,
        )
        assert response.status_code == 200
        assert "whsec_kept" not in response.content.decode()
        endpoint.refresh_from_db()
        assert (endpoint.url, endpoint.secret) == ("https://example.com/b", "whsec_kept")

    def test_rotation_shows_the_new_secrets_once(self, admin_client: Client) -> None:
        client = ApiClientFactory()
        endpoints = [
            WebhookEndpoint.objects.create(
                api_client=client, url=f"https://example.com/{n}", secret=f"whsec_old{n}"
            )
            for n in range(2)
        ]
        response = admin_client.post(
            ADMIN,
            {"action": "rotate_secret", "_selected_action": [e.pk for e in endpoints]},
        )
        assert response.status_code == 200
        assert "no-store" in response["Cache-Control"]
        shown = dict(response.context["shown"])
        page = response.content.decode()
        for endpoint in endpoints:
            endpoint.refresh_from_db()
            assert shown[endpoint] == endpoint.secret
            assert endpoint.secret.startswith("whsec_") and "old" not in endpoint.secret
            assert endpoint.secret in page
        assert endpoints[0].secret != endpoints[1].secret
        detail = admin_client.get(f"{ADMIN}{endpoints[0].pk}/change/").content.decode()
        assert endpoints[0].secret not in detail


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_the_migration_encrypts_existing_secrets_and_going_back_decrypts_them() -> None:
    call_command("migrate", "bookings", "0002", verbosity=0)
    try:
        client = ApiClientFactory()
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO bookings_webhookendpoint"
                " (api_client_id, url, secret, event_types, active, disabled_reason)"
                " VALUES (%s, 'https://example.com/old', 'whsec_plain', '{}', true, '')"
                " RETURNING id",
                [client.pk],
            )
            endpoint_id = cursor.fetchone()[0]
    finally:
        call_command("migrate", "bookings", verbosity=0)
    row = stored(endpoint_id)
    assert "whsec_plain" not in repr(row)
    assert WebhookEndpoint.objects.get(pk=endpoint_id).secret == "whsec_plain"

    call_command("migrate", "bookings", "0002", verbosity=0)
    try:
        assert stored(endpoint_id)["secret"] == "whsec_plain"
    finally:
        call_command("migrate", "bookings", verbosity=0)
    assert WebhookEndpoint.objects.get(pk=endpoint_id).secret == "whsec_plain"
