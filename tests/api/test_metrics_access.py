"""/metrics is for loopback clients, or for whoever holds RESERVO_METRICS_TOKEN; and no
client can make new label values with made-up HTTP methods."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client, override_settings

pytestmark = pytest.mark.django_db


def scrape(**extra: str) -> Any:
    return Client(**extra).get("/metrics")


@pytest.mark.parametrize("address", ["127.0.0.1", "::1"])
def test_loopback_clients_read_the_metrics(address: str) -> None:
    response = scrape(REMOTE_ADDR=address)
    assert response.status_code == 200
    assert b"reservo_http_requests_total" in response.content


@pytest.mark.parametrize("address", ["203.0.113.7", "10.0.0.3", "2001:db8::1"])
def test_other_clients_are_refused(address: str) -> None:
    response = scrape(REMOTE_ADDR=address)
    assert response.status_code == 403
    assert b"reservo_" not in response.content


@override_settings(RESERVO_BEHIND_PROXY=True)
def test_behind_a_proxy_on_this_host_the_client_is_not_loopback() -> None:
    """A proxy on the same host connects from 127.0.0.1 for every client."""
    assert scrape(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.7").status_code == 403
    # A scrape that does not go through the proxy is still local.
    assert scrape(REMOTE_ADDR="127.0.0.1").status_code == 200


@override_settings(RESERVO_BEHIND_PROXY=False)
def test_a_forwarded_header_does_not_make_a_client_local() -> None:
    assert scrape(REMOTE_ADDR="203.0.113.7", HTTP_X_FORWARDED_FOR="127.0.0.1").status_code == 403


@override_settings(RESERVO_METRICS_TOKEN="s3cret-metrics-token")
def test_with_a_token_it_is_required_from_every_address() -> None:
    bearer = "Bearer s3cret-metrics-token"
    assert scrape(REMOTE_ADDR="203.0.113.7", HTTP_AUTHORIZATION=bearer).status_code == 200
    assert scrape(REMOTE_ADDR="127.0.0.1", HTTP_AUTHORIZATION=bearer).status_code == 200
    refused = scrape(REMOTE_ADDR="127.0.0.1")
    assert refused.status_code == 403
    assert refused["WWW-Authenticate"] == "Bearer"
    wrong = "Bearer not-the-token"
    assert scrape(REMOTE_ADDR="203.0.113.7", HTTP_AUTHORIZATION=wrong).status_code == 403


def test_unknown_methods_are_counted_as_other() -> None:
    client = Client()
    for method in ("BREW", "X-PROBE-1", "X-PROBE-2"):
        client.generic(method, "/")
    client.generic("PROPFIND", "/")

    text = client.get("/metrics").content.decode()

    for method in ("BREW", "X-PROBE-1", "X-PROBE-2", "PROPFIND"):
        assert f'method="{method}"' not in text
    assert 'reservo_http_requests_total{method="other",route="/"' in text
