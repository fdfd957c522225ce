"""The staff seat plan in a real headless Chromium: staff open it from the show's admin
page, see who holds each seat, block two seats by clicking them, and see them blocked."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from bookings.models import Reservation
from bookings.services import Actor, reservation_book, reservation_check_in
from tests.admin.browser import expect, save_screenshot, seat, seat_ids
from tests.admin.conftest import PASSWORD
from tests.factories import SeatedResourceFactory
from tests.web.conftest import browser_env, chromium, new_page, web_server

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

__all__ = ["browser_env", "chromium", "new_page", "web_server"]

CUSTOMER = Actor("customer")
STAFF = Actor("staff", "boss")


def test_staff_block_two_seats_on_the_plan(new_page: Any, tmp_path: Path) -> None:
    get_user_model().objects.create_superuser("boss", "boss@example.com", PASSWORD)
    show = SeatedResourceFactory(
        name="Jazz at the Blue Room",
        venue="Blue Room, 12 rue des Lilas",
        seats__rows=["A", "B", "C", "D"],
        seats__per_row=10,
    )
    ada = reservation_book(
        resource_id=show.pk,
        actor=CUSTOMER,
        seat_ids=seat_ids(show, "B4", "B5"),
        customer_name="Ada Lovelace",
        customer_email="ada@example.com",
    ).reservation
    reservation_book(
        resource_id=show.pk,
        actor=CUSTOMER,
        seat_ids=seat_ids(show, "C6"),
        hold=True,
        customer_name="Grace Hopper",
    )
    alan = reservation_book(
        resource_id=show.pk,
        actor=CUSTOMER,
        seat_ids=seat_ids(show, "A5", "A6"),
        customer_name="Alan Turing",
    ).reservation
    reservation_check_in(reservation_id=alan.pk, actor=STAFF)
    reservation_book(
        resource_id=show.pk,
        actor=STAFF,
        seat_ids=seat_ids(show, "D1", "D2"),
        block=True,
        note="Wheelchair spaces",
    )

    staff = new_page(1280, 1000)
    staff.goto("/admin/login/")
    staff.get_by_label("Username").fill("boss")
    staff.get_by_label("Password").fill(PASSWORD)
    staff.get_by_role("button", name="Log in").click()
    staff.goto(f"/admin/resources/resource/{show.pk}/change/")
    staff.get_by_role("link", name="Seat plan").click()
    expect(staff.get_by_role("heading", name="Seat plan: Jazz at the Blue Room")).to_be_visible()

    expect(seat(staff, "B4")).to_have_class(re.compile("seat--booked"))
    expect(seat(staff, "A5")).to_have_class(re.compile("seat--checked_in"))
    expect(seat(staff, "C6")).to_have_class(re.compile("seat--held"))
    expect(seat(staff, "D1")).to_have_class(re.compile("seat--blocked"))
    # A taken seat names its booking on hover, and shows it, with its link, on a click.
    expect(seat(staff, "B4")).to_have_attribute("title", re.compile("Ada Lovelace"))
    # Playwright deems the label of a disabled checkbox not clickable; a mouse can click it.
    seat(staff, "B4").click(force=True)
    details = staff.locator("[data-seat-details]")
    expect(details).to_be_visible()
    expect(details).to_contain_text("Ada Lovelace")
    expect(details.get_by_role("link", name=ada.reference)).to_have_attribute(
        "href", f"/admin/bookings/reservation/{ada.pk}/change/"
    )

    seat(staff, "A1").click()
    seat(staff, "A2").click()
    expect(staff.locator("[data-selection-summary]")).to_have_text("Selected: A1, A2")
    staff.get_by_label("Reason for a block (optional)").fill("Sound desk")
    staff.get_by_role("button", name="Block selected seats").click()

    expect(staff.locator(".messagelist")).to_contain_text("Seats A1, A2 blocked")
    expect(seat(staff, "A1")).to_have_class(re.compile("seat--blocked"))
    expect(seat(staff, "A2")).to_have_class(re.compile("seat--blocked"))
    expect(staff.locator('[data-status="blocked"] .legend__count')).to_have_text("4")
    block = Reservation.objects.get(resource=show, note="Sound desk")
    assert (block.blocked, block.status, block.quantity) == (True, "held", 2)
    seat(staff, "B4").click(force=True)
    expect(details).to_contain_text("Ada Lovelace")
    save_screenshot(staff, "staff-seat-plan", tmp_path)
