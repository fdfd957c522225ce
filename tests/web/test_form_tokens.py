"""Showing the event pages writes no session: the hold form carries a signed token bound to
the browser, and the session is created by the first hold."""

from __future__ import annotations

import pytest
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse

from bookings.models import Reservation
from bookings.views import common
from tests.factories import ResourceFactory, SeatedResourceFactory
from tests.web.conftest import form_token

pytestmark = pytest.mark.django_db


def test_viewing_the_pages_writes_no_session(client: Client) -> None:
    resources = [ResourceFactory(), SeatedResourceFactory()]
    before = Session.objects.count()
    for url in ["/", *(reverse("bookings:resource", args=[r.slug]) for r in resources)]:
        response = client.get(url)
        assert response.status_code == 200
        assert "sessionid" not in response.cookies
    form_token(client, reverse("bookings:resource", args=[resources[0].slug]))  # again
    assert Session.objects.count() == before


def test_the_first_hold_creates_the_session(client: Client) -> None:
    resource = ResourceFactory(capacity=5)
    url = reverse("bookings:resource", args=[resource.slug])
    response = client.post(url, {"form_token": form_token(client, url), "quantity": 2})
    assert response.status_code == 302
    session = Session.objects.get(session_key=client.cookies["sessionid"].value)
    reference = Reservation.objects.get(resource=resource).reference
    assert reference in session.get_decoded()["reservo_bookings"]
    assert client.get(response["Location"]).status_code == 200  # its checkout


def test_a_refused_hold_writes_no_session(client: Client) -> None:
    resource = ResourceFactory(capacity=1)
    url = reverse("bookings:resource", args=[resource.slug])
    before = Session.objects.count()
    response = client.post(url, {"form_token": form_token(client, url), "quantity": 2})
    assert response.status_code in (400, 409)
    assert Session.objects.count() == before


def test_a_token_of_another_browser_books_nothing(client: Client) -> None:
    resource = ResourceFactory(capacity=5)
    url = reverse("bookings:resource", args=[resource.slug])
    token = form_token(client, url)
    other = Client()
    other.get(url)  # its own CSRF cookie
    response = other.post(url, {"form_token": token, "quantity": 1})
    assert response.status_code == 400
    assert "This form had expired" in response.content.decode()
    assert not Reservation.objects.filter(resource=resource).exists()


def test_an_old_token_books_nothing(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    resource = ResourceFactory(capacity=5)
    url = reverse("bookings:resource", args=[resource.slug])
    token = form_token(client, url)
    monkeypatch.setattr(common, "FORM_TOKEN_MAX_AGE_SECONDS", -1)
    response = client.post(url, {"form_token": token, "quantity": 1})
    assert response.status_code == 400
    assert not Reservation.objects.filter(resource=resource).exists()


def test_a_token_fits_the_form_field(client: Client) -> None:
    from bookings.forms import HoldForm

    resource = ResourceFactory()
    token = form_token(client, reverse("bookings:resource", args=[resource.slug]))
    assert len(token) <= HoldForm.base_fields["form_token"].max_length  # type: ignore[attr-defined]
