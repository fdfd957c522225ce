"""The sale-day flow in a real headless Chromium: staff create a seated show in the admin,
a customer books on the public page, staff see it, cancel it, and the seats come back."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from bookings.models import Reservation, ReservationEvent, ReservationStatus
from resources.models import Resource
from tests.admin.browser import expect
from tests.admin.conftest import PASSWORD
from tests.web.conftest import browser_env, chromium, new_page, web_server

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

__all__ = ["browser_env", "chromium", "new_page", "web_server"]


def resource_row(page: Any, name: str) -> Any:
    return page.locator("#result_list tbody tr").filter(has_text=name)


def column(row: Any, name: str) -> Any:
    return row.locator(f"td.field-{name}")


def test_sale_day_in_the_admin(new_page: Any) -> None:
    get_user_model().objects.create_superuser("boss", "boss@example.com", PASSWORD)
    staff = new_page(1280, 900)

    staff.goto("/admin/")
    staff.get_by_label("Username").fill("boss")
    staff.get_by_label("Password").fill(PASSWORD)
    staff.get_by_role("button", name="Log in").click()
    expect(staff.get_by_role("heading", name="Dashboard")).to_be_visible()
    # The index groups the models by what staff do; the resources are under Events.
    events = staff.locator(".app-events.module")
    expect(events.get_by_role("link", name="Resources", exact=True)).to_be_visible()

    # A seated show: two rows of four seats, generated from the form.
    staff.goto("/admin/resources/resource/add/")
    staff.get_by_label("Name").fill("Opera gala")
    staff.get_by_label("Kind").select_option("seated")
    expect(staff.get_by_label("State")).to_have_value("draft")  # until staff open it
    staff.get_by_label("State").select_option("open")
    staff.locator("#id_starts_at_0").fill("2031-12-04")
    staff.locator("#id_starts_at_1").fill("20:00:00")
    staff.get_by_label("Seat rows").fill("A, B")
    staff.get_by_label("Seats per row").fill("4")
    staff.get_by_role("button", name="Save", exact=True).click()
    expect(staff.locator(".messagelist")).to_contain_text("was added successfully")
    row = resource_row(staff, "Opera gala")
    expect(column(row, "capacity")).to_have_text("8")
    expect(column(row, "available_now")).to_have_text("8")
    resource = Resource.objects.get(name="Opera gala")
    assert resource.seats.count() == 8

    # A customer books two seats on the public page.
    customer = new_page()
    customer.goto(f"/r/{resource.slug}/")
    customer.locator('label.seat[data-seat-label="A2"]').click()
    customer.locator('label.seat[data-seat-label="A3"]').click()
    customer.get_by_role("button", name="Hold my places").click()
    customer.get_by_label("Your name").fill("Ada Lovelace")
    customer.get_by_label("Email address").fill("ada@example.com")
    customer.get_by_role("button", name="Confirm booking").click()
    expect(customer.get_by_role("heading", name="You're booked!")).to_be_visible()
    reference = customer.locator(".success-banner .reference").inner_text().strip()

    # Staff see it: in the reservations list, and in the show's counters.
    staff.goto("/admin/bookings/reservation/")
    booking_row = staff.locator("#result_list tbody tr").filter(has_text=reference)
    expect(booking_row).to_contain_text("Ada Lovelace")
    expect(booking_row).to_contain_text("A2, A3")
    expect(booking_row).to_contain_text("Confirmed")
    staff.goto("/admin/resources/resource/")
    expect(column(resource_row(staff, "Opera gala"), "confirmed")).to_have_text("2")
    expect(column(resource_row(staff, "Opera gala"), "available_now")).to_have_text("6")

    # Staff cancel it with the list action.
    staff.goto(f"/admin/bookings/reservation/?q={reference}")
    staff.locator("#result_list tbody tr").filter(has_text=reference).locator(
        "input.action-select"
    ).check()
    staff.locator("select[name=action]").select_option("cancel_reservations")
    staff.get_by_role("button", name="Go", exact=True).click()
    # First a confirmation page: the booking, and who will be emailed; then a reason.
    expect(staff.locator("#to-cancel")).to_contain_text(reference)
    expect(staff.locator(".emailed")).to_contain_text("ada@example.com")
    assert Reservation.objects.get(reference=reference).status == ReservationStatus.CONFIRMED
    staff.get_by_label("Reason").fill("The soprano is ill")
    staff.get_by_role("button", name="Yes, cancel it").click()
    expect(staff.locator(".messagelist")).to_contain_text("1 cancelled.")
    expect(staff.locator("#result_list tbody tr").filter(has_text=reference)).to_contain_text(
        "Cancelled"
    )

    # The history shows who did it; the availability is back, in the admin and for customers.
    staff.locator("#result_list tbody tr").filter(has_text=reference).get_by_role(
        "link", name=reference
    ).click()
    expect(staff.locator(".inline-group")).to_contain_text("staff:boss")
    expect(staff.locator(".inline-group")).to_contain_text("The soprano is ill")
    staff.goto("/admin/resources/resource/")
    expect(column(resource_row(staff, "Opera gala"), "available_now")).to_have_text("8")
    customer.goto(f"/r/{resource.slug}/")
    expect(customer.locator('label.seat[data-seat-label="A2"]')).to_have_class(
        re.compile("seat--available")
    )

    reservation = Reservation.objects.get(reference=reference)
    assert reservation.status == ReservationStatus.CANCELLED
    assert ReservationEvent.objects.filter(
        reservation=reservation, to_status="cancelled", actor="staff:boss"
    ).exists()
    resource.refresh_from_db()
    assert (resource.held, resource.confirmed) == (0, 0)
