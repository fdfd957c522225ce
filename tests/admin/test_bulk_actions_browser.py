"""Cancelling an event in a real headless Chromium: the confirmation page lists who is
emailed and who is not, refuses to go on without a reason, and the same page confirmed
again from a second tab changes nothing twice."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from bookings.models import OutboxMessage, ReservationEvent
from bookings.services import Actor, reservation_book, reservation_check_in
from resources.models import Resource, ResourceState
from tests.admin.browser import expect, log_in, save_screenshot
from tests.admin.conftest import PASSWORD
from tests.factories import ResourceFactory
from tests.web.conftest import browser_env, chromium, new_page, web_server

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

__all__ = ["browser_env", "chromium", "new_page", "web_server"]

CUSTOMER = Actor("customer")
REASON = "The singer has lost her voice; every ticket is refunded."


def open_confirmation(page: Any, resource: Resource) -> None:
    page.goto("/admin/resources/resource/")
    page.locator("#result_list tbody tr").filter(has_text=resource.name).locator(
        "input.action-select"
    ).check()
    page.locator("select[name=action]").select_option("cancel_events")
    page.get_by_role("button", name="Go", exact=True).click()
    expect(page.get_by_role("heading", name="Cancel events")).to_be_visible()


def test_cancel_an_event_from_two_tabs(new_page: Any, tmp_path: Path) -> None:
    get_user_model().objects.create_superuser("boss", "boss@example.com", PASSWORD)
    gala = ResourceFactory(
        name="Opera gala",
        venue="Grand Théâtre",
        capacity=40,
        starts_at=datetime(2031, 6, 20, 18, 0, tzinfo=UTC),
    )
    for name, email, quantity in [
        ("Ada Lovelace", "ada@example.com", 2),
        ("Grace Hopper", "grace@example.com", 4),
        ("Booked by phone", "", 3),
    ]:
        reservation_book(
            resource_id=gala.pk,
            quantity=quantity,
            actor=CUSTOMER,
            customer_name=name,
            customer_email=email,
        )
    door = reservation_book(
        resource_id=gala.pk,
        quantity=1,
        actor=CUSTOMER,
        customer_name="Joan Clarke",
        customer_email="joan@example.com",
    ).reservation
    reservation_check_in(reservation_id=door.pk, actor=Actor("staff", "door"))

    first, second = new_page(1280, 900), new_page(1280, 900)
    for page in (first, second):
        log_in(page)
        open_confirmation(page, gala)

    event = first.locator(f"#event-{gala.pk}")
    expect(event).to_contain_text("3 reservations will be cancelled, releasing 9 places.")
    expect(event.locator(".emailed")).to_contain_text("ada@example.com")
    expect(event.locator(".emailed")).to_contain_text("grace@example.com")
    expect(event.locator(".not-emailed")).to_contain_text("Booked by phone")
    expect(event.locator(".checked-in")).to_contain_text("Joan Clarke")
    save_screenshot(first, "staff-cancel-event", tmp_path)

    # No reason, no cancellation: the browser keeps the page and asks for one.
    first.get_by_role("button", name="Yes, cancel the events").click()
    expect(first.get_by_role("heading", name="Cancel events")).to_be_visible()
    gala.refresh_from_db()
    assert (gala.state, gala.confirmed) == (ResourceState.OPEN, 10)

    first.get_by_label("Reason").fill(REASON)
    first.get_by_role("button", name="Yes, cancel the events").click()
    expect(first.locator(".messagelist")).to_contain_text(
        "Opera gala cancelled: 3 reservations cancelled, 1 checked in stays booked."
    )

    # The second tab still shows the same confirmation; confirming it changes nothing.
    second.get_by_label("Reason").fill("Cancelled twice by mistake")
    second.get_by_role("button", name="Yes, cancel the events").click()
    expect(second.locator(".messagelist")).to_contain_text(
        "Opera gala was already cancelled: 0 reservations cancelled"
    )

    gala.refresh_from_db()
    assert (gala.state, gala.held, gala.confirmed) == (ResourceState.CANCELLED, 0, 1)
    reasons = ReservationEvent.objects.filter(to_status="cancelled").values_list(
        "reason", flat=True
    )
    assert list(reasons) == [REASON] * 3
    emailed = OutboxMessage.objects.filter(event_type="reservation.cancelled", channel="email")
    assert sorted(emailed.values_list("target", flat=True)) == [
        "ada@example.com",
        "grace@example.com",
    ]
