"""The dashboard in a real headless Chromium: staff log in, read the week's event with its
places, today's sales and a hold about to expire (and open it), then switch maintenance on
and off with one click each, while a customer's event page follows. No policy violation."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db.models.functions import Now
from django.utils import timezone

from bookings.models import Reservation
from bookings.services import Actor, reservation_book
from settings_app.models import SINGLETON_ID, SystemSettings
from tests.admin.browser import expect, save_screenshot
from tests.admin.conftest import PASSWORD
from tests.factories import ResourceFactory
from tests.web.conftest import browser_env, chromium, new_page, web_server
from tests.web.test_csp import violations_of

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

__all__ = ["browser_env", "chromium", "new_page", "web_server"]

CUSTOMER = Actor("customer")


def test_staff_read_the_dashboard_and_switch_maintenance(new_page: Any, tmp_path: Path) -> None:
    get_user_model().objects.create_superuser("boss", "boss@example.com", PASSWORD)
    gala = ResourceFactory(
        name="Opera gala", capacity=40, starts_at=timezone.now() + timedelta(hours=5)
    )
    workshop = ResourceFactory(
        name="Pottery workshop", capacity=12, starts_at=timezone.now() + timedelta(days=3)
    )
    for quantity in (4, 2, 6):
        reservation_book(resource_id=gala.pk, quantity=quantity, actor=CUSTOMER)
    reservation_book(resource_id=workshop.pk, quantity=3, actor=CUSTOMER)
    earlier = reservation_book(resource_id=workshop.pk, quantity=5, actor=CUSTOMER).reservation
    Reservation.objects.filter(pk=earlier.pk).update(confirmed_at=Now() - timedelta(days=4))
    hold = reservation_book(
        resource_id=gala.pk, quantity=2, hold=True, actor=CUSTOMER, customer_name="Ada"
    ).reservation
    Reservation.objects.filter(pk=hold.pk).update(hold_expires_at=Now() + timedelta(minutes=6))

    staff = new_page(1280, 900)
    violations = violations_of(staff)
    staff.goto("/admin/")
    staff.get_by_label("Username").fill("boss")
    staff.get_by_label("Password").fill(PASSWORD)
    staff.get_by_role("button", name="Log in").click()
    expect(staff.get_by_role("heading", name="Dashboard")).to_be_visible()

    gala_row = staff.locator("tr.reservo-event").filter(has_text="Opera gala")
    expect(gala_row).to_contain_text("12 confirmed")
    expect(gala_row).to_contain_text("2 held")
    expect(gala_row).to_contain_text("26 free")
    expect(gala_row.get_by_role("img")).to_have_attribute(
        "aria-label", "12 confirmed, 2 held, 26 free of 40"
    )
    expect(staff.locator("rect.reservo-sales__bar")).to_have_count(2)
    expect(staff.locator("#dashboard-sales")).to_contain_text("5 bookings, 20 places")
    holds = staff.locator("#dashboard-holds")
    expect(holds.locator("tr.reservo-hold")).to_have_count(1)
    expect(holds).to_contain_text("Opera gala")
    save_screenshot(staff, "admin-dashboard", tmp_path)

    holds.get_by_role("link", name=hold.reference).click()
    expect(staff.locator("#content h1, #content h2").first).to_be_visible()
    assert staff.url.endswith(f"/admin/bookings/reservation/{hold.pk}/change/")
    staff.go_back()

    customer = new_page()
    customer.goto(f"/r/{gala.slug}/")
    expect(customer.get_by_role("button", name="Hold my places")).to_be_enabled()

    staff.get_by_role("button", name="Switch maintenance on").click()
    expect(staff.locator(".messagelist")).to_contain_text("Maintenance mode is on")
    expect(staff.locator("#dashboard-maintenance")).to_contain_text("bookings are refused")
    assert SystemSettings.objects.get(pk=SINGLETON_ID).maintenance_mode is True
    customer.reload()
    expect(customer.get_by_role("button", name="Hold my places")).to_be_disabled()

    staff.get_by_role("button", name="Switch maintenance off").click()
    expect(staff.locator(".messagelist")).to_contain_text("Maintenance mode is off")
    expect(staff.get_by_role("button", name="Switch maintenance on")).to_be_visible()
    assert SystemSettings.objects.get(pk=SINGLETON_ID).maintenance_mode is False
    customer.reload()
    expect(customer.get_by_role("button", name="Hold my places")).to_be_enabled()
    assert violations == []
