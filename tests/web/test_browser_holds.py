"""Holds seen from a real headless Chromium, on a phone and on a desktop: going back to an
event shows this browser's live hold, and maintenance pauses holding but keeps the hold."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bookings.models import Reservation, ReservationStatus
from settings_app.services import system_settings_update
from tests.factories import ResourceFactory, SeatedResourceFactory
from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.web.test_browser import expect, fill_details_and_confirm, seat
from tests.web.test_browser_seat_map import DESKTOP, PHONE, VIEWPORTS, book, save_screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def new_page_keeping_history(web_server: str, chromium: Any) -> Iterator[Callable[..., Any]]:
    """Like new_page, in a Chromium that keeps left pages in memory for the Back button, as
    browsers do (Playwright turns that cache off)."""
    browser = chromium.browser_type.launch(
        executable_path=CHROMIUM,
        args=CHROMIUM_ARGS,
        ignore_default_args=["--disable-back-forward-cache"],
    )

    def open_page(width: int, height: int) -> Any:
        context = browser.new_context(
            base_url=web_server, viewport={"width": width, "height": height}
        )
        context.set_default_timeout(10_000)
        return context.new_page()

    try:
        yield open_page
    finally:
        browser.close()


@VIEWPORTS
def test_going_back_to_the_event_shows_the_hold_with_its_seats_as_this_browsers(
    new_page_keeping_history: Callable[..., Any], viewport: dict[str, int], tmp_path: Path
) -> None:
    show = SeatedResourceFactory(
        name="Jazz at the Blue Room", seats__rows=["A", "B", "C", "D"], seats__per_row=10
    )
    book(show, "A4", "A5")
    book(show, "C2", hold=True)
    page = new_page_keeping_history(**viewport)
    page.goto(f"/r/{show.slug}/")
    seat(page, "B3").click()
    seat(page, "B4").click()
    page.get_by_role("button", name="Hold my places").click()
    expect(page.locator("[data-held-places]")).to_have_text("B3, B4")

    # The Back button: the page comes from the browser's memory, then afresh.
    page.go_back(wait_until="commit")
    expect(page.locator(".live-hold")).to_contain_text("You are holding 2 places.")
    expect(page.get_by_role("button", name="Hold my places")).to_have_count(0)
    expect(page.get_by_role("button", name="Release them")).to_be_visible()
    expect(page.locator(".legend")).to_contain_text("Held by you")
    expect(page.locator("[data-selection-summary]")).to_have_text("Held by you: B3, B4")
    # Its seats stay its own through the live updates, which show the others' as taken.
    page.wait_for_function("() => document.body.dataset.liveUpdatedAt")
    for label in ("B3", "B4"):
        expect(seat(page, label)).to_have_class(re.compile(r"\bseat--yours\b"))
        expect(
            page.get_by_role("checkbox", name=f"Row B, seat {label[1:]}, held by you")
        ).to_be_disabled()
    expect(seat(page, "C2")).to_have_class(re.compile(r"\bseat--held\b"))
    expect(seat(page, "A4")).to_have_class(re.compile(r"\bseat--booked\b"))
    if viewport == DESKTOP:
        save_screenshot(page, "live-hold", tmp_path)

    other = new_page_keeping_history(**viewport)
    other.goto(f"/r/{show.slug}/")
    expect(seat(other, "B3")).to_have_class(re.compile(r"\bseat--held\b"))
    expect(other.locator(".live-hold")).to_have_count(0)

    page.get_by_role("link", name="Continue to checkout").click()
    expect(page.locator("[data-held-places]")).to_have_text("B3, B4")
    held = Reservation.objects.get(reference=page.url.strip("/").split("/")[-1])
    assert held.status == ReservationStatus.HELD

    page.go_back(wait_until="commit")
    page.get_by_role("button", name="Release them").click()
    expect(page.locator(".messages")).to_contain_text("Your hold was released.")
    expect(page.get_by_role("button", name="Hold my places")).to_be_enabled()
    expect(seat(page, "B3")).to_have_class(re.compile(r"\bseat--available\b"))
    held.refresh_from_db()
    assert held.status == ReservationStatus.CANCELLED


@VIEWPORTS
def test_maintenance_pauses_holding_and_the_checkout_keeps_the_places(
    new_page: Any, viewport: dict[str, int], tmp_path: Path
) -> None:
    workshop = ResourceFactory(name="Fresh pasta workshop", capacity=8)
    customer = new_page(**viewport)
    customer.goto(f"/r/{workshop.slug}/")
    customer.get_by_label("Number of places").fill("2")
    customer.get_by_role("button", name="Hold my places").click()
    expect(customer.get_by_role("timer")).to_be_visible()

    system_settings_update(maintenance_mode=True)
    customer.reload()
    notice = customer.locator(".maintenance-hold")
    expect(notice).to_contain_text("Down for maintenance")
    expect(notice).to_contain_text("Your places stay held")
    expect(customer.get_by_role("button", name="Confirm booking")).to_be_disabled()
    expect(customer.get_by_role("timer")).to_have_count(0)
    if viewport == PHONE:
        customer.get_by_label("Your name").fill("Léa Dupont")
        customer.get_by_label("Your name").blur()
        save_screenshot(customer, "maintenance-checkout", tmp_path)

    visitor = new_page(**viewport)
    visitor.goto(f"/r/{workshop.slug}/")
    expect(visitor.get_by_role("status")).to_contain_text("Bookings are paused for maintenance.")
    hold = visitor.get_by_role("button", name="Hold my places")
    expect(hold).to_be_disabled()
    expect(hold).to_have_accessible_description(re.compile("paused for maintenance"))

    system_settings_update(maintenance_mode=False)
    customer.reload()
    expect(customer.get_by_role("timer")).to_be_visible()
    reference = fill_details_and_confirm(customer)
    assert Reservation.objects.get(reference=reference).status == ReservationStatus.CONFIRMED
    visitor.reload()
    expect(visitor.get_by_role("button", name="Hold my places")).to_be_enabled()
