"""A maintenance refusal is expected while staff work: it is logged at INFO, never as an
error, on the pages and the API alike."""

from __future__ import annotations

import logging

import pytest
from django.test import Client

from bookings.api_keys import api_client_create
from bookings.models import ApiScope
from settings_app.services import system_settings_update
from tests.factories import ResourceFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_maintenance_refusals_are_info_not_errors(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    resource = ResourceFactory()
    _client, key = api_client_create(name="shop", scopes=[ApiScope.BOOK])
    system_settings_update(maintenance_mode=True)
    with caplog.at_level(logging.INFO):
        page = client.post(f"/r/{resource.slug}/", {"quantity": "1"})
        api = client.post(
            "/api/v1/reservations/",
            {"resource": resource.pk, "quantity": 1},
            content_type="application/json",
            headers={"Authorization": f"Api-Key {key}"},
        )
    assert page.status_code == api.status_code == 503
    refusals = [r for r in caplog.records if "maintenance" in r.getMessage()]
    assert refusals and all(r.levelno == logging.INFO for r in refusals)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], [
        (r.name, r.getMessage()) for r in caplog.records if r.levelno >= logging.WARNING
    ]
