"""Bookings by staff in the admin: a new booking on a resource (by quantity or by seats, held
or confirmed), errors kept in the form, an edit of the customer's details, a move to other
seats, and who may do each."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from bookings.models import Reservation, ReservationEvent, ReservationSeat, ReservationStatus
from bookings.services import Actor, reservation_book
from resources.models import Resource
from tests.factories import ResourceFactory, SeatedResourceFactory

pytestmark = pytest.mark.django_db

CUSTOMER = Actor("customer")
CHANGELIST = "/admin/bookings/reservation/"


def new_url(resource: Resource) -> str:
    return f"{CHANGELIST}new/{resource.pk}/"


def detail_url(reservation: Reservation) -> str:
    return f"{CHANGELIST}{reservation.pk}/change/"


def seat_ids(resource: Resource, *labels: str) -> list[int]:
    by_label = dict(resource.seats.values_list("label", "id"))
    return [by_label[label] for label in labels]


def seats_of(reservation: Reservation) -> list[str]:
    return sorted(
        ReservationSeat.objects.filter(reservation=reservation, active=True).values_list(
            "seat__label", flat=True
        )
    )


def customer(**overrides: Any) -> dict[str, Any]:
    return {
        "customer_name": "Grace Hopper",
        "customer_email": "grace@example.com",
        "customer_phone": "+33 1 23 45 67 89",
        "note": "Booked on the phone",
        "mode": "confirm",
        **overrides,
    }


@pytest.fixture
def staff_client(db: Any) -> Client:
    """A staff user with the model permissions to view, add and change reservations."""
    user = get_user_model().objects.create_user("ada", "ada@example.com", "pw")
    user.is_staff = True
    user.save()
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="bookings",
            codename__in=["view_reservation", "add_reservation", "change_reservation"],
        ),
        *Permission.objects.filter(content_type__app_label="resources", codename="view_resource"),
    )
    client = Client()
    client.force_login(user)
    return client


# A new booking ------------------------------------------------------------------------


def test_new_booking_by_quantity_confirms_and_leads_to_the_reservation(
    staff_client: Client,
) -> None:
    resource = ResourceFactory(capacity=10)
    page = staff_client.get(new_url(resource))
    assert page.status_code == 200
    assert b'name="quantity"' in page.content

    response = staff_client.post(new_url(resource), {"quantity": "3", **customer()}, follow=True)

    reservation = Reservation.objects.get(resource=resource)
    assert response.redirect_chain[-1][0] == detail_url(reservation)
    assert reservation.status == ReservationStatus.CONFIRMED
    assert reservation.quantity == 3
    assert (reservation.customer_name, reservation.customer_phone, reservation.note) == (
        "Grace Hopper",
        "+33 1 23 45 67 89",
        "Booked on the phone",
    )
    assert reservation.language == "en"
    assert list(reservation.events.values_list("actor", "to_status")) == [
        ("staff:ada", "confirmed")
    ]
    assert reservation.reference in response.content.decode()


def test_new_booking_by_seats_as_a_hold(staff_client: Client) -> None:
    resource = SeatedResourceFactory(seats__rows=["A"], seats__per_row=5)
    page = staff_client.get(new_url(resource))
    assert page.status_code == 200
    assert b'class="seat-rows"' in page.content  # the customers' seat map

    response = staff_client.post(
        new_url(resource), {"seats": seat_ids(resource, "A2", "A3"), **customer(mode="hold")}
    )

    reservation = Reservation.objects.get(resource=resource)
    assert response.status_code == 302
    assert reservation.status == ReservationStatus.HELD
    assert reservation.hold_expires_at is not None
    assert seats_of(reservation) == ["A2", "A3"]


def test_seats_taken_meanwhile_are_a_form_error_that_keeps_what_was_typed(
    staff_client: Client,
) -> None:
    resource = SeatedResourceFactory(seats__rows=["A"], seats__per_row=5)
    staff_client.get(new_url(resource))  # the map the staff user saw: A2 free
    reservation_book(resource_id=resource.pk, seat_ids=seat_ids(resource, "A2"), actor=CUSTOMER)

    response = staff_client.post(
        new_url(resource),
        {"seats": seat_ids(resource, "A2", "A3"), **customer(customer_name="Ada Lovelace")},
    )

    assert response.status_code == 200
    content = response.content.decode()
    assert "Seat A2 is taken by another booking" in content
    assert 'value="Ada Lovelace"' in content
    assert 'value="+33 1 23 45 67 89"' in content
    a3 = seat_ids(resource, "A3")[0]
    assert f'value="{a3}" id="seat-{a3}" checked' in content  # the rest of the choice kept
    assert Reservation.objects.filter(resource=resource).count() == 1


def test_sold_out_and_limit_are_form_errors(staff_client: Client) -> None:
    resource = ResourceFactory(capacity=2, max_per_booking=5)
    response = staff_client.post(new_url(resource), {"quantity": "3", **customer()})
    assert response.status_code == 200
    assert "only 2 places are available" in response.content.decode()
    assert 'value="Grace Hopper"' in response.content.decode()

    limited = ResourceFactory(capacity=10, max_per_booking=2)
    response = staff_client.post(new_url(limited), {"quantity": "3", **customer()})
    assert "At most 2 places per booking." in response.content.decode()
    assert not Reservation.objects.exists()


def test_a_resource_not_open_is_refused_in_the_form(staff_client: Client) -> None:
    resource = ResourceFactory(state="draft")
    response = staff_client.post(new_url(resource), {"quantity": "1", **customer()})
    assert response.status_code == 200
    assert "is not open for booking" in response.content.decode()
    assert not Reservation.objects.exists()


def test_a_bad_email_is_a_form_error(staff_client: Client) -> None:
    resource = ResourceFactory()
    response = staff_client.post(
        new_url(resource), {"quantity": "1", **customer(customer_email="nope")}
    )
    assert response.status_code == 200
    assert "Enter a valid email address." in response.content.decode()
    assert not Reservation.objects.exists()


def test_the_links_to_a_new_booking(staff_client: Client) -> None:
    resource = ResourceFactory(name="Jazz night")
    changelist = staff_client.get(CHANGELIST)
    assert b'id="new-booking"' in changelist.content
    chooser = staff_client.get(f"{CHANGELIST}new/")
    assert chooser.status_code == 200
    assert new_url(resource) in chooser.content.decode()
    resource_page = staff_client.get(f"/admin/resources/resource/{resource.pk}/change/")
    assert new_url(resource) in resource_page.content.decode()


# Customer details ---------------------------------------------------------------------


def test_edit_details_saves_them_with_a_history_row(staff_client: Client) -> None:
    resource = ResourceFactory()
    reservation = reservation_book(
        resource_id=resource.pk, quantity=1, actor=CUSTOMER, customer_name="Grace"
    ).reservation
    url = f"{CHANGELIST}{reservation.pk}/details/"
    detail = staff_client.get(detail_url(reservation))
    assert url in detail.content.decode()
    page = staff_client.get(url)
    assert page.status_code == 200
    assert 'value="Grace"' in page.content.decode()

    response = staff_client.post(
        url,
        {
            "customer_name": "Grace Hopper",
            "customer_email": "grace@example.com",
            "customer_phone": "0612345678",
            "note": "VIP",
        },
    )

    assert response.status_code == 302
    assert response["Location"] == detail_url(reservation)
    reservation.refresh_from_db()
    assert (reservation.customer_name, reservation.customer_email, reservation.note) == (
        "Grace Hopper",
        "grace@example.com",
        "VIP",
    )
    event = ReservationEvent.objects.filter(reservation=reservation).order_by("-id").first()
    assert event is not None
    assert (event.actor, event.note) == ("staff:ada", "details changed: name, email, phone, note")
    page = staff_client.get(detail_url(reservation)).content.decode()
    assert "0612345678" in page
    assert "details changed: name, email, phone, note" in page


def test_edit_details_keeps_what_was_typed_on_a_bad_email(staff_client: Client) -> None:
    resource = ResourceFactory()
    reservation = reservation_book(resource_id=resource.pk, quantity=1, actor=CUSTOMER).reservation
    response = staff_client.post(
        f"{CHANGELIST}{reservation.pk}/details/",
        {"customer_name": "Grace", "customer_email": "grace@", "customer_phone": "", "note": ""},
    )
    assert response.status_code == 200
    assert 'value="grace@"' in response.content.decode()
    reservation.refresh_from_db()
    assert reservation.customer_name == ""


# Moving seats -------------------------------------------------------------------------


def test_move_seats_shows_the_booking_s_own_seats_and_moves_them(staff_client: Client) -> None:
    resource = SeatedResourceFactory(seats__rows=["A", "B"], seats__per_row=4)
    reservation = reservation_book(
        resource_id=resource.pk, seat_ids=seat_ids(resource, "A1", "A2"), actor=CUSTOMER
    ).reservation
    url = f"{CHANGELIST}{reservation.pk}/seats/"
    assert url in staff_client.get(detail_url(reservation)).content.decode()
    page = staff_client.get(url).content.decode()
    a1 = seat_ids(resource, "A1")[0]
    assert f'value="{a1}" id="seat-{a1}" checked>' in page  # its own: pickable and chosen
    assert f'for="seat-{a1}" class="seat seat--yours' in page

    response = staff_client.post(url, {"seats": seat_ids(resource, "B3", "B4")}, follow=True)

    assert response.redirect_chain[-1][0] == detail_url(reservation)
    assert seats_of(reservation) == ["B3", "B4"]
    assert "moved from seats A1, A2 to B3, B4" in response.content.decode()
    # The history on the reservation's page says what moved.
    assert "seats A1, A2 \N{RIGHTWARDS ARROW} B3, B4" in response.content.decode()
    event = ReservationEvent.objects.filter(reservation=reservation).order_by("-id").first()
    assert event is not None and event.note == "seats A1, A2 \N{RIGHTWARDS ARROW} B3, B4"


def test_the_move_page_and_its_outcome_say_who_is_emailed(staff_client: Client) -> None:
    resource = SeatedResourceFactory(seats__rows=["A"], seats__per_row=4)
    emailed = reservation_book(
        resource_id=resource.pk,
        seat_ids=seat_ids(resource, "A1"),
        actor=CUSTOMER,
        customer_email="grace@example.com",
    ).reservation
    silent = reservation_book(
        resource_id=resource.pk, seat_ids=seat_ids(resource, "A2"), actor=CUSTOMER
    ).reservation
    page = staff_client.get(f"{CHANGELIST}{emailed.pk}/seats/").content.decode()
    assert "grace@example.com is emailed the old and new seats" in page
    page = staff_client.get(f"{CHANGELIST}{silent.pk}/seats/").content.decode()
    assert "No one is emailed: the booking has no email address" in page

    response = staff_client.post(
        f"{CHANGELIST}{emailed.pk}/seats/", {"seats": seat_ids(resource, "A3")}, follow=True
    )
    assert "moved from seats A1 to A3. grace@example.com is emailed the new seats." in (
        response.content.decode()
    )
    response = staff_client.post(
        f"{CHANGELIST}{silent.pk}/seats/", {"seats": seat_ids(resource, "A4")}, follow=True
    )
    assert "moved from seats A2 to A4." in response.content.decode()
    assert "is emailed" not in response.content.decode()


def test_move_to_a_taken_seat_is_a_form_error(staff_client: Client) -> None:
    resource = SeatedResourceFactory(seats__rows=["A"], seats__per_row=4)
    reservation = reservation_book(
        resource_id=resource.pk, seat_ids=seat_ids(resource, "A1"), actor=CUSTOMER
    ).reservation
    reservation_book(resource_id=resource.pk, seat_ids=seat_ids(resource, "A3"), actor=CUSTOMER)
    response = staff_client.post(
        f"{CHANGELIST}{reservation.pk}/seats/", {"seats": seat_ids(resource, "A3")}
    )
    assert response.status_code == 200
    assert "Seat A3 is taken by another booking" in response.content.decode()
    assert seats_of(reservation) == ["A1"]


def test_move_with_another_number_of_seats_is_a_form_error(staff_client: Client) -> None:
    resource = SeatedResourceFactory(seats__rows=["A"], seats__per_row=4)
    reservation = reservation_book(
        resource_id=resource.pk, seat_ids=seat_ids(resource, "A1", "A2"), actor=CUSTOMER
    ).reservation
    response = staff_client.post(
        f"{CHANGELIST}{reservation.pk}/seats/", {"seats": seat_ids(resource, "A3")}
    )
    assert response.status_code == 200
    assert "Choose 2 seats, as many as the booking has." in response.content.decode()
    assert seats_of(reservation) == ["A1", "A2"]


# Permissions --------------------------------------------------------------------------


def test_staff_without_the_permissions_get_403_and_no_links(clerk_client: Client) -> None:
    """The booking clerk may view and cancel reservations, but not add or change them."""
    resource = SeatedResourceFactory(seats__rows=["A"], seats__per_row=3)
    reservation = reservation_book(
        resource_id=resource.pk, seat_ids=seat_ids(resource, "A1"), actor=CUSTOMER
    ).reservation
    assert clerk_client.get(f"{CHANGELIST}new/").status_code == 403
    assert clerk_client.get(new_url(resource)).status_code == 403
    assert (
        clerk_client.post(
            new_url(resource), {"seats": seat_ids(resource, "A2"), **customer()}
        ).status_code
        == 403
    )
    assert clerk_client.get(f"{CHANGELIST}{reservation.pk}/details/").status_code == 403
    assert (
        clerk_client.post(
            f"{CHANGELIST}{reservation.pk}/seats/", {"seats": seat_ids(resource, "A3")}
        ).status_code
        == 403
    )
    assert Reservation.objects.count() == 1
    assert seats_of(reservation) == ["A1"]
    detail = clerk_client.get(detail_url(reservation)).content.decode()
    assert "/details/" not in detail and "/seats/" not in detail
    assert b'id="new-booking"' not in clerk_client.get(CHANGELIST).content


def test_a_user_who_adds_but_does_not_change_cannot_edit(db: Any) -> None:
    user = get_user_model().objects.create_user("bo", "bo@example.com", "pw")
    user.is_staff = True
    user.save()
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="bookings", codename__in=["view_reservation", "add_reservation"]
        )
    )
    client = Client()
    client.force_login(user)
    resource = ResourceFactory()
    assert client.post(new_url(resource), {"quantity": "1", **customer()}).status_code == 302
    reservation = Reservation.objects.get()
    assert client.get(f"{CHANGELIST}{reservation.pk}/details/").status_code == 403


def test_a_hold_that_expired_meanwhile_is_not_moved(staff_client: Client) -> None:
    resource = SeatedResourceFactory(seats__rows=["A"], seats__per_row=4)
    reservation = reservation_book(
        resource_id=resource.pk, seat_ids=seat_ids(resource, "A1"), hold=True, actor=CUSTOMER
    ).reservation
    url = f"{CHANGELIST}{reservation.pk}/seats/"
    assert staff_client.get(url).status_code == 200
    Reservation.objects.filter(pk=reservation.pk).update(
        hold_expires_at=reservation.created_at - timedelta(seconds=1)
    )
    response = staff_client.post(url, {"seats": seat_ids(resource, "A2")}, follow=True)
    assert response.redirect_chain[-1][0] == detail_url(reservation)
    assert "This hold expired" in response.content.decode()
    reservation.refresh_from_db()
    assert reservation.status == ReservationStatus.EXPIRED
    assert seats_of(reservation) == []


def test_closed_sales_are_a_form_error_that_keeps_what_was_typed(staff_client: Client) -> None:
    resource = ResourceFactory(sales_close_at=timezone.now() - timedelta(hours=1))
    response = staff_client.post(new_url(resource), {"quantity": "2", **customer()})
    assert response.status_code == 200
    content = response.content.decode()
    assert "have closed" in content
    assert 'value="Grace Hopper"' in content and 'value="2"' in content
    assert not Reservation.objects.exists()
