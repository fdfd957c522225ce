"""The manage link's token is traded for the session on its first visit: the pages after it
have bare addresses, and the session keeps the token's hash, never the token."""

from __future__ import annotations

import pytest
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse

from bookings.models import OutboxMessage, Reservation, ReservationEvent, ReservationStatus
from bookings.services import Actor, manage_token_hash, reservation_book, reservation_check_in
from tests.conftest import CUSTOMER
from tests.factories import ResourceFactory

pytestmark = pytest.mark.django_db


def booked() -> tuple[str, str]:
    booking = reservation_book(
        resource_id=ResourceFactory(capacity=5).pk,
        actor=CUSTOMER,
        quantity=2,
        customer_name="Ada",
        customer_email="ada@example.com",
    )
    return booking.reservation.reference, booking.manage_token


def session_data(client: Client) -> str:
    key = client.cookies["sessionid"].value
    return str(Session.objects.get(session_key=key).session_data)


def test_the_first_visit_redirects_to_the_bare_address(client: Client) -> None:
    reference, token = booked()
    manage = reverse("bookings:manage", args=[reference])

    response = client.get(manage, {"token": token})

    assert response.status_code == 302
    assert response["Location"] == manage
    page = client.get(manage)
    assert page.status_code == 200
    html = page.content.decode()
    assert reference in html and "Cancel this booking" in html
    assert token not in html
    assert "token=" not in html  # the cancel link is bare too


def test_the_session_keeps_the_hash_not_the_token(client: Client) -> None:
    reference, token = booked()
    client.get(reverse("bookings:manage", args=[reference]), {"token": token})
    data = Session.objects.get(session_key=client.cookies["sessionid"].value).get_decoded()
    assert data["reservo_managed"] == {reference: manage_token_hash(token)}
    assert token not in session_data(client)


def test_another_browser_without_the_token_gets_404(client: Client) -> None:
    reference, token = booked()
    client.get(reverse("bookings:manage", args=[reference]), {"token": token})
    assert Client().get(reverse("bookings:manage", args=[reference])).status_code == 404
    cancel = reverse("bookings:cancel", args=[reference])
    assert Client().post(cancel).status_code == 404


def test_a_wrong_token_is_404_and_remembers_nothing(client: Client) -> None:
    reference, _token = booked()
    response = client.get(reverse("bookings:manage", args=[reference]), {"token": "guess"})
    assert response.status_code == 404
    assert "sessionid" not in client.cookies


def test_cancel_from_the_bare_pages(client: Client) -> None:
    reference, token = booked()
    cancel = reverse("bookings:cancel", args=[reference])
    # A cancel link with the token (as an old page had it) is traded in the same way.
    response = client.get(cancel, {"token": token})
    assert (response.status_code, response["Location"]) == (302, cancel)
    page = client.get(cancel).content.decode()
    assert "Yes, cancel my booking" in page
    assert token not in page

    response = client.post(cancel, follow=True)

    assert response.redirect_chain == [(reverse("bookings:manage", args=[reference]), 302)]
    assert "is cancelled" in response.content.decode()
    assert Reservation.objects.get(reference=reference).status == ReservationStatus.CANCELLED


def test_a_checked_in_booking_offers_no_cancel(client: Client) -> None:
    reference, token = booked()
    reservation = Reservation.objects.get(reference=reference)
    reservation_check_in(reservation_id=reservation.pk, actor=Actor("staff", "door"))
    manage = reverse("bookings:manage", args=[reference])
    cancel = reverse("bookings:cancel", args=[reference])

    page = client.get(manage, {"token": token}, follow=True).content.decode()
    assert "Checked in on" in page
    assert "Cancel this booking" not in page and cancel not in page

    # The cancel page (a bookmarked link) sends back to the booking, saying why.
    response = client.get(cancel, follow=True)
    assert response.redirect_chain == [(manage, 302)]
    html = response.content.decode()
    assert "This booking is checked in; it can no longer be cancelled." in html
    assert "Yes, cancel my booking" not in html

    # The cancel form from a tab opened before the check-in: a message, not an error page.
    for data in ({}, {"token": token}):
        response = client.post(cancel, data, follow=True)
        assert response.status_code == 200
        assert response.redirect_chain == [(manage, 302)]
        html = response.content.decode()
        assert "This booking is checked in; it can no longer be cancelled." in html
        assert "Cancel this booking" not in html

    reservation.refresh_from_db()
    assert reservation.status == ReservationStatus.CONFIRMED
    assert reservation.checked_in_at is not None
    assert not ReservationEvent.objects.filter(to_status=ReservationStatus.CANCELLED).exists()
    assert not OutboxMessage.objects.filter(event_type="reservation.cancelled").exists()
