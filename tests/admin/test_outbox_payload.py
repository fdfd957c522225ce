"""The outbox page shows a message's payload without the customer's manage token."""

from __future__ import annotations

from django.test import Client
from django.urls import reverse

from bookings.models import OutboxMessage
from bookings.services import reservation_book
from tests.conftest import CUSTOMER
from tests.factories import ResourceFactory


def test_the_outbox_page_hides_the_manage_token(superuser_client: Client) -> None:
    booking = reservation_book(
        resource_id=ResourceFactory().pk,
        actor=CUSTOMER,
        quantity=1,
        customer_name="Ada",
        customer_email="ada@example.com",
    )
    message = OutboxMessage.objects.get(reservation=booking.reservation, channel="email")
    assert message.payload["manage_token"] == booking.manage_token  # until it is sent

    page = superuser_client.get(
        reverse("admin:bookings_outboxmessage_change", args=[message.pk])
    ).content.decode()

    assert booking.manage_token not in page
    assert "&quot;manage_token&quot;: &quot;(hidden)&quot;" in page
    assert booking.reservation.reference in page  # the rest of the payload is shown
