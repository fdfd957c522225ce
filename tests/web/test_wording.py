"""What the pages and emails say: the hold duration as configured, an expired checkout's
heading, a cancelled event, who cancelled, and plain-text emails without stray blank lines."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.db.models.functions import Now
from django.test import Client
from django.urls import reverse

from bookings.models import Reservation
from bookings.services import Actor, reservation_book, reservation_cancel
from resources.models import ResourceState
from settings_app.models import SystemSettings
from tests.conftest import outbox_email
from tests.factories import ResourceFactory
from tests.web.conftest import form_token

CUSTOMER = Actor("customer")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("seconds", "said"),
    [(20, "20 seconds"), (60, "1 minute"), (600, "10 minutes"), (90, "1 minute 30 seconds")],
)
def test_the_hold_duration_is_said_as_configured(client: Client, seconds: int, said: str) -> None:
    SystemSettings.objects.update(hold_ttl_seconds=seconds)
    resource = ResourceFactory()
    page = client.get(reverse("bookings:resource", args=[resource.slug])).content.decode()
    assert f"We hold your places for {said} while" in page


@pytest.mark.django_db
def test_a_cancelled_event_says_so_and_shows_no_places_left(client: Client) -> None:
    resource = ResourceFactory(capacity=3, state=ResourceState.CANCELLED)
    page = client.get(reverse("bookings:resource", args=[resource.slug])).content.decode()
    assert "This event was cancelled." in page
    assert "3 left" not in page
    assert "Hold my places" not in page


def cancellation_email(actor: Actor) -> str:
    resource = ResourceFactory()
    booking = reservation_book(
        resource_id=resource.pk, quantity=1, actor=CUSTOMER, customer_email="ada@example.com"
    )
    reservation_cancel(reservation_id=booking.reservation.pk, actor=actor)
    return str(outbox_email(booking.reservation, "reservation.cancelled").body)


@pytest.mark.django_db
def test_the_cancellation_email_says_who_cancelled_and_has_no_stray_blank_lines() -> None:
    by_staff = cancellation_email(Actor("staff", "sam"))
    assert "The organiser cancelled your booking" in by_staff
    assert "\n\n\n" not in by_staff
    by_customer = cancellation_email(CUSTOMER)
    assert "You cancelled your booking" in by_customer
    assert mail.outbox == []  # nothing sent: the bodies were only rendered


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_an_expired_checkout_says_so_in_its_heading(new_page: Any) -> None:
    from playwright.sync_api import expect

    resource = ResourceFactory(name="Short hold")
    page = new_page()
    page.goto(f"/r/{resource.slug}/")
    page.get_by_role("button", name="Hold my places").click()
    expect(page.get_by_role("heading", name="Almost done: your details")).to_be_visible()
    Reservation.objects.update(hold_expires_at=Now() + timedelta(seconds=2))
    page.reload()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your hold has expired", timeout=8000)
    expect(page.get_by_role("button", name="Confirm booking")).to_be_disabled()


@pytest.mark.django_db
def test_the_checkout_heading_carries_its_expired_wording(client: Client) -> None:
    resource = ResourceFactory()
    url = reverse("bookings:resource", args=[resource.slug])
    checkout = client.post(url, {"form_token": form_token(client, url), "quantity": "1"})
    page = client.get(checkout["Location"]).content.decode()
    assert 'data-expired-heading="Your hold has expired"' in page
