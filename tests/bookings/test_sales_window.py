"""The sales window: bookings and holds only between `sales_open_at` and `sales_close_at`
(or the event's start), by the database clock; the pages follow."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import IntegrityError
from django.db.models.functions import Now
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from bookings.models import Reservation, ReservationStatus
from bookings.services import Actor, reservation_book, reservation_confirm
from reservo.errors import SalesClosed
from resources.models import Resource
from tests.factories import ResourceFactory
from tests.web.conftest import form_token

pytestmark = pytest.mark.django_db

CUSTOMER = Actor("customer")


def book(resource: Resource, **extra: Any) -> Any:
    return reservation_book(resource_id=resource.pk, quantity=1, actor=CUSTOMER, **extra)


def close_by_the_database_clock(resource: Resource, **offset: float) -> None:
    """Set the close time relative to the database's clock, not this process's."""
    Resource.objects.filter(pk=resource.pk).update(
        sales_close_at=Now() + timedelta(**offset) if offset else Now()
    )


# The rule ---------------------------------------------------------------------------------


def test_inside_the_window_a_booking_goes_through() -> None:
    now = timezone.now()
    resource = ResourceFactory(
        sales_open_at=now - timedelta(hours=1), sales_close_at=now + timedelta(hours=1)
    )
    assert book(resource).reservation.status == ReservationStatus.CONFIRMED


def test_before_sales_open_a_booking_and_a_hold_are_refused() -> None:
    opens = timezone.now() + timedelta(days=1)
    resource = ResourceFactory(sales_open_at=opens)
    for hold in (False, True):
        with pytest.raises(SalesClosed) as refused:
            book(resource, hold=hold)
        assert refused.value.extras == {"sales_open_at": opens.isoformat()}
        assert "open on" in refused.value.detail
    assert not Reservation.objects.exists()


def test_after_sales_close_a_booking_is_refused() -> None:
    resource = ResourceFactory()
    close_by_the_database_clock(resource, seconds=-1)
    with pytest.raises(SalesClosed, match="have closed"):
        book(resource)


def test_without_a_close_time_sales_close_when_the_event_starts() -> None:
    resource = ResourceFactory(starts_at=timezone.now() + timedelta(hours=1))
    assert book(resource)
    Resource.objects.filter(pk=resource.pk).update(starts_at=Now())
    with pytest.raises(SalesClosed):
        book(resource)


def test_the_close_time_wins_over_the_start() -> None:
    resource = ResourceFactory(starts_at=timezone.now() - timedelta(hours=1))
    close_by_the_database_clock(resource, hours=1)
    assert book(resource)  # a walk-in sale after the doors opened


def test_a_hold_taken_in_the_window_can_still_be_confirmed_after_it() -> None:
    resource = ResourceFactory()
    held = book(resource, hold=True).reservation
    close_by_the_database_clock(resource)
    confirmed = reservation_confirm(reservation_id=held.pk, actor=CUSTOMER)
    assert confirmed.status == ReservationStatus.CONFIRMED


def test_the_database_refuses_a_window_that_closes_before_it_opens() -> None:
    now = timezone.now()
    with pytest.raises(IntegrityError, match="resource_sales_close_after_open"):
        ResourceFactory(sales_open_at=now, sales_close_at=now - timedelta(minutes=1))


# Pages ------------------------------------------------------------------------------------


def test_pages_say_when_sales_open_or_that_they_closed(client: Client) -> None:
    upcoming = ResourceFactory(name="Upcoming", sales_open_at=timezone.now() + timedelta(days=1))
    closed = ResourceFactory(name="Closed")
    close_by_the_database_clock(closed)

    page = client.get(reverse("bookings:resource", args=[upcoming.slug])).content.decode()
    assert "Sales open on" in page and "Hold my places" not in page
    page = client.get(reverse("bookings:resource", args=[closed.slug])).content.decode()
    assert "Sales have closed." in page and "Hold my places" not in page

    home = client.get(reverse("bookings:home")).content.decode()
    assert "Upcoming" in home and "Closed" not in home


def test_a_page_hold_refused_by_the_window_says_so(client: Client) -> None:
    resource = ResourceFactory()
    url = reverse("bookings:resource", args=[resource.slug])
    token = form_token(client, url)
    close_by_the_database_clock(resource)
    response = client.post(url, {"form_token": token, "quantity": "1"})
    assert response.status_code == 409
    assert "have closed" in response.content.decode()
    assert not Reservation.objects.exists()
