"""A house block reads "Blocked" wherever staff read a reservation's status: the list, the
detail page and its history, the CSV export, the pages that ask before a change."""

from __future__ import annotations

import csv
import io
import re

import pytest
from django.test import Client

from bookings.models import Reservation
from bookings.services import Actor, reservation_book, reservation_cancel
from tests.factories import ResourceFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/bookings/reservation/"
STAFF = Actor("staff", "sam")


def block(quantity: int = 2) -> Reservation:
    resource = ResourceFactory(capacity=10)
    return reservation_book(
        resource_id=resource.pk, quantity=quantity, actor=STAFF, block=True, note="Press"
    ).reservation


def shown(html: str, field: str) -> list[str]:
    """The texts of the table cells of `field` on an admin page."""
    cells = re.findall(rf'<td class="field-{field}[^"]*">(.*?)</td>', html, re.S)
    return [re.sub(r"<[^>]+>", "", cell).strip() for cell in cells]


def detail_status(client: Client, reservation: Reservation) -> str:
    response = client.get(f"{CHANGELIST}{reservation.pk}/change/")
    assert response.status_code == 200
    (status,) = [
        str(field.contents())
        for fieldset in response.context["adminform"]
        for line in fieldset
        for field in line
        if str(field.field["label"]) == "status"
    ]
    return status


def history(client: Client, reservation: Reservation) -> list[tuple[str, str]]:
    html = client.get(f"{CHANGELIST}{reservation.pk}/change/").content.decode()
    return list(zip(shown(html, "from_status_shown"), shown(html, "to_status_shown"), strict=True))


def test_a_held_block_reads_blocked_on_its_page_and_in_its_history(
    superuser_client: Client,
) -> None:
    reservation = block()
    assert detail_status(superuser_client, reservation) == "Blocked"
    assert history(superuser_client, reservation) == [("-", "Blocked")]


def test_a_released_block_reads_cancelled_and_its_history_says_from_blocked(
    superuser_client: Client,
) -> None:
    reservation = block()
    reservation_cancel(reservation_id=reservation.pk, actor=STAFF)
    assert detail_status(superuser_client, reservation) == "Cancelled"
    assert history(superuser_client, reservation) == [("-", "Blocked"), ("Blocked", "Cancelled")]


def test_a_customer_hold_still_reads_held(superuser_client: Client) -> None:
    resource = ResourceFactory(capacity=10)
    hold = reservation_book(
        resource_id=resource.pk, quantity=1, hold=True, actor=Actor("customer")
    ).reservation
    assert detail_status(superuser_client, hold) == "Held"
    assert history(superuser_client, hold) == [("-", "Held")]


def test_the_csv_export_says_blocked(superuser_client: Client) -> None:
    reservation = block()
    hold = reservation_book(
        resource_id=reservation.resource_id, quantity=1, hold=True, actor=Actor("customer")
    ).reservation
    response = superuser_client.get(f"{CHANGELIST}export.csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    statuses = {row["reference"]: row["status"] for row in rows}
    assert statuses == {reservation.reference: "blocked", hold.reference: "held"}


def test_the_cancel_confirmation_lists_a_block_as_blocked(superuser_client: Client) -> None:
    reservation = block()
    page = superuser_client.post(
        CHANGELIST, {"action": "cancel_reservations", "_selected_action": [reservation.pk]}
    ).content.decode()
    assert "<td>Blocked</td>" in page
    assert "<td>Held</td>" not in page


def test_blocked_reads_in_the_staff_language(superuser_client: Client) -> None:
    reservation = block()
    superuser_client.cookies["django_language"] = "fr"
    html = superuser_client.get(
        f"{CHANGELIST}{reservation.pk}/change/", HTTP_ACCEPT_LANGUAGE="fr"
    ).content.decode()
    assert "Bloquée" in html


def test_confirming_a_block_says_it_is_a_block_not_a_hold(superuser_client: Client) -> None:
    reservation = block()
    hold = reservation_book(
        resource_id=reservation.resource_id, quantity=1, hold=True, actor=Actor("customer")
    ).reservation
    response = superuser_client.post(
        CHANGELIST,
        {"action": "confirm_reservations", "_selected_action": [reservation.pk, hold.pk]},
        follow=True,
    )
    assert [str(m) for m in response.context["messages"]] == [
        "1 confirmed, 1 is a house block and is never confirmed."
    ]
    reservation.refresh_from_db()
    assert (reservation.status, reservation.blocked) == ("held", True)
