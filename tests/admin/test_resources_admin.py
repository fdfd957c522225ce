"""Resources admin: list with counters, filters, search, create/edit through the services,
seat generation, open/close/cancel actions and the reconciliation page."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bookings.models import Reservation, ReservationEvent, ReservationStatus
from bookings.services import Actor, reservation_book
from reservo.errors import SalesClosed
from resources.models import Resource, ResourceKind, ResourceState, Seat
from tests.conftest import scalar
from tests.factories import ResourceFactory, SeatedResourceFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/resources/resource/"
ADD = "/admin/resources/resource/add/"
CUSTOMER = Actor("customer")


def change_url(resource: Resource) -> str:
    return f"/admin/resources/resource/{resource.pk}/change/"


def form_data(**overrides: Any) -> dict[str, Any]:
    data = {
        "name": "Friday meetup",
        "slug": "",
        "kind": ResourceKind.CAPACITY,
        "capacity": "40",
        "state": ResourceState.OPEN,
        "max_per_booking": "",
        "starts_at_0": "2026-12-04",
        "starts_at_1": "18:00:00",
        "ends_at_0": "",
        "ends_at_1": "",
        "venue": "",
        "description": "",
        "seat_rows": "",
        "seats_per_row": "",
        "seat_labels": "",
    }
    data.update(overrides)
    return data


def edit_data(resource: Resource, **overrides: Any) -> dict[str, Any]:
    resource.refresh_from_db()
    local = resource.starts_at.astimezone() if resource.starts_at else None
    data = form_data(
        name=resource.name,
        capacity=str(resource.capacity),
        state=resource.state,
        starts_at_0=local.strftime("%Y-%m-%d") if local else "",
        starts_at_1=local.strftime("%H:%M:%S") if local else "",
        max_per_booking=resource.max_per_booking or "",
    )
    for key in ("slug", "kind"):
        data.pop(key)
    data.update(overrides)
    return data


def book(resource: Resource, quantity: int = 1, hold: bool = False) -> Reservation:
    return reservation_book(
        resource_id=resource.pk, quantity=quantity, hold=hold, actor=CUSTOMER
    ).reservation


def errors_of(response: Any) -> str:
    assert response.status_code == 200, response.status_code
    adminform = response.context["adminform"]
    return " ".join(str(e) for e in adminform.form.errors.values())


# List ------------------------------------------------------------------------------------


def test_list_shows_counters_and_availability(superuser_client: Client) -> None:
    resource = ResourceFactory(name="Sale day", capacity=10)
    book(resource, 3)
    book(resource, 2, hold=True)

    response = superuser_client.get(CHANGELIST)

    assert response.status_code == 200
    result = response.context["cl"].result_list
    row = next(r for r in result if r.pk == resource.pk)
    admin = response.context["cl"].model_admin
    assert (row.capacity, admin.held_now(row), row.confirmed, admin.available_now(row)) == (
        10,
        2,
        3,
        5,
    )
    html = response.content.decode()
    for header in ("Kind", "State", "Starts at", "Capacity", "Held", "Confirmed", "Available"):
        assert header in html


def test_list_does_not_query_per_row(superuser_client: Client) -> None:
    ResourceFactory.create_batch(2)
    with CaptureQueriesContext(connection) as few:
        assert superuser_client.get(CHANGELIST).status_code == 200
    ResourceFactory.create_batch(20)
    with CaptureQueriesContext(connection) as many:
        assert superuser_client.get(CHANGELIST).status_code == 200
    assert len(many) == len(few)


def test_list_filters_and_search(superuser_client: Client) -> None:
    open_one = ResourceFactory(name="Open jazz night", state=ResourceState.OPEN, capacity=2)
    closed = ResourceFactory(name="Closed tour", state=ResourceState.CLOSED)
    seated = SeatedResourceFactory(name="Seated show")
    full = ResourceFactory(name="Full workshop", capacity=1)
    book(full, 1)

    def names(query: str) -> set[str]:
        response = superuser_client.get(CHANGELIST + query)
        assert response.status_code == 200
        return {r.name for r in response.context["cl"].result_list}

    assert names("?state__exact=closed") == {closed.name}
    assert names("?kind__exact=seated") == {seated.name}
    assert names("?q=jazz") == {open_one.name}
    assert full.name in names("?availability=full")
    assert full.name not in names("?availability=available")
    assert open_one.name in names("?availability=available")


def test_counters_are_read_only_on_the_change_page(superuser_client: Client) -> None:
    resource = ResourceFactory(capacity=10)
    book(resource, 4)
    response = superuser_client.get(change_url(resource))
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert "held" not in form.fields and "confirmed" not in form.fields
    assert "capacity" in form.fields
    html = response.content.decode()
    assert "Counters (read-only)" in html

    data = edit_data(resource, held="999", confirmed="999", name="Renamed")
    assert superuser_client.post(change_url(resource), data).status_code == 302
    resource.refresh_from_db()
    assert (resource.name, resource.held, resource.confirmed) == ("Renamed", 0, 4)


# Create ----------------------------------------------------------------------------------


def test_create_capacity_resource(superuser_client: Client, superuser: Any) -> None:
    response = superuser_client.post(ADD, form_data())
    assert response.status_code == 302
    resource = Resource.objects.get(name="Friday meetup")
    assert (resource.slug, resource.capacity, resource.kind) == ("friday-meetup", 40, "capacity")
    assert (resource.held, resource.confirmed) == (0, 0)
    entry = LogEntry.objects.get(object_id=str(resource.pk))
    assert (entry.action_flag, entry.user_id) == (ADDITION, superuser.pk)


def test_a_new_resource_is_a_draft_until_staff_open_it(superuser_client: Client) -> None:
    page = superuser_client.get(ADD).content.decode()
    assert re.search(r'<option value="draft" selected>', page)
    assert not re.search(r'<option value="open" selected>', page)

    response = superuser_client.post(ADD, form_data(state=ResourceState.DRAFT))
    assert response.status_code == 302
    resource = Resource.objects.get(name="Friday meetup")
    assert resource.state == ResourceState.DRAFT
    assert Client().get(f"/r/{resource.slug}/").status_code == 404

    superuser_client.post(
        CHANGELIST, {"action": "open_resources", "_selected_action": [resource.pk]}
    )
    resource.refresh_from_db()
    assert resource.state == ResourceState.OPEN
    assert Client().get(f"/r/{resource.slug}/").status_code == 200


def test_create_seated_resource_from_rows(superuser_client: Client) -> None:
    data = form_data(
        name="Gala", kind=ResourceKind.SEATED, capacity="", seat_rows="A, B, C", seats_per_row="4"
    )
    assert superuser_client.post(ADD, data).status_code == 302
    resource = Resource.objects.get(name="Gala")
    labels = list(Seat.objects.filter(resource=resource).values_list("label", flat=True))
    assert resource.capacity == 12 == len(labels)
    assert {"A1", "A4", "C4"} <= set(labels)


def test_create_seated_resource_from_labels(superuser_client: Client) -> None:
    data = form_data(
        name="Boat", kind=ResourceKind.SEATED, capacity="", seat_labels="A1, A2\nB1\nVIP"
    )
    assert superuser_client.post(ADD, data).status_code == 302
    resource = Resource.objects.get(name="Boat")
    assert resource.capacity == 4
    assert set(resource.seats.values_list("label", flat=True)) == {"A1", "A2", "B1", "VIP"}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"kind": "seated", "capacity": ""}, "A seated resource needs seats."),
        ({"capacity": ""}, "Capacity must be at least 1."),
        ({"capacity": "0"}, "greater than or equal to 1"),
        ({"max_per_booking": "0"}, "greater than or equal to 1"),
        ({"seat_rows": "A", "seats_per_row": "3"}, "Only a seated resource has seats."),
        (
            {"kind": "seated", "capacity": "", "seat_rows": "A, B", "seat_labels": "A1"},
            "not both",
        ),
        ({"kind": "seated", "capacity": "", "seat_rows": "A, A", "seats_per_row": "2"}, "twice"),
        ({"kind": "seated", "capacity": "", "seat_rows": "A"}, "seats per row"),
        ({"kind": "seated", "capacity": "", "seat_labels": "A1, A1"}, "listed twice"),
        ({"ends_at_0": "2026-12-04", "ends_at_1": "17:00:00"}, "end must be after the start"),
    ],
)
def test_create_refusals_are_form_messages(
    superuser_client: Client, overrides: dict[str, str], message: str
) -> None:
    response = superuser_client.post(ADD, form_data(**overrides))
    assert message in errors_of(response)
    assert not Resource.objects.filter(name="Friday meetup").exists()
    assert not Seat.objects.exists()


def test_create_with_taken_slug_is_refused(superuser_client: Client) -> None:
    ResourceFactory(slug="friday-meetup")
    response = superuser_client.post(ADD, form_data(slug="friday-meetup"))
    assert "slug" in errors_of(response).lower()
    assert Resource.objects.filter(slug="friday-meetup").count() == 1


# Edit ------------------------------------------------------------------------------------


def test_capacity_below_booked_is_a_clear_message(superuser_client: Client) -> None:
    resource = ResourceFactory(capacity=10)
    book(resource, 6)
    book(resource, 2, hold=True)

    response = superuser_client.post(change_url(resource), edit_data(resource, capacity="7"))

    assert "8 places are held or booked; capacity cannot go below that." in errors_of(response)
    resource.refresh_from_db()
    assert resource.capacity == 10
    assert not LogEntry.objects.filter(object_id=str(resource.pk)).exists()


def test_capacity_change_goes_through(superuser_client: Client, superuser: Any) -> None:
    resource = ResourceFactory(capacity=10)
    book(resource, 6)
    response = superuser_client.post(change_url(resource), edit_data(resource, capacity="6"))
    assert response.status_code == 302
    resource.refresh_from_db()
    assert resource.capacity == 6
    entry = LogEntry.objects.get(object_id=str(resource.pk))
    assert entry.action_flag == CHANGE
    assert entry.get_change_message() == "Changed capacity."


def test_seated_capacity_cannot_be_typed(superuser_client: Client) -> None:
    resource = SeatedResourceFactory(seats__rows=["A"], seats__per_row=4)
    response = superuser_client.post(change_url(resource), edit_data(resource, capacity="9"))
    assert "capacity is its number of seats" in errors_of(response)


def test_add_seats_to_a_seated_resource(superuser_client: Client) -> None:
    resource = SeatedResourceFactory(seats__rows=["A"], seats__per_row=4)
    data = edit_data(resource, seat_rows="B", seats_per_row="3")
    assert superuser_client.post(change_url(resource), data).status_code == 302
    resource.refresh_from_db()
    assert resource.capacity == 7
    assert resource.seats.filter(row="B").count() == 3


def test_add_existing_seats_is_refused(superuser_client: Client) -> None:
    resource = SeatedResourceFactory(seats__rows=["A"], seats__per_row=4)
    response = superuser_client.post(change_url(resource), edit_data(resource, seat_labels="A2"))
    assert "Seats already exist: A2." in errors_of(response)
    resource.refresh_from_db()
    assert resource.capacity == 4


def test_capacity_resource_has_no_seat_fields_on_edit(superuser_client: Client) -> None:
    resource = ResourceFactory()
    html = superuser_client.get(change_url(resource)).content.decode()
    assert 'name="seat_rows"' not in html
    seated = SeatedResourceFactory()
    assert 'name="seat_rows"' in superuser_client.get(change_url(seated)).content.decode()


# Actions ---------------------------------------------------------------------------------


def run_action(client: Client, action: str, resources: list[Resource]) -> Any:
    return client.post(
        CHANGELIST,
        {"action": action, "_selected_action": [r.pk for r in resources]},
        follow=True,
    )


def run_confirmed(
    client: Client, action: str, resources: list[Resource], reason: str = "Storm warning"
) -> Any:
    """A destructive action as staff run it: its confirmation page first (which changes
    nothing), then that page's form with a reason."""
    ids = [r.pk for r in resources]
    before = list(Resource.objects.order_by("pk").values())
    page = client.post(CHANGELIST, {"action": action, "_selected_action": ids})
    assert page.status_code == 200
    assert 'name="post" value="yes"' in page.content.decode()
    assert list(Resource.objects.order_by("pk").values()) == before
    return client.post(
        CHANGELIST,
        {"action": action, "post": "yes", "reason": reason, "_selected_action": ids},
        follow=True,
    )


def test_open_and_close_actions(superuser_client: Client) -> None:
    a = ResourceFactory(state=ResourceState.DRAFT)
    b = ResourceFactory(state=ResourceState.OPEN)

    response = run_confirmed(superuser_client, "close_resources", [a, b])
    assert "2 resources set to closed." in response.content.decode()
    assert set(Resource.objects.values_list("state", flat=True)) == {"closed"}

    response = run_action(superuser_client, "open_resources", [a])
    assert "1 resource set to open." in response.content.decode()
    a.refresh_from_db()
    assert a.state == ResourceState.OPEN


def test_cancel_event_cancels_every_active_reservation(superuser_client: Client) -> None:
    resource = ResourceFactory(capacity=10)
    confirmed = [book(resource, 2), book(resource, 1)]
    held = book(resource, 3, hold=True)
    earlier = book(resource, 1)
    from bookings.services import reservation_cancel

    reservation_cancel(reservation_id=earlier.pk, actor=CUSTOMER)
    other = ResourceFactory(capacity=5)
    untouched = book(other, 1)

    response = run_confirmed(superuser_client, "cancel_events", [resource])

    text = response.content.decode()
    assert f"{resource.name} cancelled: 3 reservations cancelled." in text
    resource.refresh_from_db()
    assert resource.state == ResourceState.CANCELLED
    assert (resource.held, resource.confirmed) == (0, 0)
    for reservation in [*confirmed, held]:
        reservation.refresh_from_db()
        assert reservation.status == ReservationStatus.CANCELLED
        event = ReservationEvent.objects.filter(reservation=reservation).latest("id")
        assert (event.to_status, event.actor) == ("cancelled", "staff:boss")
    untouched.refresh_from_db()
    assert untouched.status == ReservationStatus.CONFIRMED
    assert scalar("SELECT count(*) FROM bookings_reservationevent WHERE actor = 'staff:boss'") == 3


# Reconciliation --------------------------------------------------------------------------


def test_reconcile_page_shows_no_drift(superuser_client: Client) -> None:
    resource = ResourceFactory(capacity=5)
    book(resource, 2)
    response = superuser_client.get(CHANGELIST + "reconcile/")
    assert response.status_code == 200
    assert "No drift: every counter equals its recount." in response.content.decode()
    assert response.context["drift"] == []
    assert "Check counters" in superuser_client.get(CHANGELIST).content.decode()


def test_reconcile_page_shows_drift_per_resource(superuser_client: Client) -> None:
    resource = ResourceFactory(name="Drifty", capacity=5)
    book(resource, 2)
    # Corruption by someone who disabled the guard trigger.
    with connection.cursor() as cursor:
        cursor.execute(
            "ALTER TABLE resources_resource DISABLE TRIGGER reservo_resource_counters_guard"
        )
        Resource.objects.filter(pk=resource.pk).update(confirmed=1)
        cursor.execute(
            "ALTER TABLE resources_resource ENABLE TRIGGER reservo_resource_counters_guard"
        )

    response = superuser_client.get(CHANGELIST + "reconcile/")

    assert response.status_code == 200
    [row] = response.context["drift"]
    assert (row["resource"].pk, row["confirmed"], row["expected_confirmed"]) == (resource.pk, 1, 2)
    html = response.content.decode()
    assert "1 resource has counters that differ from its reservations." in html
    assert "Drifty" in html


def test_clerk_views_a_seated_resource_read_only(clerk_client: Client) -> None:
    resource = SeatedResourceFactory(seats__rows=["A"], seats__per_row=4)
    response = clerk_client.get(change_url(resource))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="seat_rows"' not in html and 'name="capacity"' not in html
    assert "Add seats" not in html


def test_cancel_event_again_is_harmless(superuser_client: Client) -> None:
    resource = ResourceFactory(capacity=5)
    book(resource, 1)
    run_confirmed(superuser_client, "cancel_events", [resource])
    response = run_confirmed(superuser_client, "cancel_events", [resource])
    text = response.content.decode()
    assert f"{resource.name} was already cancelled: 0 reservations cancelled." in text
    assert ReservationEvent.objects.filter(to_status="cancelled").count() == 1


def test_staff_close_sales_now(superuser_client: Client) -> None:
    resource = ResourceFactory(sales_open_at=timezone.now() + timedelta(days=1))
    response = run_confirmed(superuser_client, "close_sales_now", [resource])
    assert "Sales closed now for 1 resource." in response.content.decode()
    resource.refresh_from_db()
    assert resource.sales_close_at is not None and resource.sales_open_at is None
    with pytest.raises(SalesClosed):
        reservation_book(resource_id=resource.pk, quantity=1, actor=CUSTOMER)
    change = superuser_client.get(f"/admin/resources/resource/{resource.pk}/change/")
    assert "Sales window" in change.content.decode()
