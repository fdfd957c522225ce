"""The admin's index: Reservo's branding, the dashboard (the week's events with their
places, sales of the last 14 days, holds about to expire, the outbox, the maintenance
switch) and the models grouped by what staff do."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth import get_user_model
from django.db.models.functions import Now
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from bookings.models import OutboxMessage, Reservation, ReservationStatus
from bookings.services import Actor, reservation_book, reservation_cancel
from reservo import dashboard
from resources.models import Resource, ResourceState
from settings_app.models import SINGLETON_ID, SystemSettings
from tests.admin.conftest import PASSWORD
from tests.factories import ResourceFactory, SeatedResourceFactory

pytestmark = pytest.mark.django_db

INDEX = "/admin/"
SWITCH = "/admin/maintenance/"
CUSTOMER = Actor("customer")
STAFF = Actor("staff", "boss")


def book(resource: Resource, quantity: int, *, hold: bool = False, **extra: Any) -> Reservation:
    return reservation_book(
        resource_id=resource.pk, quantity=quantity, hold=hold, actor=CUSTOMER, **extra
    ).reservation


def page(client: Client, url: str = INDEX) -> str:
    response = client.get(url)
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def element(html: str, pattern: str) -> str:
    """The first element whose opening tag matches `pattern`, up to the end of the element."""
    match = re.search(pattern, html, re.S)
    assert match, f"no element matches {pattern!r}"
    return html[match.start() :]


def attribute(html: str, name: str) -> str:
    match = re.search(rf'{name}="([^"]*)"', html)
    assert match, f"no {name}"
    return match.group(1)


def event_row(html: str, resource: Resource) -> str:
    row = element(html, rf'<tr class="reservo-event" data-resource="{resource.pk}">')
    return row[: row.index("</tr>")]


def places_of(row: str) -> dict[str, int]:
    return {
        name: int(attribute(row, f"data-{name}"))
        for name in ("confirmed", "held", "free", "capacity")
    }


def sales_bars(html: str) -> dict[str, dict[str, str]]:
    bars = re.findall(r'<rect class="reservo-sales__bar"([^>]*)>', html)
    return {
        attribute(bar, "data-day"): {
            "places": attribute(bar, "data-places"),
            "bookings": attribute(bar, "data-bookings"),
            "height": attribute(bar, "height"),
        }
        for bar in bars
    }


def local_today() -> date:
    return timezone.localtime().date()


# Branding and access ------------------------------------------------------------------


def test_the_admin_is_branded_reservo(superuser_client: Client) -> None:
    html = page(superuser_client)
    assert re.search(r'<div id="site-name"><a [^>]*>.*Reservo</a></div>', html, re.S)
    assert "<title>Dashboard | Reservo</title>" in html
    assert "/static/reservo/admin.css" in html
    # Django's admin is still underneath: its own stylesheet and the user tools.
    assert "/static/admin/css/base.css" in html
    assert 'id="user-tools"' in html


def test_the_login_page_is_branded_too(client: Client) -> None:
    html = page(client, "/admin/login/")
    assert "Reservo" in html
    assert "/static/reservo/admin.css" in html


def test_non_staff_get_the_login_page(client: Client) -> None:
    response = client.get(INDEX)
    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=/admin/"

    customer = get_user_model().objects.create_user("ada", "ada@example.com", PASSWORD)
    client.force_login(customer)
    response = client.get(INDEX)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")

    response = client.post(SWITCH, {"maintenance_mode": "on"})
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    assert SystemSettings.objects.get(pk=SINGLETON_ID).maintenance_mode is False


# Events and their places ----------------------------------------------------------------


def test_events_of_the_week_with_their_places(superuser_client: Client) -> None:
    soon = ResourceFactory(
        name="Jazz night", capacity=10, starts_at=timezone.now() + timedelta(hours=2)
    )
    book(soon, 3)
    book(soon, 2, hold=True)
    stale = book(soon, 1, hold=True)
    # A hold past its expiry that the sweep has not reached yet: its place is free again.
    Reservation.objects.filter(pk=stale.pk).update(hold_expires_at=Now() - timedelta(minutes=1))
    block = reservation_book(resource_id=soon.pk, quantity=1, actor=STAFF, block=True)
    assert block.reservation.status == ReservationStatus.HELD
    draft = ResourceFactory(
        name="Draft tour", state=ResourceState.DRAFT, starts_at=timezone.now() + timedelta(days=6)
    )
    cancelled = ResourceFactory(
        name="Called-off gig",
        state=ResourceState.CANCELLED,
        starts_at=timezone.now() + timedelta(days=1),
    )
    later = ResourceFactory(name="Next month", starts_at=timezone.now() + timedelta(days=30))
    past = ResourceFactory(name="Last week", starts_at=timezone.now() - timedelta(days=7))

    html = page(superuser_client)
    events = element(html, r'<section [^>]*id="dashboard-events"')
    events = events[: events.index("</section>")]
    row = event_row(events, soon)
    # 3 confirmed; held: 2 + the house block's 1 (the stale hold counts as free); 10 - 6 free.
    assert places_of(row) == {"confirmed": 3, "held": 3, "free": 4, "capacity": 10}
    widths = dict(
        re.findall(r'<rect class="reservo-occupancy__(\w+)" x="[^"]*" y="0" width="([^"]*)"', row)
    )
    assert widths == {"confirmed": "30", "held": "30", "free": "40"}
    assert "Jazz night" in row
    assert f'href="/admin/resources/resource/{soon.pk}/change/"' in row

    draft_row = event_row(events, draft)
    assert "Draft" in draft_row
    assert places_of(draft_row) == {"confirmed": 0, "held": 0, "free": 10, "capacity": 10}
    for absent in (cancelled, later, past):
        assert f'data-resource="{absent.pk}"' not in events
    assert events.index(f'data-resource="{soon.pk}"') < events.index(f'data-resource="{draft.pk}"')


def test_more_events_than_listed_lead_to_the_resources_list(
    superuser_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dashboard, "LIST_LIMIT", 2)
    week = [
        ResourceFactory(name=f"Week {n}", starts_at=timezone.now() + timedelta(days=n, hours=1))
        for n in range(3)
    ]
    later = ResourceFactory(name="Much later", starts_at=timezone.now() + timedelta(days=40))
    html = page(superuser_client)
    assert html.count('<tr class="reservo-event"') == 2
    link = element(html, r'<p class="reservo-panel__more">')
    assert "All 3 events of these days" in link[: link.index("</p>")]
    listed = page(superuser_client, attribute(link, "href").replace("&amp;", "&"))
    for resource in week:
        assert f'href="/admin/resources/resource/{resource.pk}/change/' in listed
    assert later.name not in listed


def test_no_events_says_so(superuser_client: Client) -> None:
    html = page(superuser_client)
    assert "No event today or in the next 7 days." in html


# Sales ------------------------------------------------------------------------------------


def test_sales_chart_has_a_bar_for_each_day_with_sales(superuser_client: Client) -> None:
    resource = ResourceFactory(capacity=50)
    today = [book(resource, 2), book(resource, 3)]
    three_days_ago = book(resource, 4)
    Reservation.objects.filter(pk=three_days_ago.pk).update(confirmed_at=Now() - timedelta(days=3))
    too_old = book(resource, 5)
    Reservation.objects.filter(pk=too_old.pk).update(confirmed_at=Now() - timedelta(days=20))
    cancelled = book(resource, 6)
    reservation_cancel(reservation_id=cancelled.pk, actor=CUSTOMER)
    book(resource, 1, hold=True)  # a hold is not a sale

    html = page(superuser_client)
    bars = sales_bars(html)
    day = local_today()
    earlier = timezone.localtime(Reservation.objects.get(pk=three_days_ago.pk).confirmed_at).date()
    assert (day - earlier).days == 3
    assert set(bars) == {day.isoformat(), earlier.isoformat()}
    assert bars[day.isoformat()]["places"] == "5"
    assert bars[day.isoformat()]["bookings"] == "2"
    assert bars[earlier.isoformat()]["places"] == "4"
    assert bars[earlier.isoformat()]["bookings"] == "1"
    # The highest bar is the day with most places; the other is to scale.
    assert float(bars[day.isoformat()]["height"]) == pytest.approx(88)
    assert float(bars[earlier.isoformat()]["height"]) == pytest.approx(88 * 4 / 5)
    assert "3 bookings, 9 places" in html
    assert len(today) == 2


def test_sales_chart_figures_cover_fourteen_days(superuser_client: Client) -> None:
    html = page(superuser_client)
    chart = element(html, r'<section [^>]*id="dashboard-sales"')
    chart = chart[: chart.index("</section>")]
    assert chart.count('<text class="reservo-sales__day"') == 14
    assert '<rect class="reservo-sales__bar"' not in chart
    figures = chart[chart.index("<tbody>") : chart.index("</tbody>")]
    assert figures.count("<tr>") == 14
    assert "<script" not in chart


# Holds about to expire ---------------------------------------------------------------------


def test_holds_expiring_in_the_next_ten_minutes(superuser_client: Client) -> None:
    resource = ResourceFactory(name="Opera gala", capacity=20)
    soon = book(resource, 2, hold=True)
    Reservation.objects.filter(pk=soon.pk).update(hold_expires_at=Now() + timedelta(minutes=4))
    sooner = book(resource, 1, hold=True)
    Reservation.objects.filter(pk=sooner.pk).update(hold_expires_at=Now() + timedelta(minutes=1))
    later = book(resource, 1, hold=True)
    Reservation.objects.filter(pk=later.pk).update(hold_expires_at=Now() + timedelta(minutes=30))
    gone = book(resource, 1, hold=True)
    Reservation.objects.filter(pk=gone.pk).update(hold_expires_at=Now() - timedelta(seconds=5))
    block = reservation_book(resource_id=resource.pk, quantity=1, actor=STAFF, block=True)
    confirmed = book(resource, 1)

    html = page(superuser_client)
    holds = element(html, r'<section [^>]*id="dashboard-holds"')
    holds = holds[: holds.index("</section>")]
    rows = re.findall(r'<tr class="reservo-hold">(.*?)</tr>', holds, re.S)
    assert [re.search(r">(RSV-[^<]+)</a>", row).group(1) for row in rows] == [  # type: ignore[union-attr]
        sooner.reference,
        soon.reference,
    ]
    first = rows[1]
    assert f'href="/admin/bookings/reservation/{soon.pk}/change/"' in first
    assert "Opera gala" in first
    assert "<td>2</td>" in first
    assert 200 < int(attribute(first, "data-seconds")) <= 240
    assert "minute" in first
    for absent in (later, gone, block.reservation, confirmed):
        assert absent.reference not in holds


# Outbox -----------------------------------------------------------------------------------


def test_outbox_counts_link_to_the_filtered_outbox(superuser_client: Client) -> None:
    resource = ResourceFactory()
    reservation = book(resource, 1)
    OutboxMessage.objects.all().delete()

    def message(status: str, target: str) -> OutboxMessage:
        return OutboxMessage.objects.create(
            reservation=reservation,
            event_type="reservation.confirmed",
            channel=OutboxMessage.Channel.EMAIL,
            target=target,
            status=status,
        )

    message(OutboxMessage.Status.PENDING, "a@example.com")
    message(OutboxMessage.Status.PENDING, "b@example.com")
    message(OutboxMessage.Status.DEAD, "c@example.com")
    message(OutboxMessage.Status.DELIVERED, "d@example.com")

    html = page(superuser_client)
    outbox = element(html, r'<section [^>]*id="dashboard-outbox"')
    outbox = outbox[: outbox.index("</section>")]
    pending = element(outbox, r'<li class="reservo-outbox__pending"')
    dead = element(outbox, r'<li class="reservo-outbox__dead')
    assert attribute(pending, "data-count") == "2"
    assert attribute(dead, "data-count") == "1"
    assert "2 waiting to be delivered" in pending
    assert "1 given up (dead)" in dead
    pending_url = attribute(pending, "href").replace("&amp;", "&")
    dead_url = attribute(dead, "href").replace("&amp;", "&")
    assert pending_url == "/admin/bookings/outboxmessage/?status__exact=pending"
    assert dead_url == "/admin/bookings/outboxmessage/?status__exact=dead"
    listed = page(superuser_client, dead_url)
    assert "c@example.com" in listed
    assert "a@example.com" not in listed


# Maintenance ------------------------------------------------------------------------------


def maintenance_form(html: str) -> str:
    panel = element(html, r'<section [^>]*id="dashboard-maintenance"')
    return panel[: panel.index("</section>")]


def test_maintenance_switch_goes_through_the_settings_service(
    superuser_client: Client, superuser: Any
) -> None:
    resource = ResourceFactory(capacity=5)
    hold = book(resource, 1, hold=True)
    expires_before = Reservation.objects.get(pk=hold.pk).hold_expires_at
    assert expires_before is not None

    panel = maintenance_form(page(superuser_client))
    assert "<strong>Off</strong>" in panel
    assert 'name="csrfmiddlewaretoken"' in panel
    assert 'name="maintenance_mode" value="on"' in panel
    assert f'href="/admin/settings_app/systemsettings/{SINGLETON_ID}/change/"' in panel

    response = superuser_client.post(SWITCH, {"maintenance_mode": "on"}, follow=True)
    assert response.redirect_chain == [(INDEX, 302)]
    row = SystemSettings.objects.get(pk=SINGLETON_ID)
    assert row.maintenance_mode is True
    assert row.maintenance_started_at is not None  # the service records when it went on
    html = response.content.decode()
    assert "Maintenance mode is on" in html
    panel = maintenance_form(html)
    assert "<strong>On</strong>" in panel
    assert 'name="maintenance_mode" value="off"' in panel
    # Booking writes are refused now, on the pages.
    refused = Client().post(f"/r/{resource.slug}/", {"quantity": 1})
    assert refused.status_code == 503

    # Say it lasted five minutes: switching off extends the hold by as long (the service's rule).
    SystemSettings.objects.filter(pk=SINGLETON_ID).update(
        maintenance_started_at=row.maintenance_started_at - timedelta(minutes=5)
    )
    response = superuser_client.post(SWITCH, {"maintenance_mode": "off"}, follow=True)
    assert "Maintenance mode is off" in response.content.decode()
    row.refresh_from_db()
    assert (row.maintenance_mode, row.maintenance_started_at) == (False, None)
    expires_after = Reservation.objects.get(pk=hold.pk).hold_expires_at
    assert expires_after is not None
    assert expires_after - expires_before >= timedelta(minutes=5)

    entries = LogEntry.objects.filter(
        user=superuser, action_flag=CHANGE, object_id=str(SINGLETON_ID)
    )
    assert entries.count() == 2


def test_without_the_settings_row_maintenance_reads_off(superuser_client: Client) -> None:
    SystemSettings.objects.all().delete()
    panel = maintenance_form(page(superuser_client))
    assert "<strong>Off</strong>" in panel


def test_switching_to_the_current_state_changes_nothing(superuser_client: Client) -> None:
    before = SystemSettings.objects.get(pk=SINGLETON_ID).updated_at
    response = superuser_client.post(SWITCH, {"maintenance_mode": "off"}, follow=True)
    assert "Maintenance mode was already off." in response.content.decode()
    row = SystemSettings.objects.get(pk=SINGLETON_ID)
    assert (row.maintenance_mode, row.updated_at) == (False, before)


def test_the_switch_needs_a_post_with_its_csrf_token(superuser: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(superuser)
    assert client.get(SWITCH).status_code == 405
    assert client.post(SWITCH, {"maintenance_mode": "on"}).status_code == 403
    html = page(client)
    token = attribute(maintenance_form(html), 'name="csrfmiddlewaretoken" value')
    response = client.post(SWITCH, {"maintenance_mode": "on", "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert SystemSettings.objects.get(pk=SINGLETON_ID).maintenance_mode is True


def test_a_clerk_sees_what_they_may_and_cannot_switch(clerk_client: Client) -> None:
    ResourceFactory(name="Clerk's evening", starts_at=timezone.now() + timedelta(hours=3))
    html = page(clerk_client)
    assert 'id="dashboard-events"' in html
    assert "Clerk&#x27;s evening" in html
    assert 'id="dashboard-sales"' in html
    assert 'id="dashboard-holds"' in html
    assert 'id="dashboard-outbox"' not in html
    assert 'id="dashboard-maintenance"' not in html
    assert clerk_client.post(SWITCH, {"maintenance_mode": "on"}).status_code == 403
    assert SystemSettings.objects.get(pk=SINGLETON_ID).maintenance_mode is False


# Query count ------------------------------------------------------------------------------


def test_the_dashboard_reads_in_a_few_queries(
    superuser_client: Client, django_assert_max_num_queries: Any
) -> None:
    for hours in (2, 26, 50):
        resource = ResourceFactory(capacity=30, starts_at=timezone.now() + timedelta(hours=hours))
        book(resource, 2)
        book(resource, 1, hold=True)
    superuser_client.get(INDEX)  # the session and the caches warm
    with django_assert_max_num_queries(8):
        page(superuser_client)
    for hours in range(60, 140, 8):
        resource = ResourceFactory(capacity=30, starts_at=timezone.now() + timedelta(hours=hours))
        book(resource, 2)
        book(resource, 1, hold=True)
    with django_assert_max_num_queries(8):
        html = page(superuser_client)
    assert html.count('<tr class="reservo-event"') == 13


# The index, grouped -------------------------------------------------------------------------

SECTION_ORDER = ["events", "bookings", "integrations", "security", "settings"]
EXPECTED_SECTIONS = {
    "resources.resource": "events",
    "resources.seat": "events",
    "bookings.reservation": "bookings",
    "bookings.apiclient": "integrations",
    "bookings.webhookendpoint": "integrations",
    "bookings.outboxmessage": "integrations",
    "bookings.deliveryattempt": "integrations",
    "auth.user": "security",
    "auth.group": "security",
    "axes.accessattempt": "security",
    "axes.accessfailurelog": "security",
    "axes.accesslog": "security",
    "settings_app.systemsettings": "settings",
}


def index_rows(html: str) -> list[tuple[str, str, str]]:
    """(section, row name, link) of every row of the grouped list."""
    return re.findall(
        r'<th scope="row" id="([\w-]+?)-(\w+)">\s*<a href="([^"]+)"', html[html.index("app-") :]
    )


def test_the_index_lists_each_model_once_under_its_section(superuser_client: Client) -> None:
    html = page(superuser_client)
    sections = re.findall(r'<div class="app-(\w+) module', html)
    assert sections == SECTION_ORDER
    rows = index_rows(html)
    links = [link for _, _, link in rows]
    assert len(links) == len(set(links))

    registered = {model._meta.label_lower: model for model in admin.site._registry}
    for label, model in registered.items():
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        listed = [(section, name) for section, name, link in rows if link == url]
        assert listed == [
            (EXPECTED_SECTIONS.get(label, "other"), model._meta.object_name.lower())
        ], label
    # The door's page, with the bookings.
    assert ("bookings", "checkin", "/staff/check-in/") in rows
    assert len(rows) == len(registered) + 1


def test_a_section_has_its_own_page(superuser_client: Client) -> None:
    html = page(superuser_client, "/admin/sections/integrations/")
    assert [section for section, _, _ in index_rows(html)] == ["integrations"] * 4
    assert 'id="dashboard-events"' not in html
    assert superuser_client.get("/admin/sections/nothing-here/").status_code == 404
    # Each app's own page still lists that app's models.
    assert "Reservations" in page(superuser_client, "/admin/bookings/")


def breadcrumbs(html: str) -> list[tuple[str, str | None]]:
    """The breadcrumbs of an admin page: (text, link or None), in order."""
    match = re.search(r'<div class="breadcrumbs">(.*?)</div>', html, re.S)
    assert match, "no breadcrumbs"
    crumbs = []
    for part in match.group(1).split("&rsaquo;"):
        link = re.search(r'<a href="([^"]*)">(.*?)</a>', part, re.S)
        if link:
            crumbs.append((link.group(2).strip(), link.group(1)))
        else:
            crumbs.append((part.strip(), None))
    return crumbs


def test_a_model_s_pages_lead_back_to_its_section(superuser_client: Client) -> None:
    reservation = book(ResourceFactory(name="Jazz"), 1)
    changelist = "/admin/bookings/reservation/"

    assert breadcrumbs(page(superuser_client, changelist)) == [
        ("Home", "/admin/"),
        ("Bookings", "/admin/sections/bookings/"),
        ("Reservations", None),
    ]
    assert breadcrumbs(page(superuser_client, f"{changelist}{reservation.pk}/change/")) == [
        ("Home", "/admin/"),
        ("Bookings", "/admin/sections/bookings/"),
        ("Reservations", changelist),
        (reservation.reference, None),
    ]
    resource = reservation.resource
    assert breadcrumbs(
        page(superuser_client, f"/admin/resources/resource/{resource.pk}/history/")
    ) == [
        ("Home", "/admin/"),
        ("Events", "/admin/sections/events/"),
        ("Resources", "/admin/resources/resource/"),
        ("Jazz", f"/admin/resources/resource/{resource.pk}/change/"),
        ("History", None),
    ]
    # Every section a breadcrumb names is a page of its own.
    assert "Reservations" in page(superuser_client, "/admin/sections/bookings/")


def test_the_seat_plan_leads_back_to_its_event_and_section(superuser_client: Client) -> None:
    resource = SeatedResourceFactory(name="Gala", seats__rows=["A"], seats__per_row=2)
    url = f"/admin/resources/resource/{resource.pk}/seat-plan/"
    assert breadcrumbs(page(superuser_client, url)) == [
        ("Home", "/admin/"),
        ("Events", "/admin/sections/events/"),
        ("Resources", "/admin/resources/resource/"),
        ("Gala", f"/admin/resources/resource/{resource.pk}/change/"),
        ("Seat plan", None),
    ]


def test_the_breadcrumbs_of_other_sections_and_of_an_add_page(superuser_client: Client) -> None:
    assert breadcrumbs(page(superuser_client, "/admin/bookings/apiclient/add/")) == [
        ("Home", "/admin/"),
        ("Integrations", "/admin/sections/integrations/"),
        ("API clients", "/admin/bookings/apiclient/"),
        ("Add API client", None),
    ]
    assert breadcrumbs(page(superuser_client, "/admin/auth/user/"))[1] == (
        "Security",
        "/admin/sections/security/",
    )


def test_the_breadcrumbs_speak_the_staff_language(superuser_client: Client) -> None:
    html = superuser_client.get(
        "/admin/bookings/reservation/", headers={"accept-language": "fr"}
    ).content.decode()
    assert breadcrumbs(html)[:2] == [
        ("Accueil", "/admin/"),
        ("Réservations", "/admin/sections/bookings/"),
    ]


def test_a_clerk_sees_only_the_sections_they_may_use(clerk_client: Client) -> None:
    html = page(clerk_client)
    assert re.findall(r'<div class="app-(\w+) module', html) == ["events", "bookings"]
    rows = index_rows(html)
    assert ("bookings", "checkin", "/staff/check-in/") in rows
    assert ("bookings", "reservation", "/admin/bookings/reservation/") in rows
