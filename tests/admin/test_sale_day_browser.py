"""A sale day in the back office, in a real headless Chromium, as staff walk it: the
dashboard shows tonight's show, a booking taken on the phone on the seat map, moved to
other seats, two seats blocked for the house, another customer's booking cancelled with a
reason, and the phone booking checked in at the door, once.

Each step asserts what staff see and what the database holds; the screenshots go into
RESERVO_SCREENSHOT_DIR for the README.
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from bookings.models import (
    Reservation,
    ReservationEvent,
    ReservationSeat,
    ReservationStatus,
)
from bookings.services import Actor, check_in_code, reservation_book
from tests.admin.browser import expect, log_in, save_screenshot, seat, seat_ids
from tests.admin.conftest import PASSWORD
from tests.conftest import outbox_email
from tests.factories import SeatedResourceFactory
from tests.web.conftest import browser_env, chromium, new_page, web_server

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

__all__ = ["browser_env", "chromium", "new_page", "web_server"]

CUSTOMER = Actor("customer")
REASON = "The front rows are taken out for the orchestra; we refund your tickets in full."


def tonight() -> datetime:
    """Eight in the evening, local time, today; or in an hour if that has passed."""
    now = timezone.localtime()
    evening = timezone.make_aware(datetime.combine(now.date(), time(20, 0)))
    return max(evening, now + timedelta(hours=1))


def seats_of(reservation: Reservation) -> list[str]:
    return sorted(
        ReservationSeat.objects.filter(reservation=reservation, active=True).values_list(
            "seat__label", flat=True
        )
    )


def history(reservation: Reservation) -> list[tuple[str, str, str, str]]:
    return list(
        ReservationEvent.objects.filter(reservation=reservation)
        .order_by("id")
        .values_list("actor", "from_status", "to_status", "reason")
    )


def test_staff_walk_a_sale_day(new_page: Any, tmp_path: Path) -> None:
    get_user_model().objects.create_superuser("boss", "boss@example.com", PASSWORD)
    show = SeatedResourceFactory(
        name="Jazz at the Blue Room",
        venue="Blue Room, 12 rue des Lilas",
        starts_at=tonight(),
        seats__rows=["A", "B", "C", "D"],
        seats__per_row=8,
    )
    # Booked on the public pages before the day began.
    grace = reservation_book(
        resource_id=show.pk,
        actor=CUSTOMER,
        seat_ids=seat_ids(show, "A4", "A5"),
        customer_name="Grace Hopper",
        customer_email="grace@example.com",
    ).reservation
    reservation_book(
        resource_id=show.pk,
        actor=CUSTOMER,
        seat_ids=seat_ids(show, "D1", "D2", "D3"),
        customer_name="Alan Turing",
        customer_email="alan@example.com",
    )

    # 1. The dashboard: tonight's show, with its places.
    staff = new_page(1280, 900)
    log_in(staff)
    expect(staff.get_by_role("heading", name="Dashboard")).to_be_visible()
    row = staff.locator("tr.reservo-event").filter(has_text="Jazz at the Blue Room")
    expect(row).to_contain_text("5 confirmed")
    expect(row).to_contain_text("0 held")
    expect(row).to_contain_text("27 free")
    expect(row.get_by_role("img")).to_have_attribute(
        "aria-label", "5 confirmed, 0 held, 27 free of 32"
    )
    # The dashboard's image for the README is the richer one of test_dashboard_browser.
    staff.screenshot(path=str(tmp_path / "sale-day-dashboard.png"), full_page=True)

    # 2. A booking on the phone: from the show's page, two seats on the seat map.
    row.get_by_role("link", name="Jazz at the Blue Room").click()
    staff.locator("a.new-booking-link").click()
    expect(staff.get_by_role("heading", name="New booking: Jazz at the Blue Room")).to_be_visible()
    expect(seat(staff, "A4")).to_have_class(re.compile("seat--booked"))
    seat(staff, "B3").click()
    seat(staff, "B4").click()
    expect(staff.locator("[data-selection-summary]")).to_have_text("Chosen: B3, B4")
    staff.get_by_label("Customer name").fill("Ada Lovelace")
    staff.get_by_label("Email:", exact=True).fill("ada@example.com")
    staff.get_by_label("Phone:", exact=True).fill("+33 6 12 34 56 78")
    staff.get_by_label("Note:", exact=True).fill("Pays at the door; needs the aisle")
    save_screenshot(staff, "staff-new-booking", tmp_path)
    staff.get_by_role("button", name="Book").click()

    ada = Reservation.objects.get(resource=show, customer_name="Ada Lovelace")
    expect(staff.locator(".messagelist")).to_contain_text(
        f"Booking {ada.reference}: 2 places confirmed for Ada Lovelace."
    )
    assert staff.url.endswith(f"/admin/bookings/reservation/{ada.pk}/change/")
    expect(staff.locator("#content")).to_contain_text(ada.reference)
    assert (ada.status, ada.customer_email, ada.customer_phone, ada.note) == (
        ReservationStatus.CONFIRMED,
        "ada@example.com",
        "+33 6 12 34 56 78",
        "Pays at the door; needs the aisle",
    )
    assert seats_of(ada) == ["B3", "B4"]
    assert history(ada) == [("staff:boss", "", "confirmed", "")]
    confirmation = outbox_email(ada, "reservation.confirmed")
    assert confirmation.to == ["ada@example.com"]
    assert ada.reference in confirmation.subject

    # 3. She would rather sit further back: move the booking to C5 and C6.
    staff.locator("#move-seats").click()
    expect(staff.locator("[data-selection-summary]")).to_have_text("Chosen: B3, B4")
    seat(staff, "B3").click()
    seat(staff, "B4").click()
    seat(staff, "C5").click()
    seat(staff, "C6").click()
    expect(staff.locator("[data-selection-summary]")).to_have_text("Chosen: C5, C6")
    expect(staff.locator("#content")).to_contain_text(
        "ada@example.com is emailed the old and new seats"
    )
    save_screenshot(staff, "staff-move-seats", tmp_path)
    staff.get_by_role("button", name="Move").click()
    expect(staff.locator(".messagelist")).to_contain_text("moved from seats B3, B4 to C5, C6")
    expect(staff.locator("#content")).to_contain_text("C5, C6")
    assert seats_of(ada) == ["C5", "C6"]
    moved = ReservationEvent.objects.filter(reservation=ada).order_by("id").last()
    assert moved is not None
    assert (moved.actor, moved.from_status, moved.to_status) == (
        "staff:boss",
        "confirmed",
        "confirmed",
    )
    seats_changed = outbox_email(ada, "reservation.seats_changed")
    assert seats_changed.to == ["ada@example.com"]
    assert "C5, C6" in seats_changed.body

    # 4. Two seats blocked for the sound desk, on the seat plan.
    staff.goto(f"/admin/resources/resource/{show.pk}/change/")
    staff.get_by_role("link", name="Seat plan").click()
    expect(seat(staff, "C5")).to_have_class(re.compile("seat--booked"))
    seat(staff, "A1").click()
    seat(staff, "A2").click()
    expect(staff.locator("[data-selection-summary]")).to_have_text("Selected: A1, A2")
    staff.get_by_label("Reason for a block (optional)").fill("Sound desk")
    staff.get_by_role("button", name="Block selected seats").click()
    expect(staff.locator(".messagelist")).to_contain_text("Seats A1, A2 blocked")
    expect(seat(staff, "A1")).to_have_class(re.compile("seat--blocked"))
    expect(seat(staff, "A2")).to_have_class(re.compile("seat--blocked"))
    expect(staff.locator('[data-status="blocked"] .legend__count')).to_have_text("2")
    # The seat plan's image for the README is test_seat_plan_browser's, with every state.
    staff.screenshot(path=str(tmp_path / "sale-day-seat-plan.png"), full_page=True)
    block = Reservation.objects.get(resource=show, blocked=True)
    assert (block.status, block.note, seats_of(block)) == ("held", "Sound desk", ["A1", "A2"])
    assert block.hold_expires_at is None
    customer = new_page()
    customer.goto(f"/r/{show.slug}/")
    # Customers see them taken, like any hold, and cannot pick them.
    for label, seat_id in zip(("A1", "A2"), seat_ids(show, "A1", "A2"), strict=True):
        expect(seat(customer, label)).to_have_class(re.compile("seat--held"))
        expect(customer.locator(f"#seat-{seat_id}")).to_be_disabled()
    expect(seat(customer, "A3")).to_have_class(re.compile("seat--available"))

    # 5. Grace's booking cancelled, with a reason, from the reservations list.
    staff.goto(f"/admin/bookings/reservation/?q={grace.reference}")
    staff.locator("#result_list tbody tr").filter(has_text=grace.reference).locator(
        "input.action-select"
    ).check()
    staff.locator("select[name=action]").select_option("cancel_reservations")
    staff.get_by_role("button", name="Go", exact=True).click()
    expect(staff.locator("#to-cancel")).to_contain_text(grace.reference)
    expect(staff.locator("#to-cancel")).to_contain_text("Grace Hopper")
    expect(staff.locator(".emailed")).to_contain_text("grace@example.com")
    staff.get_by_label("Reason").fill(REASON)
    expect(staff.locator(".submit-row .cancel-link")).to_have_text("No, take me back")
    save_screenshot(staff, "staff-cancel-confirm", tmp_path)
    grace.refresh_from_db()
    assert grace.status == ReservationStatus.CONFIRMED
    staff.get_by_role("button", name="Yes, cancel it").click()
    expect(staff.locator(".messagelist")).to_contain_text("1 cancelled.")
    grace.refresh_from_db()
    assert grace.status == ReservationStatus.CANCELLED
    assert history(grace)[-1] == ("staff:boss", "confirmed", "cancelled", REASON)
    assert REASON in outbox_email(grace, "reservation.cancelled").body
    assert seats_of(grace) == []

    # 6. At the door: Ada's code, as a scanner types it, checks her in once.
    staff.goto("/staff/check-in/")
    # Tonight's show is chosen already: a ticket for another event would be refused.
    expect(staff.get_by_label("Event at this door")).to_have_value(str(show.pk))
    staff.get_by_label("Reference or QR code").fill(check_in_code(ada.reference))
    staff.get_by_role("button", name="Check in").click()
    outcome = staff.locator("[data-check-in-outcome]")
    expect(outcome).to_have_attribute("data-check-in-outcome", "checked-in")
    expect(outcome).to_contain_text("Checked in.")
    expect(outcome).to_contain_text("Ada Lovelace")
    expect(outcome).to_contain_text("C5, C6")
    save_screenshot(staff, "staff-check-in", tmp_path)
    ada.refresh_from_db()
    assert ada.checked_in_at is not None
    # A second time, by her reference read out: refused, saying when and by whom.
    staff.get_by_label("Reference or QR code").fill(ada.reference.lower())
    staff.get_by_role("button", name="Check in").click()
    expect(outcome).to_have_attribute("data-check-in-outcome", "already")
    expect(outcome).to_contain_text(re.compile(r"Already checked in at \d\d:\d\d by boss"))
    assert ReservationEvent.objects.filter(reservation=ada, note="checked in").count() == 1
    # Back to the admin from the door's header; her page there says so too.
    staff.locator(".site-header").get_by_role("link", name="Admin").click()
    expect(staff.get_by_role("heading", name="Dashboard")).to_be_visible()
    staff.goto(f"/admin/bookings/reservation/{ada.pk}/change/")
    expect(staff.locator(".field-checked_in_by")).to_contain_text("boss")
    expect(staff.locator(".field-checked_in_at .readonly")).not_to_have_text("-")
