"""The customer booking pages through the Django test client: every page, every error path."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from bookings.models import OutboxMessage, Reservation, ReservationStatus
from bookings.services import Actor, manage_token_hash, reservation_book
from reservo.errors import Busy
from resources.models import ResourceState
from settings_app.models import SystemSettings
from tests.factories import ResourceFactory, SeatedResourceFactory
from tests.web.conftest import form_token

pytestmark = pytest.mark.django_db

CUSTOMER = Actor("customer")


def resource_url(resource) -> str:
    return reverse("bookings:resource", args=[resource.slug])


def hold(client: Client, resource, **data) -> str:
    """Hold places through the page; returns the reservation reference."""
    url = resource_url(resource)
    response = client.post(url, {"form_token": form_token(client, url), **data})
    assert response.status_code == 302, response.content.decode()[:2000]
    match = re.fullmatch(r"/checkout/([A-Z0-9-]+)/", response["Location"])
    assert match, response["Location"]
    return match.group(1)


def seat_ids(resource, *labels: str) -> list[int]:
    by_label = dict(resource.seats.values_list("label", "id"))
    return [by_label[label] for label in labels]


def expire_now(reference: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE bookings_reservation SET hold_expires_at = now() - interval '1 second' "
            "WHERE reference = %s",
            [reference],
        )


# Home ---------------------------------------------------------------------------------


def test_home_lists_open_resources_by_start_with_places_left(client: Client) -> None:
    now = datetime.now(UTC)
    later = ResourceFactory(name="Later talk", starts_at=now + timedelta(days=9), capacity=5)
    sooner = ResourceFactory(name="Sooner talk", starts_at=now + timedelta(days=2), capacity=3)
    full = ResourceFactory(name="Full talk", starts_at=now + timedelta(days=5), capacity=1)
    ResourceFactory(name="Draft talk", state=ResourceState.DRAFT)
    ResourceFactory(name="Closed talk", state=ResourceState.CLOSED)
    reservation_book(resource_id=full.pk, actor=CUSTOMER, quantity=1)
    reservation_book(resource_id=later.pk, actor=CUSTOMER, quantity=2)

    response = client.get("/")

    assert response.status_code == 200
    html = response.content.decode()
    assert html.index("Sooner talk") < html.index("Full talk") < html.index("Later talk")
    assert "Draft talk" not in html and "Closed talk" not in html
    assert "3 left" in html and "3 left" in html[html.index("Sooner") : html.index("Full")]
    assert "Sold out" in html[html.index("Full talk") : html.index("Later talk")]
    assert "3 left" in html[html.index("Later talk") :]
    assert f'data-resource-id="{sooner.pk}"' in html


def test_home_empty_state(client: Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert "Nothing to book right now" in response.content.decode()


# Resource page ------------------------------------------------------------------------


def test_capacity_page_shows_details_in_site_time_zone_and_bounded_picker(
    client: Client,
) -> None:
    resource = ResourceFactory(
        name="Pasta class",
        description="Fresh pasta by hand.",
        starts_at=datetime(2030, 6, 1, 16, 0, tzinfo=UTC),
        capacity=20,
        max_per_booking=4,
    )
    response = client.get(resource_url(resource))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Fresh pasta by hand." in html
    assert "18:00" in html  # 16:00 UTC is 18:00 in Europe/Paris in June
    assert "Sat 1 Jun 2030, 18:00 CEST" in html  # one format, naming the zone
    assert 'name="quantity"' in html and 'max="4"' in html
    assert "20 left" in html
    assert 'name="csrfmiddlewaretoken"' in html


def test_picker_is_bounded_by_places_left_and_default_max(client: Client) -> None:
    SystemSettings.objects.filter(pk=1).update(default_max_per_booking=6)
    resource = ResourceFactory(capacity=5)
    reservation_book(resource_id=resource.pk, actor=CUSTOMER, quantity=2)
    html = client.get(resource_url(resource)).content.decode()
    assert 'max="3"' in html and "3 left" in html


def test_seated_page_shows_seat_map_with_statuses_and_legend(client: Client) -> None:
    resource = SeatedResourceFactory(seats__rows=["A", "B"], seats__per_row=4)
    held, booked = seat_ids(resource, "A2", "B3")
    reservation_book(resource_id=resource.pk, actor=CUSTOMER, seat_ids=[held], hold=True)
    reservation_book(resource_id=resource.pk, actor=CUSTOMER, seat_ids=[booked])

    html = client.get(resource_url(resource)).content.decode()

    assert html.count('type="checkbox" class="seat-input"') == 8
    assert re.search(rf'id="seat-{held}" disabled>\s*<label[^>]*seat--held', html)
    assert re.search(rf'id="seat-{booked}" disabled>\s*<label[^>]*seat--booked', html)
    free = seat_ids(resource, "A1")[0]
    assert re.search(rf'id="seat-{free}">\s*<label[^>]*seat--available', html)
    assert 'aria-label="Row A"' in html and 'aria-label="Row B"' in html
    for legend in ("Available", "Your choice", "Taken (on hold)", "Booked"):
        assert legend in html
    assert "6 left" in html


def test_sold_out_capacity_page_has_no_form(client: Client) -> None:
    resource = ResourceFactory(capacity=1)
    reservation_book(resource_id=resource.pk, actor=CUSTOMER, quantity=1)
    html = client.get(resource_url(resource)).content.decode()
    assert "sold out" in html and 'name="quantity"' not in html


def test_closed_resource_page_says_not_bookable(client: Client) -> None:
    resource = ResourceFactory(state=ResourceState.CLOSED)
    html = client.get(resource_url(resource)).content.decode()
    assert "not open for booking" in html and '<form method="post"' not in html


def test_draft_or_unknown_resource_is_branded_404(client: Client) -> None:
    draft = ResourceFactory(state=ResourceState.DRAFT)
    for url in (resource_url(draft), "/r/no-such-thing/"):
        response = client.get(url)
        assert response.status_code == 404
        assert "Page not found" in response.content.decode()


# Hold ---------------------------------------------------------------------------------


def test_hold_by_quantity_creates_a_hold_and_opens_checkout(client: Client) -> None:
    resource = ResourceFactory(capacity=10)
    reference = hold(client, resource, quantity=3)

    reservation = Reservation.objects.get(reference=reference)
    assert reservation.status == ReservationStatus.HELD
    assert reservation.quantity == 3
    token = client.session["reservo_bookings"][reference]
    assert reservation.manage_token_hash == manage_token_hash(token)

    response = client.get(reverse("bookings:checkout", args=[reference]))
    html = response.content.decode()
    assert response.status_code == 200
    assert "3 places" in html and reference in html
    assert re.search(r'data-seconds-left="(59\d|600)"', html)
    assert "They are yours until" in html


def test_same_form_submitted_twice_books_once(client: Client) -> None:
    resource = ResourceFactory(capacity=10)
    url = resource_url(resource)
    token = form_token(client, url)
    first = client.post(url, {"form_token": token, "quantity": 2})
    second = client.post(url, {"form_token": token, "quantity": 2})
    assert first.status_code == second.status_code == 302
    assert first["Location"] == second["Location"]
    assert Reservation.objects.filter(resource=resource).count() == 1
    resource.refresh_from_db()
    assert resource.held == 2


def test_unknown_form_token_books_nothing(client: Client) -> None:
    resource = ResourceFactory(capacity=10)
    response = client.post(resource_url(resource), {"form_token": "forged", "quantity": 1})
    assert response.status_code == 400
    assert "nothing was booked" in response.content.decode()
    assert not Reservation.objects.exists()


def test_forms_require_csrf_token() -> None:
    client = Client(enforce_csrf_checks=True)
    resource = ResourceFactory(capacity=10)
    url = resource_url(resource)
    response = client.post(url, {"form_token": form_token(client, url), "quantity": 1})
    assert response.status_code == 403
    assert not Reservation.objects.exists()


def test_quantity_above_limit_is_refused_next_to_the_field(client: Client) -> None:
    resource = ResourceFactory(capacity=50, max_per_booking=4)
    url = resource_url(resource)
    response = client.post(url, {"form_token": form_token(client, url), "quantity": 5})
    html = response.content.decode()
    assert response.status_code == 400
    assert 'id="quantity-error"' in html and "at most 4 places" in html
    assert 'aria-invalid="true"' in html
    assert not Reservation.objects.exists()


@pytest.mark.parametrize("quantity", ["", "0", "abc"])
def test_bad_quantity_is_refused(client: Client, quantity: str) -> None:
    resource = ResourceFactory(capacity=5)
    url = resource_url(resource)
    response = client.post(url, {"form_token": form_token(client, url), "quantity": quantity})
    assert response.status_code == 400
    assert 'id="quantity-error"' in response.content.decode()
    assert not Reservation.objects.exists()


def test_not_enough_left_has_its_own_message(client: Client) -> None:
    resource = ResourceFactory(capacity=3)
    url = resource_url(resource)
    token = form_token(client, url)
    reservation_book(resource_id=resource.pk, actor=CUSTOMER, quantity=2)
    response = client.post(url, {"form_token": token, "quantity": 2})
    html = response.content.decode()
    assert response.status_code == 409
    assert "only 1 place is still available" in html
    assert Reservation.objects.filter(resource=resource).count() == 1


def test_sold_out_while_choosing_has_its_own_message(client: Client) -> None:
    resource = ResourceFactory(capacity=2)
    url = resource_url(resource)
    token = form_token(client, url)
    reservation_book(resource_id=resource.pk, actor=CUSTOMER, quantity=2)
    response = client.post(url, {"form_token": token, "quantity": 1})
    html = response.content.decode()
    assert response.status_code == 409
    assert "this is now sold out" in html
    assert "Traceback" not in html


def test_hold_seats_then_checkout_lists_them(client: Client) -> None:
    resource = SeatedResourceFactory()
    reference = hold(client, resource, seats=seat_ids(resource, "A1", "A2"))
    reservation = Reservation.objects.get(reference=reference)
    assert reservation.quantity == 2
    assert sorted(reservation.seat_links.values_list("seat__label", flat=True)) == ["A1", "A2"]
    html = client.get(reverse("bookings:checkout", args=[reference])).content.decode()
    assert "A1, A2" in html


def test_seats_just_taken_are_named_marked_and_the_rest_kept(client: Client) -> None:
    resource = SeatedResourceFactory()
    a1, a2, a3 = seat_ids(resource, "A1", "A2", "A3")
    url = resource_url(resource)
    token = form_token(client, url)
    reservation_book(resource_id=resource.pk, actor=CUSTOMER, seat_ids=[a2], hold=True)

    response = client.post(url, {"form_token": token, "seats": [a1, a2, a3]})

    html = response.content.decode()
    assert response.status_code == 409
    assert "seat A2 was just taken" in html
    assert re.search(rf'id="seat-{a2}" disabled>\s*<label[^>]*seat--held seat--just-taken', html)
    assert re.search(rf'id="seat-{a1}" checked>', html)
    assert re.search(rf'id="seat-{a3}" checked>', html)
    assert Reservation.objects.filter(resource=resource).count() == 1


def test_no_seat_chosen_is_refused(client: Client) -> None:
    resource = SeatedResourceFactory()
    url = resource_url(resource)
    response = client.post(url, {"form_token": form_token(client, url)})
    assert response.status_code == 400
    assert "Choose at least one seat." in response.content.decode()


def test_unknown_seat_is_refused(client: Client) -> None:
    resource = SeatedResourceFactory()
    other = SeatedResourceFactory()
    url = resource_url(resource)
    foreign = seat_ids(other, "A1")
    response = client.post(url, {"form_token": form_token(client, url), "seats": foreign})
    assert response.status_code == 400
    assert not Reservation.objects.exists()


def test_maintenance_error_from_the_service_is_a_friendly_503(client: Client, settings) -> None:
    # The service is the authority: even if no middleware stops the request first.
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if "Maintenance" not in m]
    resource = ResourceFactory(capacity=5)
    url = resource_url(resource)
    token = form_token(client, url)
    SystemSettings.objects.filter(pk=1).update(
        maintenance_mode=True, maintenance_message="Back at noon, sorry!"
    )
    response = client.post(url, {"form_token": token, "quantity": 1})
    assert response.status_code == 503
    assert response["Retry-After"] == "60"
    assert "Back at noon, sorry!" in response.content.decode()
    assert not Reservation.objects.exists()
    assert client.get(url).status_code == 200  # browsing still works


def test_busy_is_a_503_with_retry_after(client: Client, monkeypatch) -> None:
    resource = ResourceFactory(capacity=5)
    url = resource_url(resource)
    token = form_token(client, url)

    def busy(**kwargs):
        raise Busy("Too many people are booking right now. Please try again.")

    monkeypatch.setattr("bookings.views.common.reservation_book", busy)
    response = client.post(url, {"form_token": token, "quantity": 1})
    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    assert "Too many people are booking right now" in response.content.decode()


# Checkout -----------------------------------------------------------------------------


def test_checkout_belongs_to_the_browser_that_made_the_hold(client: Client) -> None:
    resource = ResourceFactory(capacity=5)
    reference = hold(client, resource, quantity=1)
    stranger = Client()
    checkout = reverse("bookings:checkout", args=[reference])
    assert stranger.get(checkout).status_code == 404
    response = stranger.post(checkout, {"name": "Eve", "email": "eve@example.com"})
    assert response.status_code == 404
    assert Reservation.objects.get(reference=reference).status == ReservationStatus.HELD


def test_checkout_validation_messages_next_to_fields(client: Client) -> None:
    resource = ResourceFactory(capacity=5)
    reference = hold(client, resource, quantity=1)
    response = client.post(
        reverse("bookings:checkout", args=[reference]), {"name": " ", "email": "nope"}
    )
    html = response.content.decode()
    assert response.status_code == 400
    assert 'id="id_name-error"' in html and "Please enter your name." in html
    assert 'id="id_email-error"' in html and "Enter an email address like" in html
    assert html.count('aria-invalid="true"') == 2
    assert Reservation.objects.get(reference=reference).status == ReservationStatus.HELD


def test_confirm_books_and_shows_reference_and_manage_link(client: Client) -> None:
    resource = ResourceFactory(capacity=5)
    reference = hold(client, resource, quantity=2)
    checkout = reverse("bookings:checkout", args=[reference])

    response = client.post(checkout, {"name": "Ada Lovelace", "email": "ada@example.com"})

    assert response.status_code == 302
    assert response["Location"] == reverse("bookings:confirmed", args=[reference])
    reservation = Reservation.objects.get(reference=reference)
    assert reservation.status == ReservationStatus.CONFIRMED
    assert (reservation.customer_name, reservation.customer_email) == (
        "Ada Lovelace",
        "ada@example.com",
    )
    html = client.get(response["Location"]).content.decode()
    assert reference in html and "booked!" in html
    link = re.search(r'href="(http://testserver/b/[^"]+)" class="manage-link__url"', html)
    assert link
    token = re.search(r"token=([^&\"]+)", link.group(1)).group(1)
    assert manage_token_hash(token) == reservation.manage_token_hash
    # The confirmation email carries the same private link.
    email = OutboxMessage.objects.get(
        reservation=reservation, event_type="reservation.confirmed", channel="email"
    )
    assert email.target == "ada@example.com"
    assert email.payload["manage_token"] == token


def test_confirm_twice_shows_the_confirmation_again(client: Client) -> None:
    resource = ResourceFactory(capacity=5)
    reference = hold(client, resource, quantity=1)
    checkout = reverse("bookings:checkout", args=[reference])
    data = {"name": "Ada", "email": "ada@example.com"}
    client.post(checkout, data)
    again = client.post(checkout, data)
    assert again.status_code == 302
    assert again["Location"] == reverse("bookings:confirmed", args=[reference])
    resource.refresh_from_db()
    assert (resource.held, resource.confirmed) == (0, 1)


def test_expired_hold_offers_to_start_again(client: Client) -> None:
    resource = ResourceFactory(capacity=5)
    reference = hold(client, resource, quantity=1)
    expire_now(reference)
    checkout = reverse("bookings:checkout", args=[reference])

    page = client.get(checkout)
    assert page.status_code == 409
    assert "ran out of time" in page.content.decode()
    assert f'href="{resource_url(resource)}"' in page.content.decode()

    response = client.post(checkout, {"name": "Ada", "email": "ada@example.com"})
    assert response.status_code == 409
    assert "Start again" in response.content.decode()
    assert Reservation.objects.get(reference=reference).status != ReservationStatus.CONFIRMED


def test_hold_expiring_at_confirm_is_expired_not_booked(client: Client, monkeypatch) -> None:
    resource = ResourceFactory(capacity=5)
    reference = hold(client, resource, quantity=1)
    checkout = reverse("bookings:checkout", args=[reference])
    # The page still had time left when it was read; the database says it is over.
    monkeypatch.setattr(
        "bookings.views.holds.holds_due_by", lambda now, **rules: now - timedelta(minutes=1)
    )
    expire_now(reference)
    response = client.post(checkout, {"name": "Ada", "email": "ada@example.com"})
    assert response.status_code == 409
    assert "ran out of time" in response.content.decode()
    assert Reservation.objects.get(reference=reference).status == ReservationStatus.EXPIRED


def test_release_hold_frees_places(client: Client) -> None:
    resource = ResourceFactory(capacity=5)
    reference = hold(client, resource, quantity=3)
    response = client.post(reverse("bookings:release", args=[reference]), follow=True)
    assert response.status_code == 200
    assert "Your hold was released" in response.content.decode()
    assert Reservation.objects.get(reference=reference).status == ReservationStatus.CANCELLED
    resource.refresh_from_db()
    assert resource.held == 0


def test_confirmed_page_of_another_browser_is_404(client: Client) -> None:
    resource = ResourceFactory(capacity=5)
    reference = hold(client, resource, quantity=1)
    assert Client().get(reverse("bookings:confirmed", args=[reference])).status_code == 404


# Manage and cancel --------------------------------------------------------------------


def booked(resource, **kwargs):
    booking = reservation_book(
        resource_id=resource.pk,
        actor=CUSTOMER,
        customer_name="Grace",
        customer_email="grace@example.com",
        **kwargs,
    )
    return booking.reservation, booking.manage_token


def test_manage_page_shows_the_booking(client: Client) -> None:
    resource = SeatedResourceFactory(name="Opera night")
    reservation, token = booked(resource, seat_ids=seat_ids(resource, "B1", "B2"))
    response = client.get(
        reverse("bookings:manage", args=[reservation.reference]), {"token": token}, follow=True
    )
    html = response.content.decode()
    assert response.status_code == 200
    # The token went to the session; the page is at its bare address.
    assert response.redirect_chain == [(f"/b/{reservation.reference}/", 302)]
    assert "Opera night" in html and "B1, B2" in html and "Confirmed" in html
    assert "Cancel this booking" in html


@pytest.mark.parametrize("token", [None, "", "wrong-token"])
def test_manage_with_wrong_token_is_404(client: Client, token) -> None:
    reservation, _token = booked(ResourceFactory(capacity=5), quantity=1)
    url = reverse("bookings:manage", args=[reservation.reference])
    response = client.get(url, {"token": token} if token is not None else {})
    assert response.status_code == 404
    assert "Page not found" in response.content.decode()
    assert client.get("/b/RSV-NOPE/", {"token": _token}).status_code == 404


def test_cancel_asks_for_confirmation_then_cancels(client: Client) -> None:
    resource = ResourceFactory(capacity=5)
    reservation, token = booked(resource, quantity=2)
    cancel = reverse("bookings:cancel", args=[reservation.reference])

    step = client.get(cancel, {"token": token}, follow=True)
    assert step.status_code == 200
    assert step.redirect_chain == [(cancel, 302)]
    assert "Cancel this booking?" in step.content.decode()
    reservation.refresh_from_db()
    assert reservation.status == ReservationStatus.CONFIRMED

    response = client.post(cancel, {"token": token}, follow=True)
    assert response.status_code == 200
    assert "is cancelled" in response.content.decode()
    reservation.refresh_from_db()
    assert reservation.status == ReservationStatus.CANCELLED
    resource.refresh_from_db()
    assert resource.confirmed == 0

    again = client.post(cancel, {"token": token}, follow=True)
    assert again.status_code == 200
    assert "already cancelled" in again.content.decode()
    resource.refresh_from_db()
    assert resource.confirmed == 0


def test_cancel_with_wrong_token_is_404_and_changes_nothing(client: Client) -> None:
    reservation, _token = booked(ResourceFactory(capacity=5), quantity=1)
    cancel = reverse("bookings:cancel", args=[reservation.reference])
    assert client.post(cancel, {"token": "guess"}).status_code == 404
    assert client.get(cancel, {"token": "guess"}).status_code == 404
    reservation.refresh_from_db()
    assert reservation.status == ReservationStatus.CONFIRMED


# Live availability --------------------------------------------------------------------


def test_live_json_reflects_another_customers_booking(
    client: Client, django_capture_on_commit_callbacks
) -> None:
    resource = SeatedResourceFactory(seats__rows=["A"], seats__per_row=3)
    (a1,) = seat_ids(resource, "A1")
    url = reverse("bookings:live_resource", args=[resource.pk])
    before = client.get(url).json()
    assert before["available"] == 3
    assert {s["status"] for s in before["seats"]} == {"available"}

    with django_capture_on_commit_callbacks(execute=True):  # the cache invalidation
        reservation_book(resource_id=resource.pk, actor=CUSTOMER, seat_ids=[a1])

    after = client.get(url).json()
    assert after["available"] == 2
    assert next(s for s in after["seats"] if s["id"] == a1)["status"] == "booked"


def test_live_resources_json_for_the_home_page(client: Client) -> None:
    first, second = ResourceFactory(capacity=4), ResourceFactory(capacity=2)
    reservation_book(resource_id=second.pk, actor=CUSTOMER, quantity=2)
    data = client.get(
        reverse("bookings:live_resources"), {"ids": f"{first.pk},{second.pk},999999"}
    ).json()
    assert {item["id"]: item["available"] for item in data["results"]} == {
        first.pk: 4,
        second.pk: 0,
    }


def test_live_json_unknown_resource_is_404(client: Client) -> None:
    assert client.get(reverse("bookings:live_resource", args=[999999])).status_code == 404


# Error pages --------------------------------------------------------------------------


def test_unknown_page_is_branded_404_but_api_gets_problem_json(client: Client) -> None:
    page = client.get("/no/such/page/")
    assert page.status_code == 404
    assert "Page not found" in page.content.decode()
    api = client.get("/api/v1/no-such-endpoint/")
    assert api.status_code == 404
    assert api["Content-Type"].startswith("application/problem+json")
    assert api.json()["code"] == "not_found"


def test_server_error_pages(rf) -> None:
    from reservo.error_pages import server_error

    page = server_error(rf.get("/r/something/"))
    assert page.status_code == 500
    assert "Something went wrong" in page.content.decode()
    api = server_error(rf.get("/api/v1/resources/"))
    assert api.status_code == 500
    assert api["Content-Type"].startswith("application/problem+json")
    body = api.content.decode()
    assert "Traceback" not in body and "server_error" in body


def test_browsing_works_in_maintenance_and_the_page_says_bookings_are_paused(
    client: Client,
) -> None:
    resource = ResourceFactory(capacity=5)
    SystemSettings.objects.filter(pk=1).update(
        maintenance_mode=True, maintenance_message="Back at noon."
    )
    assert client.get("/").status_code == 200
    page = client.get(resource_url(resource))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Bookings are paused for maintenance." in html and "Back at noon." in html
