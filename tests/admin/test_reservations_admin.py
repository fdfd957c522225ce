"""Reservations admin: list, filters, search, read-only detail with history, actions through
the services with per-row results, CSV export of the filtered list."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from bookings.models import Reservation, ReservationEvent, ReservationStatus
from bookings.services import Actor, reservation_book, reservation_cancel
from resources.models import Resource
from tests.conftest import scalar
from tests.factories import ResourceFactory, SeatedResourceFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/bookings/reservation/"
EXPORT = "/admin/bookings/reservation/export.csv"
CUSTOMER = Actor("customer")


def book(resource: Resource, quantity: int = 1, hold: bool = False, **kwargs: Any) -> Reservation:
    return reservation_book(
        resource_id=resource.pk, quantity=quantity, hold=hold, actor=CUSTOMER, **kwargs
    ).reservation


def detail_url(reservation: Reservation) -> str:
    return f"{CHANGELIST}{reservation.pk}/change/"


def references(client: Client, query: str = "") -> set[str]:
    response = client.get(CHANGELIST + query)
    assert response.status_code == 200
    return {r.reference for r in response.context["cl"].result_list}


def run_action(client: Client, action: str, reservations: list[Reservation]) -> Any:
    return client.post(
        CHANGELIST,
        {"action": action, "_selected_action": [r.pk for r in reservations]},
        follow=True,
    )


def cancel_confirmed(client: Client, reservations: list[Reservation]) -> Any:
    """The cancel action as staff run it: its confirmation page first (which changes
    nothing), then that page's form with a reason."""
    ids = [r.pk for r in reservations]
    before = dict(Reservation.objects.values_list("id", "status"))
    page = client.post(CHANGELIST, {"action": "cancel_reservations", "_selected_action": ids})
    assert page.status_code == 200
    assert 'name="post" value="yes"' in page.content.decode()
    assert dict(Reservation.objects.values_list("id", "status")) == before
    return client.post(
        CHANGELIST,
        {
            "action": "cancel_reservations",
            "post": "yes",
            "reason": "Double booking",
            "_selected_action": ids,
        },
        follow=True,
    )


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_list_shows_booking_details(superuser_client: Client) -> None:
    show = SeatedResourceFactory(name="Gala", seats__rows=["A"], seats__per_row=3)
    seats = list(show.seats.order_by("number").values_list("id", flat=True))[:2]
    seated = reservation_book(
        resource_id=show.pk, seat_ids=seats, actor=CUSTOMER, customer_name="Ada Lovelace"
    ).reservation
    response = superuser_client.get(CHANGELIST)
    assert response.status_code == 200
    html = response.content.decode()
    for text in (seated.reference, "Gala", "Ada Lovelace", "A1, A2", "Confirmed"):
        assert text in html
    for header in ("Reference", "Resource", "Quantity", "Seats", "Status", "Created at"):
        assert header in html


def test_list_does_not_query_per_row(superuser_client: Client) -> None:
    show = SeatedResourceFactory(seats__rows=["A", "B", "C"], seats__per_row=10)
    seat_ids = list(show.seats.values_list("id", flat=True))
    reservation_book(resource_id=show.pk, seat_ids=seat_ids[:1], actor=CUSTOMER)
    with CaptureQueriesContext(connection) as few:
        superuser_client.get(CHANGELIST)
    for seat_id in seat_ids[1:20]:
        reservation_book(resource_id=show.pk, seat_ids=[seat_id], actor=CUSTOMER)
    with CaptureQueriesContext(connection) as many:
        superuser_client.get(CHANGELIST)
    assert len(many) == len(few)


def test_filters_and_search(superuser_client: Client) -> None:
    jazz = ResourceFactory(name="Jazz")
    tour = ResourceFactory(name="Tour")
    ada = book(jazz, customer_name="Ada Lovelace", customer_email="ada@example.com")
    held = book(jazz, hold=True, customer_name="Grace Hopper", customer_email="grace@navy.mil")
    on_tour = book(tour, customer_name="Alan", customer_email="alan@example.org")
    reservation_cancel(reservation_id=on_tour.pk, actor=CUSTOMER)

    assert references(superuser_client, "?status__exact=held") == {held.reference}
    assert references(superuser_client, "?status__exact=cancelled") == {on_tour.reference}
    assert references(superuser_client, f"?resource__id__exact={jazz.pk}") == {
        ada.reference,
        held.reference,
    }
    assert references(superuser_client, "?created_at__gte=2000-01-01+00:00:00%2B00:00") == {
        ada.reference,
        held.reference,
        on_tour.reference,
    }
    assert references(superuser_client, "?created_at__lt=2000-01-01+00:00:00%2B00:00") == set()
    assert references(superuser_client, f"?q={ada.reference}") == {ada.reference}
    assert references(superuser_client, f"?q={ada.reference.lower()}") == {ada.reference}
    assert references(superuser_client, "?q=grace@navy.mil") == {held.reference}
    assert references(superuser_client, "?q=lovelace") == {ada.reference}


def test_detail_is_read_only_with_history(superuser_client: Client) -> None:
    resource = ResourceFactory()
    reservation = book(resource, 2, hold=True, customer_name="Ada")
    from bookings.services import reservation_confirm

    reservation_confirm(reservation_id=reservation.pk, actor=CUSTOMER)
    reservation_cancel(reservation_id=reservation.pk, actor=Actor("staff", "boss"))

    response = superuser_client.get(detail_url(reservation))

    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="status"' not in html and 'name="quantity"' not in html
    assert 'name="_save"' not in html
    inline = response.context["inline_admin_formsets"][0]
    events = [(f.original.from_status, f.original.to_status, f.original.actor) for f in inline]
    assert events == [
        ("", "held", "customer"),
        ("held", "confirmed", "customer"),
        ("confirmed", "cancelled", "staff:boss"),
    ]
    assert "staff:boss" in html

    # A forged POST changes nothing.
    response = superuser_client.post(detail_url(reservation), {"status": "confirmed"})
    assert response.status_code == 403
    reservation.refresh_from_db()
    assert reservation.status == ReservationStatus.CANCELLED


def test_no_add_and_no_delete(superuser_client: Client) -> None:
    reservation = book(ResourceFactory())
    assert superuser_client.get(CHANGELIST + "add/").status_code == 403
    assert superuser_client.post(CHANGELIST + f"{reservation.pk}/delete/").status_code == 403
    response = superuser_client.get(CHANGELIST)
    actions = [choice[0] for choice in response.context["action_form"].fields["action"].choices]
    assert "delete_selected" not in actions
    assert {"cancel_reservations", "confirm_reservations"} <= set(actions)
    assert Reservation.objects.count() == 1


def test_cancel_action_reports_each_row(superuser_client: Client) -> None:
    resource = ResourceFactory(capacity=10)
    active = [book(resource, 1), book(resource, 2), book(resource, 1, hold=True)]
    gone = book(resource, 1)
    reservation_cancel(reservation_id=gone.pk, actor=CUSTOMER)

    response = cancel_confirmed(superuser_client, [*active, gone])

    assert messages_of(response) == ["3 cancelled, 1 was already cancelled."]
    assert set(Reservation.objects.values_list("status", flat=True)) == {"cancelled"}
    resource.refresh_from_db()
    assert (resource.held, resource.confirmed) == (0, 0)
    assert ReservationEvent.objects.filter(actor="staff:boss", to_status="cancelled").count() == 3


def test_confirm_action_reports_each_row(superuser_client: Client) -> None:
    resource = ResourceFactory(capacity=10)
    holds = [book(resource, 1, hold=True), book(resource, 2, hold=True)]
    already = book(resource, 1)
    expired = book(resource, 1, hold=True)
    Reservation.objects.filter(pk=expired.pk).update(
        hold_expires_at=expired.created_at  # past: the service must refuse it
    )

    response = run_action(superuser_client, "confirm_reservations", [*holds, already, expired])

    assert messages_of(response) == ["2 confirmed, 1 was already confirmed, 1 was already expired."]
    statuses = dict(Reservation.objects.values_list("id", "status"))
    assert [statuses[r.pk] for r in holds] == ["confirmed", "confirmed"]
    assert statuses[expired.pk] == "expired"
    resource.refresh_from_db()
    assert (resource.held, resource.confirmed) == (0, 4)


def test_csv_export_of_the_filtered_list(superuser_client: Client) -> None:
    jazz = ResourceFactory(name="Jazz")
    tour = ResourceFactory(name="Tour")
    first = book(jazz, 2, customer_name="=HYPERLINK(1)", customer_email="ada@example.com")
    second = book(jazz, 1, hold=True)
    book(tour, 1)

    response = superuser_client.get(EXPORT + f"?resource__id__exact={jazz.pk}")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert {r["reference"] for r in rows} == {first.reference, second.reference}
    by_reference = {r["reference"]: r for r in rows}
    assert by_reference[first.reference]["quantity"] == "2"
    assert by_reference[first.reference]["status"] == "confirmed"
    assert by_reference[first.reference]["customer_name"] == "'=HYPERLINK(1)"
    assert by_reference[second.reference]["hold_expires_at"]

    searched = superuser_client.get(EXPORT + "?q=ada@example.com&status__exact=confirmed")
    rows = list(csv.DictReader(io.StringIO(b"".join(searched.streaming_content).decode())))
    assert [r["reference"] for r in rows] == [first.reference]

    page = superuser_client.get(CHANGELIST + "?status__exact=held").content.decode()
    assert "export.csv?status__exact=held" in page


def test_csv_export_with_unknown_filter_is_a_bad_request(superuser_client: Client) -> None:
    assert superuser_client.get(EXPORT + "?nonsense__exact=1").status_code == 400


def test_clerk_can_view_and_cancel_but_not_confirm(clerk_client: Client) -> None:
    resource = ResourceFactory(capacity=5)
    confirmed = book(resource, 1)
    held = book(resource, 1, hold=True)

    assert clerk_client.get(CHANGELIST).status_code == 200
    assert clerk_client.get(detail_url(confirmed)).status_code == 200
    assert clerk_client.get(EXPORT).status_code == 200
    actions = [
        c[0] for c in clerk_client.get(CHANGELIST).context["action_form"].fields["action"].choices
    ]
    assert "cancel_reservations" in actions and "confirm_reservations" not in actions

    response = run_action(clerk_client, "confirm_reservations", [held])
    assert Reservation.objects.get(pk=held.pk).status == ReservationStatus.HELD
    assert messages_of(response) == ["No action selected."]

    response = cancel_confirmed(clerk_client, [confirmed])
    assert messages_of(response) == ["1 cancelled."]
    assert (
        scalar(
            "SELECT actor FROM bookings_reservationevent WHERE reservation_id = %s"
            " AND to_status = 'cancelled'",
            [confirmed.pk],
        )
        == "staff:clerk"
    )


def test_clerk_cannot_touch_resources_settings_or_api_clients(clerk_client: Client) -> None:
    resource = ResourceFactory(capacity=5)
    assert clerk_client.get("/admin/resources/resource/").status_code == 200
    view = clerk_client.get(f"/admin/resources/resource/{resource.pk}/change/")
    assert view.status_code == 200
    assert 'name="capacity"' not in view.content.decode()
    assert (
        clerk_client.post(
            f"/admin/resources/resource/{resource.pk}/change/", {"capacity": "1"}
        ).status_code
        == 403
    )
    assert clerk_client.get("/admin/resources/resource/add/").status_code == 403
    response = clerk_client.post(
        "/admin/resources/resource/",
        {"action": "cancel_events", "_selected_action": [resource.pk]},
        follow=True,
    )
    resource.refresh_from_db()
    assert (resource.capacity, resource.state) == (5, "open")
    assert clerk_client.get("/admin/settings_app/systemsettings/1/change/").status_code == 403
    assert clerk_client.post("/admin/settings_app/systemsettings/1/change/", {}).status_code == 403
    assert clerk_client.get("/admin/bookings/apiclient/").status_code == 403
    assert clerk_client.get("/admin/bookings/apiclient/add/").status_code == 403
    assert response.status_code == 200


def test_detail_shows_the_check_in(superuser_client: Client) -> None:
    from bookings.services import reservation_check_in

    reservation = book(ResourceFactory(), 2, customer_name="Ada")
    before = detail_fields(superuser_client, reservation)
    assert (before["checked in at"], before["checked in by"]) == ("-", "-")

    reservation_check_in(reservation_id=reservation.pk, actor=Actor("staff", "Sam"))

    after = detail_fields(superuser_client, reservation)
    assert after["checked in by"] == "Sam"
    assert after["checked in at"] not in ("", "-")
    labels = list(after)
    assert (
        labels.index("confirmed at") < labels.index("checked in at") < labels.index("cancelled at")
    )


def detail_fields(client: Client, reservation: Reservation) -> dict[str, str]:
    """The detail page's fields, label (as the model names it) to shown value, in order."""
    response = client.get(detail_url(reservation))
    assert response.status_code == 200
    return {
        str(field.field["label"]): str(field.contents())
        for fieldset in response.context["adminform"]
        for line in fieldset
        for field in line
    }


def test_cancel_from_the_reservation_page(superuser_client: Client) -> None:
    ada = book(ResourceFactory(), 2, customer_name="Ada", customer_email="ada@example.com")
    cancel_url = f"{CHANGELIST}{ada.pk}/cancel/"
    assert f'href="{cancel_url}"' in superuser_client.get(detail_url(ada)).content.decode()

    # First the list action's confirmation page, for this booking alone.
    page = superuser_client.get(cancel_url)
    assert page.status_code == 200
    assert [r.pk for r in page.context["to_cancel"]] == [ada.pk]
    assert [r.pk for r in page.context["emailed"]] == [ada.pk]
    form = {"action": "cancel_reservations", "post": "yes", "_selected_action": [ada.pk]}
    assert superuser_client.post(cancel_url, {**form, "reason": ""}).status_code == 200
    ada.refresh_from_db()
    assert ada.status == ReservationStatus.CONFIRMED

    # Another reservation's id slipped into the form is refused.
    other = book(ResourceFactory(), 1)
    forged = {**form, "_selected_action": [ada.pk, other.pk], "reason": "Ill"}
    assert superuser_client.post(cancel_url, forged).status_code == 400

    response = superuser_client.post(cancel_url, {**form, "reason": "Ill"})
    assert response.status_code == 302
    assert response["Location"] == detail_url(ada)
    ada.refresh_from_db()
    other.refresh_from_db()
    assert (ada.status, other.status) == (ReservationStatus.CANCELLED, ReservationStatus.CONFIRMED)
    last = ReservationEvent.objects.filter(reservation=ada).order_by("id").last()
    assert last is not None and (last.actor, last.reason) == ("staff:boss", "Ill")
    page = superuser_client.get(detail_url(ada))
    # One booking, from its page: named, not counted (the list's action counts).
    assert [str(m) for m in page.context["messages"]] == [f"{ada.reference} was cancelled."]
    assert cancel_url not in page.content.decode()


def test_no_cancel_on_the_page_of_a_checked_in_booking(superuser_client: Client) -> None:
    from bookings.services import reservation_check_in

    ada = book(ResourceFactory(), 2, customer_name="Ada")
    reservation_check_in(reservation_id=ada.pk, actor=Actor("staff", "Sam"))
    assert f"{ada.pk}/cancel/" not in superuser_client.get(detail_url(ada)).content.decode()
