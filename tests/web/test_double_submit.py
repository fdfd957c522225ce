"""Two submissions of one hold form arriving together (a double click) book once."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from bookings.models import Reservation
from bookings.views import common
from tests.conftest import run_concurrently
from tests.factories import ResourceFactory
from tests.web.conftest import form_token


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicate_submissions_book_once() -> None:
    resource = ResourceFactory(capacity=10)
    url = reverse("bookings:resource", args=[resource.slug])
    first = Client()
    token = form_token(first, url)
    clients = [first, Client()]
    clients[1].cookies = first.cookies  # the same browser, two requests in flight

    responses = run_concurrently(
        4, lambda i: clients[i % 2].post(url, {"form_token": token, "quantity": 3})
    )

    assert [r.status_code for r in responses] == [302] * 4
    assert len({r["Location"] for r in responses}) == 1
    assert Reservation.objects.filter(resource=resource).count() == 1
    resource.refresh_from_db()
    assert resource.held == 3


@pytest.mark.django_db(transaction=True)
def test_negative_control_fresh_forms_book_separately(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the shared token, and without the one-live-hold rule that would catch it
    too, the same requests do book twice (the test can fail)."""
    monkeypatch.setattr(common, "_live_hold", lambda request, resource: None)
    resource = ResourceFactory(capacity=10)
    url = reverse("bookings:resource", args=[resource.slug])
    client = Client()
    tokens = [form_token(client, url), form_token(client, url)]
    for token in tokens:
        assert client.post(url, {"form_token": token, "quantity": 3}).status_code == 302
    assert Reservation.objects.filter(resource=resource).count() == 2
