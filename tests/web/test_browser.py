"""The booking pages in a real headless Chromium: what customers see and do."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from bookings.models import Reservation, ReservationStatus
from bookings.services import Actor, reservation_book
from tests.factories import ResourceFactory, SeatedResourceFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CUSTOMER = Actor("customer")
LIVE_DEADLINE_MS = 3000


def expect(target: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


def seat(page: Any, label: str) -> Any:
    return page.locator(f'label.seat[data-seat-label="{label}"]')


def seat_id(resource: Any, label: str) -> int:
    return int(resource.seats.get(label=label).pk)


def fill_details_and_confirm(page: Any, name: str = "Ada Lovelace") -> str:
    page.get_by_label("Your name").fill(name)
    page.get_by_label("Email address").fill("ada@example.com")
    page.get_by_role("button", name="Confirm booking").click()
    expect(page.get_by_role("heading", name="You're booked!")).to_be_visible()
    return str(page.locator(".success-banner .reference").inner_text())


def test_book_by_quantity_end_to_end(new_page: Any) -> None:
    resource = ResourceFactory(name="Friday meetup", capacity=10, max_per_booking=4)
    page = new_page()
    page.goto("/")
    page.get_by_role("link", name="Friday meetup", exact=True).click()
    expect(page.get_by_role("heading", name="Friday meetup")).to_be_visible()

    page.get_by_label("Number of places").fill("2")
    page.get_by_role("button", name="Hold my places").click()

    expect(page.get_by_role("heading", name=re.compile("your details"))).to_be_visible()
    expect(page.locator("[data-held-places]")).to_have_text("2 places")
    expect(page.get_by_role("timer")).to_have_text(re.compile(r"^(9|10):\d\d$"))
    reference = fill_details_and_confirm(page)

    reservation = Reservation.objects.get(reference=reference)
    assert reservation.status == ReservationStatus.CONFIRMED
    assert (reservation.resource_id, reservation.quantity) == (resource.pk, 2)
    assert reservation.customer_email == "ada@example.com"


def test_pick_seats_hold_countdown_confirm(new_page: Any) -> None:
    resource = SeatedResourceFactory(name="Opera night", seats__rows=["A", "B"], seats__per_row=6)
    page = new_page()
    page.goto(f"/r/{resource.slug}/")

    seat(page, "B2").click()
    # Keyboard: Tab reaches a seat, Space picks it.
    page.locator(f"#seat-{seat_id(resource, 'B3')}").focus()
    page.keyboard.press("Space")
    expect(page.locator("[data-selection-summary]")).to_have_text("Your choice: B2, B3")
    page.get_by_role("button", name="Hold my places").click()

    expect(page.locator("[data-held-places]")).to_have_text("B2, B3")
    timer = page.get_by_role("timer")
    expect(timer).to_have_text(re.compile(r"^(9|10):\d\d$"))
    first = timer.inner_text()
    expect(timer).not_to_have_text(first, timeout=3000)  # it counts down
    reference = fill_details_and_confirm(page, name="Grace Hopper")

    expect(page.locator(".summary")).to_contain_text("B2, B3")
    expect(page.locator("[data-manage-link]")).to_have_attribute(
        "href", re.compile(rf"/b/{reference}/\?token=.+")
    )
    reservation = Reservation.objects.get(reference=reference)
    assert reservation.status == ReservationStatus.CONFIRMED
    assert sorted(reservation.seat_links.values_list("seat__label", flat=True)) == ["B2", "B3"]


def test_two_customers_race_for_one_seat(new_page: Any) -> None:
    resource = SeatedResourceFactory(seats__rows=["A"], seats__per_row=6)
    pages = [new_page(), new_page()]
    for page in pages:
        # Neither customer's page learns about the other before submitting.
        page.route("**/live/**", lambda route: route.abort())
        page.goto(f"/r/{resource.slug}/")
    seat(pages[0], "A3").click()
    seat(pages[1], "A3").click()
    seat(pages[1], "A4").click()

    for page in pages:
        page.evaluate(
            "() => setTimeout(() => document.querySelector('form.booking-form').requestSubmit())"
        )
    for page in pages:
        page.locator("[data-conflict], [data-countdown]").first.wait_for()

    winners = [p for p in pages if p.locator("[data-countdown]").count()]
    losers = [p for p in pages if p.locator("[data-conflict]").count()]
    assert len(winners) == 1 and len(losers) == 1
    loser = losers[0]
    expect(loser.locator("[data-conflict]")).to_contain_text("seat A3 was just taken")
    expect(seat(loser, "A3")).to_have_class(re.compile(r"seat--held"))
    expect(loser.locator(f"#seat-{seat_id(resource, 'A3')}")).to_be_disabled()
    if loser is pages[1]:
        expect(loser.locator(f"#seat-{seat_id(resource, 'A4')}")).to_be_checked()
    held = Reservation.objects.filter(resource=resource, status=ReservationStatus.HELD)
    assert held.count() == 1


def test_manage_link_cancels(new_page: Any) -> None:
    resource = ResourceFactory(name="Pottery class", capacity=5)
    booking = reservation_book(
        resource_id=resource.pk,
        actor=CUSTOMER,
        quantity=2,
        customer_name="Ada",
        customer_email="ada@example.com",
    )
    reference = booking.reservation.reference
    page = new_page()
    page.goto(f"/b/{reference}/?token={booking.manage_token}")
    expect(page.locator(".summary")).to_contain_text("Confirmed")

    page.get_by_role("link", name="Cancel this booking").click()
    expect(page.get_by_role("heading", name="Cancel this booking?")).to_be_visible()
    page.get_by_role("button", name="Yes, cancel my booking").click()

    expect(page.locator(".notice--success")).to_contain_text(f"{reference} is cancelled")
    expect(page.locator(".summary")).to_contain_text("Cancelled")
    booking.reservation.refresh_from_db()
    assert booking.reservation.status == ReservationStatus.CANCELLED


def test_seat_map_and_places_left_follow_another_customers_booking(new_page: Any) -> None:
    resource = SeatedResourceFactory(seats__rows=["A"], seats__per_row=5)
    page = new_page()
    page.goto(f"/r/{resource.slug}/")
    expect(page.locator(".resource [data-availability]")).to_have_text("5 left")
    expect(seat(page, "A2")).to_have_class(re.compile("seat--available"))
    home = new_page()
    home.goto("/")
    expect(home.locator("[data-availability]")).to_have_text("5 left")

    reservation_book(resource_id=resource.pk, actor=CUSTOMER, seat_ids=[seat_id(resource, "A2")])

    expect(seat(page, "A2")).to_have_class(re.compile("seat--booked"), timeout=LIVE_DEADLINE_MS)
    expect(page.locator(f"#seat-{seat_id(resource, 'A2')}")).to_be_disabled()
    expect(page.locator(".resource [data-availability]")).to_have_text(
        "4 left", timeout=LIVE_DEADLINE_MS
    )
    expect(home.locator("[data-availability]")).to_have_text("4 left", timeout=LIVE_DEADLINE_MS)


NO_HORIZONTAL_SCROLL = "document.documentElement.scrollWidth <= window.innerWidth"


def test_phone_layout_has_no_horizontal_scroll(new_page: Any) -> None:
    seated = SeatedResourceFactory(
        name="A long event name that keeps going to test wrapping on small screens",
        seats__rows=["A", "B", "C"],
        seats__per_row=12,
    )
    ResourceFactory(name="Walking tour", capacity=8)
    page = new_page(width=360, height=740)
    for url in ("/", f"/r/{seated.slug}/"):
        page.goto(url)
        assert page.evaluate(NO_HORIZONTAL_SCROLL), url
    seat(page, "C12").click()
    page.get_by_role("button", name="Hold my places").click()
    expect(page.get_by_role("timer")).to_be_visible()
    assert page.evaluate(NO_HORIZONTAL_SCROLL), "checkout"
    fill_details_and_confirm(page)
    assert page.evaluate(NO_HORIZONTAL_SCROLL), "confirmation"


def test_screenshots(new_page: Any, tmp_path: Path) -> None:
    """Home, seat map, checkout, confirmation and conflict, saved for the README.

    RESERVO_SCREENSHOT_DIR=docs/screenshots writes them into the docs.
    """
    import os
    from datetime import timedelta

    from django.utils import timezone

    target = Path(os.environ.get("RESERVO_SCREENSHOT_DIR") or tmp_path)
    target.mkdir(parents=True, exist_ok=True)
    evening = timezone.localtime().replace(hour=19, minute=30, second=0, microsecond=0)
    show = SeatedResourceFactory(
        name="Jazz at the Blue Room",
        venue="Blue Room, 12 rue des Lilas",
        description="An evening of standards and new songs by the Léa Martin Quartet.",
        starts_at=evening + timedelta(days=3),
        seats__rows=["A", "B", "C", "D"],
        seats__per_row=10,
    )
    meetup = ResourceFactory(
        name="Python meetup", venue="Station F", capacity=40, starts_at=evening + timedelta(days=1)
    )
    pasta = ResourceFactory(
        name="Fresh pasta workshop", capacity=2, starts_at=evening + timedelta(days=6, hours=-9)
    )
    reservation_book(resource_id=meetup.pk, actor=CUSTOMER, quantity=9)
    reservation_book(resource_id=pasta.pk, actor=CUSTOMER, quantity=2)
    taken = ["A4", "A5", "B5", "B6", "C2"]
    reservation_book(
        resource_id=show.pk, actor=CUSTOMER, seat_ids=[seat_id(show, s) for s in taken]
    )
    reservation_book(
        resource_id=show.pk,
        actor=CUSTOMER,
        seat_ids=[seat_id(show, s) for s in ("D1", "D2")],
        hold=True,
    )

    def shoot(page: Any, name: str) -> None:
        path = target / f"{name}.png"
        page.screenshot(path=str(path), full_page=True, animations="disabled")
        assert path.stat().st_size > 5000

    page = new_page(width=900, height=700)
    page.goto("/")
    shoot(page, "home")
    page.goto(f"/r/{show.slug}/")
    seat(page, "B3").click()
    seat(page, "B4").click()
    shoot(page, "seat-map")
    page.get_by_role("button", name="Hold my places").click()
    expect(page.get_by_role("timer")).to_have_text(re.compile(r"\d:\d\d"))
    page.get_by_label("Your name").fill("Léa Dupont")
    page.get_by_label("Email address").fill("lea@example.com")
    shoot(page, "checkout")
    page.get_by_role("button", name="Confirm booking").click()
    expect(page.get_by_role("heading", name="You're booked!")).to_be_visible()
    shoot(page, "confirmation")

    other = new_page(width=900, height=700)
    other.route("**/live/**", lambda route: route.abort())
    other.goto(f"/r/{show.slug}/")
    seat(other, "C5").click()
    seat(other, "C6").click()
    reservation_book(resource_id=show.pk, actor=CUSTOMER, seat_ids=[seat_id(show, "C6")])
    other.get_by_role("button", name="Hold my places").click()
    expect(other.locator("[data-conflict]")).to_be_visible()
    shoot(other, "conflict")
