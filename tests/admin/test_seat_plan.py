"""The staff seat plan: who holds each seat, blocking and releasing seats, the printable
seating list, and who may do what."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from bookings.models import Reservation, ReservationEvent, ReservationStatus
from bookings.services import Actor, reservation_book, reservation_check_in
from resources.models import Resource
from resources.selectors import seat_map, seat_plan
from tests.admin.conftest import PASSWORD
from tests.factories import ResourceFactory, SeatedResourceFactory

pytestmark = pytest.mark.django_db

CUSTOMER = Actor("customer")
STAFF = Actor("staff", "sam")


def seat_ids(resource: Resource, *labels: str) -> list[int]:
    by_label = dict(resource.seats.values_list("label", "pk"))
    return [by_label[label] for label in labels]


def plan_url(resource: Resource) -> str:
    return reverse("admin:resources_resource_seat_plan", args=[resource.pk])


def list_url(resource: Resource) -> str:
    return reverse("admin:resources_resource_seat_list", args=[resource.pk])


def seat_label_tag(html: str, label: str) -> str:
    match = re.search(rf'<label [^>]*data-seat-label="{label}"[^>]*>', html)
    assert match, f"no seat {label} on the page"
    return match.group(0)


def seat_input_tag(html: str, resource: Resource, label: str) -> str:
    (seat_id,) = seat_ids(resource, label)
    match = re.search(rf'<input [^>]*id="seat-{seat_id}"[^>]*>', html)
    assert match
    return match.group(0)


def messages_of(response: Any) -> list[str]:
    """The messages shown on the page a POST was redirected to."""
    assert [url for url, _status in response.redirect_chain] == [response.request["PATH_INFO"]]
    return [str(message) for message in response.context["messages"]]


def public_statuses(resource: Resource) -> dict[str, str]:
    return {seat["label"]: seat["status"] for seat in seat_map(resource.pk)}


@pytest.fixture
def show() -> Resource:
    return SeatedResourceFactory(name="Opera gala", seats__rows=["A", "B"], seats__per_row=4)


@pytest.fixture
def full_house(show: Resource) -> dict[str, Reservation]:
    """A1-A2 booked by Ada, A3 held by Grace, B1-B2 blocked, B4 booked and checked in."""
    booked = reservation_book(
        resource_id=show.pk,
        actor=CUSTOMER,
        seat_ids=seat_ids(show, "A1", "A2"),
        customer_name="Ada Lovelace",
        customer_email="ada@example.com",
    ).reservation
    held = reservation_book(
        resource_id=show.pk,
        actor=CUSTOMER,
        seat_ids=seat_ids(show, "A3"),
        hold=True,
        customer_name="Grace Hopper",
    ).reservation
    blocked = reservation_book(
        resource_id=show.pk,
        actor=STAFF,
        seat_ids=seat_ids(show, "B1", "B2"),
        block=True,
        note="Press",
    ).reservation
    arrived = reservation_book(
        resource_id=show.pk,
        actor=CUSTOMER,
        seat_ids=seat_ids(show, "B4"),
        customer_name="Alan Turing",
    ).reservation
    reservation_check_in(reservation_id=arrived.pk, actor=STAFF)
    return {"booked": booked, "held": held, "blocked": blocked, "arrived": arrived}


def user_with(*codenames: str) -> Any:
    user = get_user_model().objects.create_user("desk", "desk@example.com", PASSWORD)
    user.is_staff = True
    user.save()
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label__in=["bookings", "resources"], codename__in=codenames
        )
    )
    return user


def logged_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


# The plan -------------------------------------------------------------------------------


def test_the_plan_shows_each_seat_status_and_who_holds_it(
    superuser_client: Client, show: Resource, full_house: dict[str, Reservation]
) -> None:
    response = superuser_client.get(plan_url(show))
    assert response.status_code == 200
    html = response.content.decode()
    expected = {
        "A1": "booked",
        "A2": "booked",
        "A3": "held",
        "A4": "available",
        "B1": "blocked",
        "B2": "blocked",
        "B3": "available",
        "B4": "checked_in",
    }
    for label, status in expected.items():
        assert f"seat--{status}" in seat_label_tag(html, label), label
    ada = full_house["booked"]
    a1 = seat_label_tag(html, "A1")
    assert f'data-reservation="{ada.pk}"' in a1
    assert ada.reference in a1 and "Ada Lovelace" in a1 and "2 places" in a1
    assert "Press" in seat_label_tag(html, "B1")
    # Free and blocked seats can be picked (to block, to release); taken ones cannot.
    assert "disabled" not in seat_input_tag(html, show, "A4")
    assert "disabled" not in seat_input_tag(html, show, "B1")
    assert "disabled" in seat_input_tag(html, show, "A1")
    assert "disabled" in seat_input_tag(html, show, "A3")
    # Each booking links to its admin page.
    for reservation in full_house.values():
        change = reverse("admin:bookings_reservation_change", args=[reservation.pk])
        assert f'href="{change}"' in html
    counts = dict(re.findall(r'data-status="(\w+)">.*?legend__count">(\d+)<', html))
    assert counts == {
        "available": "2",
        "held": "1",
        "blocked": "2",
        "booked": "2",
        "checked_in": "1",
    }


def test_the_plan_is_read_from_the_database_in_three_queries(
    show: Resource, full_house: dict[str, Reservation], django_assert_num_queries: Any
) -> None:
    seat_map(show.pk)  # a cached read first: the plan must not use it
    reservation_book(
        resource_id=show.pk, actor=CUSTOMER, seat_ids=seat_ids(show, "A4"), customer_name="Zed"
    )
    with django_assert_num_queries(3):
        plan = seat_plan(show.pk)
    assert plan is not None
    statuses = {seat["label"]: seat["status"] for seat in plan.seats}
    assert statuses["A4"] == "booked"
    by_reference = {holder["reference"]: holder for holder in plan.holders}
    assert by_reference[full_house["blocked"].reference]["seat_labels"] == ["B1", "B2"]
    assert by_reference[full_house["booked"].reference]["name"] == "Ada Lovelace"


def test_an_expired_hold_shows_its_seat_as_free(show: Resource) -> None:
    held = reservation_book(
        resource_id=show.pk, actor=CUSTOMER, seat_ids=seat_ids(show, "A1"), hold=True
    ).reservation
    Reservation.objects.filter(pk=held.pk).update(hold_expires_at=held.created_at)
    plan = seat_plan(show.pk)
    assert plan is not None
    assert plan.seats[0]["status"] == "available" and plan.holders == []


def test_the_change_page_links_to_the_plan_of_a_seated_resource_only(
    superuser_client: Client, show: Resource
) -> None:
    change = reverse("admin:resources_resource_change", args=[show.pk])
    assert f'href="{plan_url(show)}"' in superuser_client.get(change).content.decode()
    meetup = ResourceFactory()
    change = reverse("admin:resources_resource_change", args=[meetup.pk])
    assert "seat-plan" not in superuser_client.get(change).content.decode()
    assert superuser_client.get(plan_url(meetup)).status_code == 404


# Blocking and releasing -----------------------------------------------------------------


def test_staff_block_seats_then_release_them(
    superuser_client: Client, show: Resource, django_capture_on_commit_callbacks: Any
) -> None:
    response = superuser_client.post(
        plan_url(show),
        {"action": "block", "seats": seat_ids(show, "A2", "A3"), "note": "Sound desk"},
        follow=True,
    )
    block = Reservation.objects.get(resource=show)
    assert (block.blocked, block.status, block.note, block.hold_expires_at) == (
        True,
        ReservationStatus.HELD,
        "Sound desk",
        None,
    )
    assert messages_of(response) == [f"Seats A2, A3 blocked ({block.reference})."]
    show.refresh_from_db()
    assert (show.held, show.confirmed) == (2, 0)
    assert public_statuses(show)["A2"] == "held"
    assert ReservationEvent.objects.filter(reservation=block, actor="staff:boss").exists()

    with django_capture_on_commit_callbacks(execute=True):  # the cache invalidation
        response = superuser_client.post(
            plan_url(show), {"action": "unblock", "seats": seat_ids(show, "A2", "A3")}, follow=True
        )
    assert messages_of(response) == ["Seats A2, A3 released."]
    block.refresh_from_db()
    assert block.status == ReservationStatus.CANCELLED
    show.refresh_from_db()
    assert (show.held, show.confirmed) == (0, 0)
    assert set(public_statuses(show).values()) == {"available"}


def test_releasing_part_of_a_block_keeps_the_rest_blocked(
    superuser_client: Client, show: Resource
) -> None:
    superuser_client.post(
        plan_url(show),
        {"action": "block", "seats": seat_ids(show, "A1", "A2", "A3"), "note": "VIP"},
        follow=True,
    )
    first = Reservation.objects.get(resource=show)
    response = superuser_client.post(
        plan_url(show), {"action": "unblock", "seats": seat_ids(show, "A2")}, follow=True
    )
    first.refresh_from_db()
    assert first.status == ReservationStatus.CANCELLED
    rest = Reservation.objects.get(resource=show, status=ReservationStatus.HELD)
    assert (rest.blocked, rest.note, rest.quantity) == (True, "VIP", 2)
    assert sorted(rest.seat_links.values_list("seat__label", flat=True)) == ["A1", "A3"]
    assert messages_of(response) == [
        f"Seat A2 released. The other seats of its block stay blocked ({rest.reference})."
    ]
    show.refresh_from_db()
    assert show.held == 2
    assert public_statuses(show) == {
        **{label: "available" for label in ("A2", "A4", "B1", "B2", "B3", "B4")},
        "A1": "held",
        "A3": "held",
    }


def test_blocking_a_seat_just_taken_is_refused_and_names_it(
    superuser_client: Client, show: Resource
) -> None:
    reservation_book(resource_id=show.pk, actor=CUSTOMER, seat_ids=seat_ids(show, "A2"))
    response = superuser_client.post(
        plan_url(show), {"action": "block", "seats": seat_ids(show, "A1", "A2")}, follow=True
    )
    assert messages_of(response) == ["Seats already taken: A2. Nothing was changed."]
    assert not Reservation.objects.filter(resource=show, blocked=True).exists()
    show.refresh_from_db()
    assert (show.held, show.confirmed) == (0, 1)


def test_releasing_a_seat_that_is_not_blocked_is_refused_and_names_it(
    superuser_client: Client, show: Resource
) -> None:
    reservation_book(resource_id=show.pk, actor=STAFF, seat_ids=seat_ids(show, "A1"), block=True)
    reservation_book(resource_id=show.pk, actor=CUSTOMER, seat_ids=seat_ids(show, "A2"))
    response = superuser_client.post(
        plan_url(show),
        {"action": "unblock", "seats": seat_ids(show, "A1", "A2", "A3")},
        follow=True,
    )
    assert messages_of(response) == ["These seats are not blocked: A2, A3. Nothing was changed."]
    assert Reservation.objects.filter(resource=show, blocked=True, status="held").count() == 1


def test_a_post_without_seats_changes_nothing(superuser_client: Client, show: Resource) -> None:
    response = superuser_client.post(plan_url(show), {"action": "block"}, follow=True)
    assert messages_of(response) == ["Choose at least one seat."]
    assert not Reservation.objects.exists()


# Permissions ----------------------------------------------------------------------------


def test_a_clerk_sees_the_plan_but_may_not_block_or_release(
    clerk_client: Client, show: Resource
) -> None:
    (a1,) = seat_ids(show, "A1")
    response = clerk_client.get(plan_url(show))
    assert response.status_code == 200
    assert 'value="block"' not in response.content.decode()
    assert clerk_client.post(plan_url(show), {"action": "block", "seats": [a1]}).status_code == 403
    block = reservation_book(resource_id=show.pk, actor=STAFF, seat_ids=[a1], block=True)
    assert (
        clerk_client.post(plan_url(show), {"action": "unblock", "seats": [a1]}).status_code == 403
    )
    block.reservation.refresh_from_db()
    assert block.reservation.status == ReservationStatus.HELD
    assert Reservation.objects.count() == 1


def test_blocking_needs_add_and_releasing_needs_change_permission(show: Resource) -> None:
    (a1,) = seat_ids(show, "A1")
    desk = logged_in(user_with("view_resource", "view_reservation", "add_reservation"))
    assert desk.post(plan_url(show), {"action": "block", "seats": [a1]}).status_code == 302
    assert Reservation.objects.filter(resource=show, blocked=True, status="held").exists()
    assert desk.post(plan_url(show), {"action": "unblock", "seats": [a1]}).status_code == 403
    assert Reservation.objects.filter(resource=show, blocked=True, status="held").exists()


def test_staff_who_may_not_see_reservations_do_not_see_the_plan(show: Resource) -> None:
    desk = logged_in(user_with("view_resource"))
    assert desk.get(plan_url(show)).status_code == 403
    assert desk.get(list_url(show)).status_code == 403
    change = reverse("admin:resources_resource_change", args=[show.pk])
    assert "seat-plan" not in desk.get(change).content.decode()


def test_anonymous_visitors_are_sent_to_the_login(show: Resource) -> None:
    response = Client().get(plan_url(show))
    assert response.status_code == 302 and "/login/" in response["Location"]


# The printable list ---------------------------------------------------------------------


def rows_of(html: str) -> list[list[str]]:
    body = html.split('id="seat-list"', 1)[1]
    rows = []
    for row in re.findall(r'<tr class="seat-list__line[^"]*">(.*?)</tr>', body, re.S):
        cells = re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
        rows.append([re.sub(r"<[^>]+>", "", cell).strip() for cell in cells])
    return rows


def test_the_seating_list_by_seat(
    superuser_client: Client, show: Resource, full_house: dict[str, Reservation]
) -> None:
    response = superuser_client.get(list_url(show))
    assert response.status_code == 200
    html = response.content.decode()
    assert "@media print" not in html  # the print styles come with the stylesheet
    assert "reservo/seat-list.css" in html
    rows = rows_of(html)
    assert [row[0] for row in rows] == ["A1", "A2", "A3", "A4", "B1", "B2", "B3", "B4"]
    ada, held = full_house["booked"].reference, full_house["held"].reference
    assert rows[0] == ["A1", ada, "Ada Lovelace", "Booked", "☐"]
    assert rows[2] == ["A3", held, "Grace Hopper", "Held", ""]
    assert rows[3] == ["A4", "", "", "Available", ""]
    assert rows[4] == ["B1", full_house["blocked"].reference, "House block (Press)", "Blocked", ""]
    assert rows[7] == ["B4", full_house["arrived"].reference, "Alan Turing", "Checked in", "✓"]


def test_the_seating_list_by_name(
    superuser_client: Client, show: Resource, full_house: dict[str, Reservation]
) -> None:
    html = superuser_client.get(list_url(show) + "?order=name").content.decode()
    rows = rows_of(html)
    assert [row[0] for row in rows] == [
        "Ada Lovelace",
        "Alan Turing",
        "Grace Hopper",
        "House block (Press)",
    ]
    assert rows[0] == ["Ada Lovelace", full_house["booked"].reference, "A1, A2", "Booked", "☐"]
    assert rows[1][3:] == ["Checked in", "✓"]


def test_the_seating_list_prints_without_its_links() -> None:
    from django.contrib.staticfiles import finders

    path = finders.find("reservo/seat-list.css")
    assert path
    with open(path, encoding="utf-8") as stylesheet:
        css = stylesheet.read()
    print_rules = css.split("@media print", 1)[1]
    assert ".no-print { display: none" in print_rules


# Blocks elsewhere in the admin ----------------------------------------------------------


def test_the_reservations_list_shows_a_block_as_blocked(
    superuser_client: Client, show: Resource
) -> None:
    block = reservation_book(
        resource_id=show.pk, actor=STAFF, seat_ids=seat_ids(show, "A1"), block=True
    ).reservation
    held = reservation_book(
        resource_id=show.pk, actor=CUSTOMER, seat_ids=seat_ids(show, "A2"), hold=True
    ).reservation
    html = superuser_client.get(reverse("admin:bookings_reservation_changelist")).content.decode()

    def status_cell(reference: str) -> str:
        row = re.search(rf"<tr>(?:(?!</tr>).)*{reference}(?:(?!</tr>).)*</tr>", html, re.S)
        assert row, reference
        cell = re.search(r'<td class="field-status_shown">(.*?)</td>', row.group(0))
        assert cell
        return cell.group(1)

    assert status_cell(block.reference) == "Blocked"
    assert status_cell(held.reference) == "Held"
    blocks_only = superuser_client.get(
        reverse("admin:bookings_reservation_changelist"), {"blocked__exact": "1"}
    ).content.decode()
    assert block.reference in blocks_only and held.reference not in blocks_only


def test_the_seating_list_as_csv(
    superuser_client: Client, show: Resource, full_house: dict[str, Reservation]
) -> None:
    show.seats.filter(label="A4").update(label="=A4")  # a formula in a cell is not run
    html = superuser_client.get(list_url(show)).content.decode()
    assert f'href="{list_url(show)}?order=seat&amp;format=csv"' in html

    response = superuser_client.get(list_url(show), {"format": "csv"})
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert f'filename="seating-{show.slug}-seat.csv"' in response["Content-Disposition"]
    lines = list(csv.reader(io.StringIO(response.content.decode())))
    assert lines[0][:6] == ["seat", "row", "number", "status", "reference", "name"]
    assert [line[0] for line in lines[1:]] == ["A1", "A2", "A3", "'=A4", "B1", "B2", "B3", "B4"]
    ada = full_house["booked"]
    assert lines[1][:7] == [
        "A1",
        "A",
        "1",
        "booked",
        ada.reference,
        "Ada Lovelace",
        "ada@example.com",
    ]
    assert lines[5][3:5] == ["blocked", full_house["blocked"].reference]
    assert lines[8][3] == "checked_in" and lines[8][9]  # the time of the check-in

    by_name = superuser_client.get(list_url(show), {"format": "csv", "order": "name"})
    names = [line[5] for line in csv.reader(io.StringIO(by_name.content.decode()))][1:]
    assert names == ["Ada Lovelace", "Ada Lovelace", "Alan Turing", "Grace Hopper", "", ""]


def test_a_whole_block_is_released_from_its_line(superuser_client: Client, show: Resource) -> None:
    block = reservation_book(
        resource_id=show.pk, actor=STAFF, seat_ids=seat_ids(show, "B1", "B2"), block=True
    ).reservation
    html = superuser_client.get(plan_url(show)).content.decode()
    line = re.search(rf'<tr id="holder-{block.pk}".*?</tr>', html, re.S)
    assert line
    form = re.search(r'<form method="post" class="seat-plan__release".*?</form>', line.group(0))
    assert form
    fields = re.findall(r'<input type="hidden" name="(\w+)" value="([^"]+)">', form.group(0))
    data: dict[str, list[str]] = {}
    for name, value in fields:
        data.setdefault(name, []).append(value)
    assert data["action"] == ["unblock"]
    assert sorted(map(int, data["seats"])) == sorted(seat_ids(show, "B1", "B2"))

    response = superuser_client.post(plan_url(show), data, follow=True)
    assert messages_of(response) == ["Seats B1, B2 released."]
    block.refresh_from_db()
    assert block.status == ReservationStatus.CANCELLED
