"""The resources admin shows how many places have checked in, per event."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from bookings.services import Actor, reservation_book, reservation_cancel, reservation_check_in
from resources.models import Resource
from tests.factories import ResourceFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/resources/resource/"
CUSTOMER = Actor("customer")
DOOR = Actor("staff", "Sam")


def book(resource: Resource, quantity: int, *, check_in: bool = False) -> int:
    reservation = reservation_book(
        resource_id=resource.pk, quantity=quantity, actor=CUSTOMER
    ).reservation
    if check_in:
        reservation_check_in(reservation_id=reservation.pk, actor=DOOR)
    return reservation.pk


def test_the_list_counts_checked_in_places_per_event(superuser_client: Client) -> None:
    gala, meetup = (
        ResourceFactory(name="Gala", capacity=20),
        ResourceFactory(name="Meetup", capacity=20),
    )
    ResourceFactory(name="Quiet night", capacity=20)
    book(gala, 3, check_in=True)
    book(gala, 2, check_in=True)
    book(gala, 4)
    book(meetup, 1, check_in=True)
    reservation_cancel(reservation_id=book(meetup, 5), actor=CUSTOMER)
    reservation_book(resource_id=meetup.pk, quantity=2, hold=True, actor=CUSTOMER)

    response = superuser_client.get(CHANGELIST)

    assert response.status_code == 200
    changelist = response.context["cl"]
    checked_in = {
        row.name: changelist.model_admin.checked_in(row) for row in changelist.result_list
    }
    assert checked_in == {"Gala": 5, "Meetup": 1, "Quiet night": 0}
    html = response.content.decode()
    assert "Checked in" in html
    assert '<td class="field-checked_in">5</td>' in html
    # Sortable by the count (the ninth column).
    for order, names in (
        ("9", ["Quiet night", "Meetup", "Gala"]),
        ("-9", ["Gala", "Meetup", "Quiet night"]),
    ):
        ordered = superuser_client.get(CHANGELIST, {"o": order})
        assert [row.name for row in ordered.context["cl"].result_list] == names


def test_the_count_costs_no_query_per_row(superuser_client: Client) -> None:
    book(ResourceFactory(), 1, check_in=True)
    with CaptureQueriesContext(connection) as few:
        assert superuser_client.get(CHANGELIST).status_code == 200
    for resource in ResourceFactory.create_batch(15):
        book(resource, 1, check_in=True)
    with CaptureQueriesContext(connection) as many:
        assert superuser_client.get(CHANGELIST).status_code == 200
    assert len(many) == len(few)


def test_the_change_page_shows_the_count(superuser_client: Client) -> None:
    gala = ResourceFactory(name="Gala", capacity=20)
    book(gala, 3, check_in=True)
    page = superuser_client.get(f"{CHANGELIST}{gala.pk}/change/").content.decode()
    assert re.search(r"Checked in:</label>\s*<div class=\"readonly\">3</div>", page)
