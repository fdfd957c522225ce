"""One live hold per browser and resource: going back to the event page shows the hold
(its seats as this browser's own) and leads to its checkout instead of holding again."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from bookings.models import Reservation, ReservationStatus
from bookings.views import common
from tests.conftest import run_concurrently
from tests.factories import ResourceFactory, SeatedResourceFactory
from tests.web.conftest import form_token

pytestmark = pytest.mark.django_db


def hold(client: Client, url: str, **data: object) -> str:
    response = client.post(url, {"form_token": form_token(client, url), **data})
    assert response.status_code == 302, response.content.decode()[:500]
    return str(response["Location"])


def test_going_back_shows_the_hold_and_holding_again_leads_to_it(client: Client) -> None:
    resource = ResourceFactory(capacity=10)
    url = reverse("bookings:resource", args=[resource.slug])
    checkout = hold(client, url, quantity="2")

    page = client.get(url).content.decode()
    assert "You are holding 2 places." in page
    assert f'href="{checkout}"' in page
    assert "Hold my places" not in page

    assert hold(client, url, quantity="3") == checkout
    assert Reservation.objects.filter(resource=resource).count() == 1


def test_a_released_or_expired_hold_lets_the_browser_hold_again(client: Client) -> None:
    resource = ResourceFactory(capacity=10)
    url = reverse("bookings:resource", args=[resource.slug])
    first = hold(client, url, quantity="1")
    reference = first.strip("/").split("/")[-1]
    client.post(reverse("bookings:release", args=[reference]))
    assert Reservation.objects.get(reference=reference).status == ReservationStatus.CANCELLED

    second = hold(client, url, quantity="1")
    assert second != first
    page = client.get(url).content.decode()
    assert "You are holding 1 place." in page


def test_another_browser_holds_separately(client: Client) -> None:
    resource = ResourceFactory(capacity=10)
    url = reverse("bookings:resource", args=[resource.slug])
    hold(client, url, quantity="1")
    hold(Client(), url, quantity="1")
    assert Reservation.objects.filter(resource=resource).count() == 2


@pytest.mark.django_db(transaction=True)  # the seat map's cache is invalidated on commit
def test_the_held_seats_show_as_this_browsers_own(client: Client) -> None:
    resource = SeatedResourceFactory()
    url = reverse("bookings:resource", args=[resource.slug])
    seats = dict(resource.seats.values_list("label", "id"))
    hold(client, url, seats=[seats["A1"], seats["A2"]])

    mine = client.get(url).content.decode()
    assert mine.count('class="seat seat--yours"') == 2
    assert "held by you" in mine and "Held by you" in mine
    theirs = Client().get(url).content.decode()
    assert "seat--yours" not in theirs
    assert theirs.count('class="seat seat--held"') == 2


@pytest.mark.django_db(transaction=True)
def test_two_tabs_holding_at_once_hold_once() -> None:
    resource = ResourceFactory(capacity=10)
    url = reverse("bookings:resource", args=[resource.slug])
    tabs = [Client() for _ in range(4)]
    tokens = [form_token(tabs[0], url) for _ in tabs]
    for tab in tabs[1:]:
        tab.cookies = tabs[0].cookies  # one browser, four tabs

    responses = run_concurrently(
        4, lambda i: tabs[i].post(url, {"form_token": tokens[i], "quantity": 1})
    )

    assert [r.status_code for r in responses] == [302] * 4
    assert len({r["Location"] for r in responses}) == 1
    assert Reservation.objects.filter(resource=resource).count() == 1


@pytest.mark.django_db(transaction=True)
def test_negative_control_without_the_rule_two_tabs_hold_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(common, "_live_hold", lambda request, resource: None)
    resource = ResourceFactory(capacity=10)
    url = reverse("bookings:resource", args=[resource.slug])
    tabs = [Client() for _ in range(4)]
    tokens = [form_token(tabs[0], url) for _ in tabs]
    for tab in tabs[1:]:
        tab.cookies = tabs[0].cookies

    run_concurrently(4, lambda i: tabs[i].post(url, {"form_token": tokens[i], "quantity": 1}))

    assert Reservation.objects.filter(resource=resource).count() == 4
