"""Destructive admin actions ask first: a confirmation page lists what will change and who
will be emailed, takes a reason, and nothing changes until staff confirm; a second submit
of the same confirmation changes nothing twice."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client
from django.utils import timezone

from bookings.models import OutboxMessage, Reservation, ReservationEvent, ReservationStatus
from bookings.services import (
    Actor,
    reservation_book,
    reservation_cancel,
    reservation_check_in,
)
from resources.models import Resource, ResourceState
from tests.conftest import CUSTOMER, outbox_email, run_concurrently
from tests.factories import ResourceFactory

pytestmark = pytest.mark.django_db

RESERVATIONS = "/admin/bookings/reservation/"
RESOURCES = "/admin/resources/resource/"
REASON = "The hall is flooded; we will refund every ticket."


def book(resource: Resource, quantity: int = 1, **kwargs: Any) -> Reservation:
    return reservation_book(
        resource_id=resource.pk, quantity=quantity, actor=CUSTOMER, **kwargs
    ).reservation


def ask(client: Client, url: str, action: str, ids: list[int]) -> Any:
    """The action as the change list's form submits it: the confirmation page."""
    return client.post(url, {"action": action, "index": "0", "_selected_action": ids})


def confirm(client: Client, url: str, action: str, ids: list[int], reason: str = REASON) -> Any:
    """The confirmation page's form submitted."""
    return client.post(
        url,
        {"action": action, "post": "yes", "reason": reason, "_selected_action": ids},
        follow=True,
    )


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def cancelled_history() -> list[tuple[str, str, str]]:
    return list(
        ReservationEvent.objects.filter(to_status=ReservationStatus.CANCELLED)
        .order_by("reservation_id")
        .values_list("reservation__reference", "actor", "reason")
    )


def cancellation_emails() -> list[str]:
    return sorted(
        OutboxMessage.objects.filter(
            event_type="reservation.cancelled", channel="email"
        ).values_list("target", flat=True)
    )


@pytest.fixture
def selection() -> dict[str, Reservation]:
    """Two customers with an address, one without, one already cancelled, one checked in."""
    jazz = ResourceFactory(name="Jazz night", capacity=20)
    tour = ResourceFactory(name="City tour", capacity=20)
    ada = book(jazz, 2, customer_name="Ada Lovelace", customer_email="ada@example.com")
    grace = book(
        tour, 1, hold=True, customer_name="Grace Hopper", customer_email="grace@example.com"
    )
    walk_in = book(jazz, 3, customer_name="Walk-in at the desk")
    gone = book(jazz, 1, customer_name="Alan Turing", customer_email="alan@example.com")
    reservation_cancel(reservation_id=gone.pk, actor=CUSTOMER)
    door = book(jazz, 4, customer_name="Joan Clarke", customer_email="joan@example.com")
    reservation_check_in(reservation_id=door.pk, actor=Actor("staff", "door"))
    return {"ada": ada, "grace": grace, "walk_in": walk_in, "gone": gone, "door": door}


# Cancel reservations ----------------------------------------------------------------------


def test_cancel_asks_first_and_lists_what_will_change(
    superuser_client: Client, selection: dict[str, Reservation]
) -> None:
    ids = [r.pk for r in selection.values()]
    before = dict(Reservation.objects.values_list("id", "status"))

    response = ask(superuser_client, RESERVATIONS, "cancel_reservations", ids)

    assert response.status_code == 200
    assert "admin/bookings/reservation/confirm_cancel.html" in [t.name for t in response.templates]
    page = response.context
    assert [r.reference for r in page["to_cancel"]] == [
        selection[name].reference for name in ("ada", "grace", "walk_in")
    ]
    assert page["places"] == 6
    assert [r.customer_email for r in page["emailed"]] == ["ada@example.com", "grace@example.com"]
    assert [r.reference for r in page["not_emailed"]] == [selection["walk_in"].reference]
    assert {r.reference: note for r, note in page["unchanged"]} == {
        selection["gone"].reference: "already cancelled",
        selection["door"].reference: "checked in: cannot be cancelled",
    }
    html = response.content.decode()
    for name in ("Ada Lovelace", "Grace Hopper", "Walk-in at the desk", "Joan Clarke"):
        assert name in html
    assert "3 reservations will be cancelled, releasing 6 places." in html
    assert 'name="reason"' in html and 'name="post" value="yes"' in html
    # Nothing changed yet.
    assert dict(Reservation.objects.values_list("id", "status")) == before
    assert len(cancelled_history()) == 1  # the customer's own, from the fixture
    assert cancellation_emails() == ["alan@example.com"]


def buttons_of(response: Any) -> list[tuple[str, str, str]]:
    """The confirmation page's controls under its form: (tag, classes, label)."""
    html = response.content.decode()
    row = re.search(r'<div class="submit-row">(.*?)</div>', html, re.S)
    assert row is not None
    controls = re.findall(
        r'<(input) type="submit" class="([^"]*)" value="([^"]*)">'
        r'|<(a) href="#" class="([^"]*)">([^<]*)</a>',
        row.group(1),
    )
    return [(a or d, b or e, c or f) for a, b, c, d, e, f in controls]


def test_the_confirmation_buttons_are_a_matching_pair(
    superuser_client: Client, selection: dict[str, Reservation], event: Resource
) -> None:
    """As on Django's delete confirmation: the confirming button and "No, take me back" are
    both buttons of the same size, side by side."""
    cancel = ask(superuser_client, RESERVATIONS, "cancel_reservations", [selection["ada"].pk])
    assert buttons_of(cancel) == [
        ("input", "button confirm-button", "Yes, cancel it"),
        ("a", "button cancel-link", "No, take me back"),
    ]
    both = [selection["ada"].pk, selection["grace"].pk]
    cancel_both = ask(superuser_client, RESERVATIONS, "cancel_reservations", both)
    assert buttons_of(cancel_both)[0] == ("input", "button confirm-button", "Yes, cancel them")
    events = ask(superuser_client, RESOURCES, "cancel_events", [event.pk])
    close = ask(superuser_client, RESOURCES, "close_sales_now", [event.pk])
    for page in (events, close):
        [(tag, classes, _), back] = buttons_of(page)
        assert (tag, classes) == ("input", "button confirm-button")
        assert back == ("a", "button cancel-link", "No, take me back")
    # With nothing to confirm, the way back is the same button.
    nothing = ask(superuser_client, RESERVATIONS, "cancel_reservations", [selection["gone"].pk])
    assert buttons_of(nothing) == [("a", "button cancel-link", "Back")]


def test_cancel_without_a_reason_changes_nothing(
    superuser_client: Client, selection: dict[str, Reservation]
) -> None:
    ids = [selection["ada"].pk, selection["grace"].pk]

    response = confirm(superuser_client, RESERVATIONS, "cancel_reservations", ids, reason="  ")

    assert response.status_code == 200
    assert response.redirect_chain == []
    assert "This field is required." in response.content.decode()
    assert "admin/bookings/reservation/confirm_cancel.html" in [t.name for t in response.templates]
    statuses = set(Reservation.objects.filter(pk__in=ids).values_list("status", flat=True))
    assert statuses == {"confirmed", "held"}
    assert cancellation_emails() == ["alan@example.com"]


def test_confirmed_cancel_records_the_reason_and_emails_it(
    superuser_client: Client, selection: dict[str, Reservation]
) -> None:
    ids = [r.pk for r in selection.values()]

    response = confirm(superuser_client, RESERVATIONS, "cancel_reservations", ids)

    assert messages_of(response) == [
        "3 cancelled, 1 was already cancelled, 1 is checked in and stays booked."
    ]
    statuses = dict(Reservation.objects.values_list("id", "status"))
    for name in ("ada", "grace", "walk_in", "gone"):
        assert statuses[selection[name].pk] == ReservationStatus.CANCELLED
    assert statuses[selection["door"].pk] == ReservationStatus.CONFIRMED
    assert sorted(cancelled_history()) == sorted(
        [
            (selection["gone"].reference, "customer", ""),
            *(
                (selection[name].reference, "staff:boss", REASON)
                for name in ("ada", "grace", "walk_in")
            ),
        ]
    )
    assert cancellation_emails() == ["ada@example.com", "alan@example.com", "grace@example.com"]
    for name in ("ada", "grace"):
        email = outbox_email(selection[name], "reservation.cancelled")
        assert REASON in email.body
        html = email.alternatives[0].content
        assert "The hall is flooded; we will refund every ticket." in html
        assert "The organiser cancelled your booking" in email.body
    for resource in Resource.objects.all():
        assert (resource.held, resource.confirmed) == (0, 4 if resource.name == "Jazz night" else 0)


def test_a_second_submit_cancels_and_emails_once(
    superuser_client: Client, selection: dict[str, Reservation]
) -> None:
    ids = [selection["ada"].pk, selection["walk_in"].pk]
    first = confirm(superuser_client, RESERVATIONS, "cancel_reservations", ids)
    assert messages_of(first) == ["2 cancelled."]

    # The same page submitted again (a double click, or back and submit).
    again = confirm(superuser_client, RESERVATIONS, "cancel_reservations", ids, reason="Again")

    assert messages_of(again) == ["0 cancelled, 2 were already cancelled."]
    assert [row for row in cancelled_history() if row[1] == "staff:boss"] == [
        (selection["ada"].reference, "staff:boss", REASON),
        (selection["walk_in"].reference, "staff:boss", REASON),
    ]
    assert cancellation_emails() == ["ada@example.com", "alan@example.com"]
    jazz = Resource.objects.get(name="Jazz night")
    assert (jazz.held, jazz.confirmed) == (0, 4)


@pytest.mark.django_db(transaction=True)
def test_two_submits_at_once_cancel_and_email_once(superuser: Any) -> None:
    resource = ResourceFactory(capacity=20)
    ids = [book(resource, 1, customer_email=f"c{n}@example.com").pk for n in range(4)]
    # Two sessions, so that each submit's messages come back to it.
    clients = [Client(), Client()]
    for client in clients:
        client.force_login(superuser)

    def submit(index: int) -> int:
        """How many the submit says it cancelled (read from its page: the test client's
        captured contexts are shared between threads)."""
        html = confirm(clients[index], RESERVATIONS, "cancel_reservations", ids).content
        found = re.search(r'<ul class="messagelist">\s*<li[^>]*>(\d+) cancelled', html.decode())
        assert found, html.decode()
        return int(found.group(1))

    results = run_concurrently(2, submit)

    # Between them, the two submits cancelled each reservation once.
    assert sorted(results) in ([0, 4], [1, 3], [2, 2]), results
    assert len(cancelled_history()) == 4
    assert len(cancellation_emails()) == 4
    resource.refresh_from_db()
    assert (resource.held, resource.confirmed) == (0, 0)


def test_the_second_submit_is_not_hidden_by_the_list_filter(
    superuser_client: Client, selection: dict[str, Reservation]
) -> None:
    """The confirmation posts back to the filtered list; a reservation the first submit
    cancelled no longer matches `status=confirmed`, and is still reported."""
    url = RESERVATIONS + "?status__exact=confirmed"
    ids = [selection["ada"].pk]
    confirm(superuser_client, url, "cancel_reservations", ids)
    again = confirm(superuser_client, url, "cancel_reservations", ids)
    assert messages_of(again) == ["0 cancelled, 1 was already cancelled."]


def test_the_history_on_the_detail_page_shows_the_reason(
    superuser_client: Client, selection: dict[str, Reservation]
) -> None:
    confirm(superuser_client, RESERVATIONS, "cancel_reservations", [selection["ada"].pk])
    page = superuser_client.get(f"{RESERVATIONS}{selection['ada'].pk}/change/")
    assert REASON in page.content.decode()


# Cancel an event --------------------------------------------------------------------------


@pytest.fixture
def event() -> Resource:
    resource = ResourceFactory(name="Summer gala", capacity=30)
    book(resource, 2, customer_name="Ada Lovelace", customer_email="ada@example.com")
    book(resource, 3, hold=True, customer_name="Grace Hopper", customer_email="grace@example.com")
    book(resource, 1, customer_name="Phone booking")
    gone = book(resource, 1, customer_name="Alan Turing", customer_email="alan@example.com")
    reservation_cancel(reservation_id=gone.pk, actor=CUSTOMER)
    door = book(resource, 4, customer_name="Joan Clarke", customer_email="joan@example.com")
    reservation_check_in(reservation_id=door.pk, actor=Actor("staff", "door"))
    return resource


def test_cancel_event_asks_first_and_lists_what_will_change(
    superuser_client: Client, event: Resource
) -> None:
    other = ResourceFactory(name="Quiet evening", capacity=5)

    response = ask(superuser_client, RESOURCES, "cancel_events", [event.pk, other.pk])

    assert response.status_code == 200
    assert "admin/resources/resource/confirm_cancel_events.html" in [
        t.name for t in response.templates
    ]
    [gala, quiet] = response.context["events"]
    assert gala["resource"].pk == event.pk
    assert [r.customer_name for r in gala["to_cancel"]] == [
        "Ada Lovelace",
        "Grace Hopper",
        "Phone booking",
    ]
    assert gala["places"] == 6
    assert [r.customer_email for r in gala["emailed"]] == ["ada@example.com", "grace@example.com"]
    assert [r.customer_name for r in gala["not_emailed"]] == ["Phone booking"]
    assert [r.customer_name for r in gala["checked_in"]] == ["Joan Clarke"]
    assert (quiet["places"], quiet["to_cancel"]) == (0, [])
    html = response.content.decode()
    assert "Summer gala" in html and "Quiet evening" in html
    assert "3 reservations will be cancelled, releasing 6 places." in html
    assert "Joan Clarke" in html
    event.refresh_from_db()
    assert (event.state, event.held, event.confirmed) == (ResourceState.OPEN, 3, 7)
    assert cancellation_emails() == ["alan@example.com"]


def test_cancel_event_without_a_reason_changes_nothing(
    superuser_client: Client, event: Resource
) -> None:
    response = confirm(superuser_client, RESOURCES, "cancel_events", [event.pk], reason="")
    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    event.refresh_from_db()
    assert (event.state, event.held, event.confirmed) == (ResourceState.OPEN, 3, 7)


def test_confirmed_event_cancel_records_the_reason_and_emails_it(
    superuser_client: Client, event: Resource
) -> None:
    response = confirm(superuser_client, RESOURCES, "cancel_events", [event.pk])

    assert messages_of(response) == [
        "Summer gala cancelled: 3 reservations cancelled, 1 checked in stays booked."
    ]
    event.refresh_from_db()
    assert (event.state, event.held, event.confirmed) == (ResourceState.CANCELLED, 0, 4)
    staff_rows = [row for row in cancelled_history() if row[1] == "staff:boss"]
    assert len(staff_rows) == 3 and {row[2] for row in staff_rows} == {REASON}
    assert cancellation_emails() == ["ada@example.com", "alan@example.com", "grace@example.com"]
    ada = Reservation.objects.get(customer_email="ada@example.com")
    email = outbox_email(ada, "reservation.cancelled")
    assert REASON in email.body and REASON in email.alternatives[0].content
    log = LogEntry.objects.get(object_id=str(event.pk))
    assert REASON in log.get_change_message()


def test_a_second_event_cancel_changes_nothing(superuser_client: Client, event: Resource) -> None:
    confirm(superuser_client, RESOURCES, "cancel_events", [event.pk])
    again = confirm(superuser_client, RESOURCES, "cancel_events", [event.pk], reason="Again")

    assert messages_of(again) == [
        "Summer gala was already cancelled: 0 reservations cancelled, 1 checked in stays booked."
    ]
    assert len([row for row in cancelled_history() if row[1] == "staff:boss"]) == 3
    assert cancellation_emails() == ["ada@example.com", "alan@example.com", "grace@example.com"]
    assert LogEntry.objects.filter(object_id=str(event.pk)).count() == 1


# Close sales, close for booking ----------------------------------------------------------


def test_close_sales_asks_first_then_records_the_reason(superuser_client: Client) -> None:
    resource = ResourceFactory(name="Book club", sales_open_at=timezone.now() - timedelta(days=1))
    book(resource, 2, customer_email="ada@example.com")

    page = ask(superuser_client, RESOURCES, "close_sales_now", [resource.pk])

    assert page.status_code == 200
    assert "admin/resources/resource/confirm_close.html" in [t.name for t in page.templates]
    html = page.content.decode()
    assert "Book club" in html and 'name="reason"' in html
    assert "Customers are not emailed" in html
    resource.refresh_from_db()
    assert resource.sales_close_at is None

    done = confirm(superuser_client, RESOURCES, "close_sales_now", [resource.pk], "Sold offline")
    assert messages_of(done) == ["Sales closed now for 1 resource."]
    resource.refresh_from_db()
    closed_at = resource.sales_close_at
    assert closed_at is not None
    assert OutboxMessage.objects.filter(event_type="reservation.cancelled").count() == 0
    [log] = LogEntry.objects.filter(object_id=str(resource.pk))
    assert log.get_change_message() == "Sales closed now. Reason: Sold offline"

    # Again: sales keep the time they closed, and the page says they had closed.
    again = confirm(superuser_client, RESOURCES, "close_sales_now", [resource.pk], "")
    assert messages_of(again) == [
        "Sales closed now for 0 resources.",
        "Sales of 1 resource had closed already; they keep their closing time.",
    ]
    resource.refresh_from_db()
    assert resource.sales_close_at == closed_at
    assert LogEntry.objects.filter(object_id=str(resource.pk)).count() == 1


def test_close_for_booking_asks_first(superuser_client: Client) -> None:
    resource = ResourceFactory(name="Pottery class", state=ResourceState.OPEN)

    page = ask(superuser_client, RESOURCES, "close_resources", [resource.pk])

    assert page.status_code == 200
    assert "Pottery class" in page.content.decode()
    resource.refresh_from_db()
    assert resource.state == ResourceState.OPEN
    done = confirm(superuser_client, RESOURCES, "close_resources", [resource.pk], reason="")
    assert messages_of(done) == ["1 resource set to closed."]
    resource.refresh_from_db()
    assert resource.state == ResourceState.CLOSED
    [log] = LogEntry.objects.filter(object_id=str(resource.pk))
    assert (log.get_change_message(), log.user.get_username()) == ("Closed for booking.", "boss")
    again = confirm(superuser_client, RESOURCES, "close_resources", [resource.pk], reason="")
    assert messages_of(again) == ["0 resources set to closed.", "1 resource was already closed."]
    assert LogEntry.objects.filter(object_id=str(resource.pk)).count() == 1
