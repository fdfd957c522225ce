"""A booking taken on the phone, in a real headless Chromium: staff pick seats on the
customers' seat map in the admin, then move the booking to other seats."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model

from bookings.models import Reservation, ReservationSeat, ReservationStatus
from tests.admin.browser import expect, log_in, seat
from tests.admin.conftest import PASSWORD
from tests.factories import SeatedResourceFactory
from tests.web.conftest import browser_env, chromium, new_page, web_server

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

__all__ = ["browser_env", "chromium", "new_page", "web_server"]


def seats_of(reservation: Reservation) -> list[str]:
    return sorted(
        ReservationSeat.objects.filter(reservation=reservation, active=True).values_list(
            "seat__label", flat=True
        )
    )


def test_staff_book_seats_and_move_them(new_page: Any) -> None:
    get_user_model().objects.create_superuser("boss", "boss@example.com", PASSWORD)
    resource = SeatedResourceFactory(name="Opera gala", seats__rows=["A", "B"], seats__per_row=4)
    staff = new_page(1280, 900)
    log_in(staff)

    # From the event's page to the new booking, on the seat map customers use.
    staff.goto(f"/admin/resources/resource/{resource.pk}/change/")
    staff.locator("a.new-booking-link").click()
    seat(staff, "A2").click()
    seat(staff, "A3").click()
    expect(staff.locator("[data-selection-summary]")).to_have_text("Chosen: A2, A3")
    staff.get_by_label("Customer name").fill("Ada Lovelace")
    staff.get_by_label("Phone").fill("+44 20 7946 0000")
    staff.get_by_role("button", name="Book").click()
    expect(staff.locator(".messagelist")).to_contain_text("2 places confirmed for Ada Lovelace")
    reservation = Reservation.objects.get(resource=resource)
    assert reservation.status == ReservationStatus.CONFIRMED
    assert seats_of(reservation) == ["A2", "A3"]
    expect(staff.locator(".messagelist")).to_contain_text(reservation.reference)

    # Move: its seats are starred and chosen; keep A3, swap A2 for B1.
    staff.locator("#move-seats").click()
    expect(staff.locator('label.seat--yours[data-seat-label="A2"]')).to_be_visible()
    expect(staff.locator("[data-selection-summary]")).to_have_text("Chosen: A2, A3")
    seat(staff, "A2").click()
    seat(staff, "B1").click()
    expect(staff.locator("[data-selection-summary]")).to_have_text("Chosen: A3, B1")
    staff.get_by_role("button", name="Move").click()
    expect(staff.locator(".messagelist")).to_contain_text("moved from seats A2, A3 to A3, B1")
    assert seats_of(reservation) == ["A3", "B1"]
