"""The staff's check-in page (/staff/check-in/), and the QR code on the confirmation page
and in the confirmation email."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from html.parser import HTMLParser
from typing import Any

import pytest
import segno
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from bookings.models import Reservation, ReservationEvent
from bookings.services import (
    Actor,
    check_in_code,
    reservation_book,
    reservation_cancel,
    reservation_check_in,
)
from bookings.services.checkin import CHECKED_IN_NOTE
from bookings.views.staff import event_at_the_door
from resources.models import ResourceState
from settings_app.permissions import booking_clerk_group_ensure
from tests.conftest import outbox_email
from tests.factories import ResourceFactory, SeatedResourceFactory
from tests.web.conftest import form_token
from tests.web.test_csp import assert_policy_compliant

CHECK_IN = "/staff/check-in/"
CUSTOMER = Actor("customer")
PASSWORD = "s3cret-pass"


def staff_user(username: str, *, clerk: bool = False, superuser: bool = False, **names: str) -> Any:
    user = get_user_model().objects.create_user(username, f"{username}@example.com", PASSWORD)
    user.is_staff = True
    user.is_superuser = superuser
    for field, value in names.items():
        setattr(user, field, value)
    user.save()
    if clerk:
        user.groups.add(booking_clerk_group_ensure())
    return user


def logged_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def door(db: None) -> Client:
    """A booking clerk called Sam at the door."""
    return logged_in(staff_user("sam.k", clerk=True, first_name="Sam"))


def booked(resource: Any = None, **kwargs: Any) -> Reservation:
    kwargs.setdefault("quantity", 2)
    return reservation_book(
        resource_id=(resource or ResourceFactory(name="Friday meetup")).pk,
        actor=CUSTOMER,
        customer_name="Ada Lovelace",
        **kwargs,
    ).reservation


def scan(client: Client, entry: str, **data: Any) -> Any:
    return client.post(CHECK_IN, {"code": entry, **data})


def text_of(response: Any) -> str:
    """The page's text, tags removed and spaces collapsed."""
    html = response.content.decode()
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def outcome_of(response: Any) -> str | None:
    match = re.search(r'data-check-in-outcome="([a-z-]+)"', response.content.decode())
    return match.group(1) if match else None


def check_ins(reservation: Reservation) -> int:
    return ReservationEvent.objects.filter(reservation=reservation, note=CHECKED_IN_NOTE).count()


# Who may use it --------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_page_needs_a_staff_login(client: Client) -> None:
    for response in (client.get(CHECK_IN), client.post(CHECK_IN, {"code": "RSV-X"})):
        assert response.status_code == 302
        assert response["Location"] == f"/admin/login/?next={CHECK_IN}"
    customer = get_user_model().objects.create_user("ada", "ada@example.com", PASSWORD)
    assert logged_in(customer).get(CHECK_IN).status_code == 302


@pytest.mark.django_db
def test_staff_who_are_neither_clerks_nor_superusers_are_refused() -> None:
    reservation = booked()
    other_staff = logged_in(staff_user("editor"))
    assert other_staff.get(CHECK_IN).status_code == 403
    assert scan(other_staff, reservation.reference).status_code == 403
    assert check_ins(reservation) == 0


@pytest.mark.django_db
def test_clerks_and_superusers_may(door: Client) -> None:
    assert door.get(CHECK_IN).status_code == 200
    boss = logged_in(staff_user("boss", superuser=True))
    assert boss.get(CHECK_IN).status_code == 200


@pytest.mark.django_db
def test_after_logging_in_the_clerk_lands_on_the_page(client: Client) -> None:
    staff_user("sam.k", clerk=True)
    login = client.get(f"/admin/login/?next={CHECK_IN}")
    assert login.status_code == 200
    response = client.post(
        f"/admin/login/?next={CHECK_IN}",
        {"username": "sam.k", "password": PASSWORD, "next": CHECK_IN},
    )
    assert response.status_code == 302 and response["Location"] == CHECK_IN
    assert client.get(CHECK_IN).status_code == 200


@pytest.mark.django_db
def test_the_header_leads_back_to_the_admin_and_logs_out(door: Client) -> None:
    header = re.search(
        r'<header class="site-header">.*?</header>', door.get(CHECK_IN).content.decode(), re.S
    )
    assert header is not None
    assert re.search(r'<a href="/admin/">Admin</a>', header.group(0))
    logout = re.search(r'<form [^>]*action="/admin/logout/".*?</form>', header.group(0), re.S)
    assert logout is not None and ">Log out</button>" in logout.group(0)
    assert f'name="next" value="{CHECK_IN}"' in logout.group(0)
    assert "What&#x27;s on" not in header.group(0)  # the customers' pages are no use here

    response = door.post("/admin/logout/", {"next": CHECK_IN})

    # Logged out, back at the door's login for whoever takes over.
    assert response.status_code == 302 and response["Location"] == CHECK_IN
    assert door.get(CHECK_IN)["Location"] == f"/admin/login/?next={CHECK_IN}"


# Checking in -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_typed_reference_checks_in_once_and_shows_the_booking_in_large_type(
    door: Client,
) -> None:
    reservation = booked(quantity=3)

    first = scan(door, reservation.reference.lower().replace("rsv-", ""))

    assert first.status_code == 200
    assert outcome_of(first) == "checked-in"
    page = first.content.decode()
    assert re.search(r'class="check-in-result__name">Ada Lovelace<', page)
    assert re.search(r'class="check-in-result__places">3 places<', page)
    assert "Friday meetup" in page
    reservation.refresh_from_db()
    assert reservation.checked_in_at is not None and reservation.checked_in_by == "Sam"
    assert check_ins(reservation) == 1
    # The history names staff by username, as every other staff change does.
    assert ReservationEvent.objects.get(reservation=reservation, note=CHECKED_IN_NOTE).actor == (
        "staff:sam.k"
    )

    again = scan(door, reservation.reference)

    assert again.status_code == 409
    assert outcome_of(again) == "already"
    moment = timezone.localtime(reservation.checked_in_at).strftime("%H:%M")
    assert f"Already checked in at {moment} by Sam." in text_of(again)
    assert re.search(r'class="check-in-result__name">Ada Lovelace<', again.content.decode())
    assert check_ins(reservation) == 1


@pytest.mark.django_db
def test_the_scanned_code_checks_in_and_seats_are_shown(door: Client) -> None:
    resource = SeatedResourceFactory(name="Gala", seats__rows=["A"], seats__per_row=4)
    seats = list(resource.seats.order_by("number").values_list("pk", flat=True)[1:3])
    reservation = booked(resource, quantity=None, seat_ids=seats)

    response = scan(door, check_in_code(reservation.reference))

    assert response.status_code == 200 and outcome_of(response) == "checked-in"
    assert "2 places · Seats A2, A3" in text_of(response)
    assert check_ins(reservation) == 1


@pytest.mark.django_db
def test_who_checked_in_is_named_as_the_other_staff_know_them(door: Client) -> None:
    reservation = booked()
    reservation_check_in(reservation_id=reservation.pk, actor=Actor("staff", "Kim"))
    assert "by Kim." in text_of(scan(door, reservation.reference))
    unnamed = logged_in(staff_user("lee", clerk=True))
    other = booked()
    scan(unnamed, other.reference)
    other.refresh_from_db()
    assert other.checked_in_by == "lee"


@pytest.mark.django_db
def test_refusals_say_why(door: Client) -> None:
    resource = ResourceFactory()
    cancelled = booked(resource)
    reservation_cancel(reservation_id=cancelled.pk, actor=CUSTOMER)
    response = scan(door, cancelled.reference)
    assert response.status_code == 409 and outcome_of(response) == "refused"
    assert "This reservation is cancelled; only a confirmed one can check in." in text_of(response)

    unknown = scan(door, "RSV-NOSUCH22")
    assert unknown.status_code == 404 and outcome_of(unknown) == "unknown"
    assert "No booking has the reference RSV-NOSUCH22." in text_of(unknown)

    tampered = scan(door, check_in_code(booked(resource).reference)[:-3] + "abc")
    assert tampered.status_code == 400 and outcome_of(tampered) == "unknown"
    assert "This is not a check-in code of this site." in text_of(tampered)

    empty = scan(door, "  ")
    assert empty.status_code == 400 and "Scan a QR code or type a reference." in text_of(empty)
    assert not ReservationEvent.objects.filter(note=CHECKED_IN_NOTE).exists()


@pytest.mark.django_db
def test_a_booking_for_another_event_is_not_checked_in_at_this_door(door: Client) -> None:
    tonight = ResourceFactory(name="Tonight")
    tomorrow = ResourceFactory(name="Tomorrow", starts_at=timezone.now() + timedelta(days=8))
    reservation = booked(tomorrow)

    response = scan(door, reservation.reference, event=str(tonight.pk))

    assert response.status_code == 409 and outcome_of(response) == "refused"
    assert "this booking is for Tomorrow, not Tonight." in text_of(response)
    assert check_ins(reservation) == 0
    # The page stays on the chosen event for the next scan.
    assert re.search(rf'<option value="{tonight.pk}" selected>', response.content.decode())
    right = scan(door, reservation.reference, event=str(tomorrow.pk))
    assert right.status_code == 200 and check_ins(reservation) == 1


def selected_event(response: Any) -> str:
    """The value of the event chosen in the page's event list ("" for any event)."""
    html = response.content.decode()
    select = re.search(r'<select name="event".*?</select>', html, re.S)
    assert select is not None
    assert re.search(r'<option value=""( selected)?>Any event</option>', select.group(0))
    [chosen] = re.findall(r'<option value="(\d*)" selected>', select.group(0))
    return str(chosen)


@pytest.mark.django_db
def test_the_page_starts_on_todays_event(door: Client) -> None:
    assert selected_event(door.get(CHECK_IN)) == ""  # nothing on today: any event
    now = timezone.localtime()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    tonight = ResourceFactory(name="Tonight", starts_at=midnight, ends_at=now + timedelta(hours=2))
    ResourceFactory(name="Next week", starts_at=now + timedelta(days=7))
    other = booked(ResourceFactory(name="Tomorrow", starts_at=now + timedelta(days=1)))

    page = door.get(CHECK_IN)

    assert selected_event(page) == str(tonight.pk)
    # A booking for another event is then refused, without choosing the event first.
    response = scan(door, other.reference, event=selected_event(page))
    assert outcome_of(response) == "refused" and check_ins(other) == 0
    assert selected_event(response) == str(tonight.pk)
    # Staff who choose any event keep it for the next scans.
    anyone = scan(door, other.reference, event="")
    assert outcome_of(anyone) == "checked-in" and selected_event(anyone) == ""


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return timezone.make_aware(datetime.combine(day, time(hour, minute)))


@pytest.mark.django_db
def test_the_event_at_the_door_is_the_one_on_now_or_the_next_to_start() -> None:
    day = date(2031, 3, 14)
    # Not today, ended, cancelled or a draft: never the door's event.
    ResourceFactory(name="Yesterday", starts_at=at(day, 20) - timedelta(days=1))
    ResourceFactory(name="Tomorrow", starts_at=at(day, 0, 30) + timedelta(days=1))
    breakfast = ResourceFactory(name="Breakfast", starts_at=at(day, 8), ends_at=at(day, 10))
    ResourceFactory(name="Cancelled", starts_at=at(day, 19), state=ResourceState.CANCELLED)
    ResourceFactory(name="Draft", starts_at=at(day, 19, 30), state=ResourceState.DRAFT)
    assert event_at_the_door(at(day, 7)) == breakfast.pk  # the only one today: soon
    assert event_at_the_door(at(day, 9)) == breakfast.pk  # on now
    assert event_at_the_door(at(day, 10, 30)) is None  # over; nothing else today

    matinee = ResourceFactory(name="Matinee", starts_at=at(day, 14))  # no end given
    evening = ResourceFactory(name="Evening", starts_at=at(day, 20), ends_at=at(day, 22))
    late = ResourceFactory(name="Late show", starts_at=at(day, 22, 30), ends_at=at(day, 23, 45))
    assert event_at_the_door(at(day, 9)) == breakfast.pk  # on now
    assert event_at_the_door(at(day, 12)) == matinee.pk  # the next to start
    assert event_at_the_door(at(day, 16)) == evening.pk  # the matinee's end is not known
    assert event_at_the_door(at(day, 21)) == evening.pk
    assert event_at_the_door(at(day, 22, 15)) == late.pk
    assert event_at_the_door(at(day, 23)) == late.pk


@pytest.mark.django_db
def test_the_page_needs_nothing_the_policy_forbids(door: Client) -> None:
    reservation = booked()
    assert_policy_compliant(door.get(CHECK_IN).content.decode(), CHECK_IN)
    assert_policy_compliant(scan(door, reservation.reference).content.decode(), CHECK_IN)
    page = door.get(CHECK_IN).content.decode()
    assert re.search(r'<script src="/static/reservo/checkin\.js" defer>', page)
    assert "data-scanner hidden" in page  # shown by the script only where it can scan


# The QR code -----------------------------------------------------------------------------


def matrix_of(code: str) -> list[list[bool]]:
    return [[bool(module) for module in row] for row in segno.make(code, error="m").matrix]


@pytest.mark.django_db
def test_the_confirmation_page_shows_the_check_in_code_as_inline_svg(client: Client) -> None:
    resource = ResourceFactory()
    url = reverse("bookings:resource", args=[resource.slug])
    held = client.post(url, {"form_token": form_token(client, url), "quantity": 1})
    reference = re.fullmatch(r"/checkout/([A-Z0-9-]+)/", held["Location"]).group(1)
    confirmed = client.post(held["Location"], {"name": "Ada", "email": "ada@example.com"})
    page = client.get(confirmed["Location"]).content.decode()

    figure = re.search(r"<figure [^>]*data-check-in-code>(.*?)</figure>", page, re.S)
    assert figure, "no QR code on the confirmation page"
    svg = figure.group(1)
    assert svg.startswith("<svg") and "<img" not in svg
    assert f"<title>Check-in code for {reference}</title>" in svg
    expected = segno.make(check_in_code(reference), error="m").svg_inline(
        scale=6,
        dark="#000",
        light="#fff",
        title=f"Check-in code for {reference}",
        svgclass="qr-code",
    )
    assert svg == expected
    assert_policy_compliant(page, "confirmed")

    # Once checked in, the page says so instead.
    reservation_check_in(
        reservation_id=Reservation.objects.get(reference=reference).pk, actor=Actor("staff", "Sam")
    )
    page = client.get(confirmed["Location"]).content.decode()
    assert "data-check-in-code" not in page and "Checked in on " in page


@pytest.mark.django_db
def test_a_cancelled_booking_shows_no_code(client: Client) -> None:
    resource = ResourceFactory()
    url = reverse("bookings:resource", args=[resource.slug])
    held = client.post(url, {"form_token": form_token(client, url), "quantity": 1})
    confirmed = client.post(held["Location"], {"name": "Ada", "email": "ada@example.com"})
    reservation = Reservation.objects.get()
    reservation_cancel(reservation_id=reservation.pk, actor=CUSTOMER)
    assert "data-check-in-code" not in client.get(confirmed["Location"]).content.decode()


class _QrTable(HTMLParser):
    """The modules an email's QR code draws: inside the table named for the code, one
    table per row, each cell as wide as a run of modules of its colour."""

    def __init__(self, module_px: int) -> None:
        super().__init__()
        self.module_px = module_px
        self.rows: list[list[bool]] = []
        self._depth = 0  # tables open inside the QR code's own, itself included

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "table" and (
            self._depth or (values.get("aria-label") or "").startswith("Check-in code")
        ):
            self._depth += 1
            if self._depth == 2:
                self.rows.append([])
        elif tag == "td" and self._depth == 2:
            width = int(values["width"] or 0)
            self.rows[-1].extend([values.get("bgcolor") == "#000000"] * (width // self.module_px))

    def handle_endtag(self, tag: str) -> None:
        if tag == "table" and self._depth:
            self._depth -= 1


def confirmation_email(reservation: Reservation) -> Any:
    return outbox_email(reservation, "reservation.confirmed")


@pytest.mark.django_db
def test_the_confirmation_email_draws_the_check_in_code() -> None:
    reservation = booked(customer_email="ada@example.com")
    email = confirmation_email(reservation)
    html = email.alternatives[0][0]

    drawn = _QrTable(module_px=4)
    drawn.feed(html)
    assert drawn.rows, "no QR code in the email"
    assert drawn.rows == matrix_of(check_in_code(reservation.reference))
    assert "<svg" not in html and "<img" not in html  # drawn where mail clients drop both
    assert len(html) < 60_000  # well under the size at which webmail clips a message
    assert "show the QR code of this email" in email.body
    assert reservation.reference in email.body


@pytest.mark.django_db
def test_other_emails_carry_no_code() -> None:
    reservation = booked(customer_email="ada@example.com")
    reservation_cancel(reservation_id=reservation.pk, actor=CUSTOMER)
    html = outbox_email(reservation, "reservation.cancelled").alternatives[0][0]
    assert "Check-in code" not in html and "QR code" not in html


# In a browser ----------------------------------------------------------------------------

# The browser's camera and QR reader, stood in for: Chromium on Linux has no
# BarcodeDetector, and the suite has no camera. The page's own script is what is tested.
FAKE_SCANNER = """
(() => {
  window.__scans = [];
  class FakeDetector {
    static getSupportedFormats() { return Promise.resolve(["qr_code"]); }
    detect() {
      const value = window.localStorage.getItem("fake-qr");
      return Promise.resolve(value ? [{ rawValue: value }] : []);
    }
  }
  window.BarcodeDetector = FakeDetector;
  const canvas = document.createElement("canvas");
  canvas.width = 64; canvas.height = 64;
  navigator.mediaDevices.getUserMedia = () => {
    const context = canvas.getContext("2d");
    setInterval(() => { context.fillStyle = "#" + Math.floor(Math.random() * 4095).toString(16).padStart(3, "0"); context.fillRect(0, 0, 64, 64); }, 50);
    return Promise.resolve(canvas.captureStream(10));
  };
})();
"""


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_browser_scans_with_the_camera_and_keeps_scanning(new_page: Any, web_server: str) -> None:
    from playwright.sync_api import expect

    from tests.web.test_csp import violations_of

    reservation = booked()
    second = booked()
    clerk = staff_user("sam.k", clerk=True, first_name="Sam")
    session = logged_in(clerk).cookies[settings.SESSION_COOKIE_NAME].value
    page = new_page(width=390, height=844)
    page.context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": web_server}]
    )
    page.context.add_init_script(FAKE_SCANNER)
    violations = violations_of(page)
    page.goto(CHECK_IN)
    page.evaluate(
        "code => localStorage.setItem('fake-qr', code)", check_in_code(reservation.reference)
    )

    page.get_by_role("button", name="Scan QR codes with the camera").click()

    expect(page.locator("[data-check-in-outcome]")).to_have_attribute(
        "data-check-in-outcome", "checked-in"
    )
    expect(page.locator(".check-in-result__name")).to_have_text("Ada Lovelace")
    reservation.refresh_from_db()
    assert reservation.checked_in_by == "Sam"
    # Scanning goes on by itself; the code still in front of the camera is not sent again.
    page.wait_for_timeout(1500)
    assert check_ins(reservation) == 1
    page.evaluate("code => localStorage.setItem('fake-qr', code)", check_in_code(second.reference))
    expect(page.locator(".check-in-result__reference")).to_contain_text(second.reference)
    expect(page.locator("[data-check-in-outcome]")).to_have_attribute(
        "data-check-in-outcome", "checked-in"
    )
    assert check_ins(second) == 1
    page.get_by_role("button", name="Stop the camera").click()
    expect(page.get_by_role("button", name="Scan QR codes with the camera")).to_be_visible()
    assert violations == []


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_without_a_qr_reader_the_page_offers_typing_only(new_page: Any, web_server: str) -> None:
    from playwright.sync_api import expect

    reservation = booked()
    clerk = staff_user("sam.k", clerk=True, first_name="Sam")
    session = logged_in(clerk).cookies[settings.SESSION_COOKIE_NAME].value
    page = new_page(width=390, height=844)
    page.context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": web_server}]
    )
    page.goto(CHECK_IN)
    expect(page.get_by_role("button", name="Scan QR codes with the camera")).to_be_hidden()
    # On a phone, the header's way back to the admin and out fit beside the languages.
    header = page.locator(".site-header")
    expect(header.get_by_role("link", name="Admin")).to_be_visible()
    expect(header.get_by_role("button", name="Log out")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.get_by_label("Reference or QR code").fill(reservation.reference)
    page.get_by_label("Reference or QR code").press("Enter")
    expect(page.locator(".check-in-result__verdict")).to_have_text("Checked in.")
    page.get_by_label("Reference or QR code").fill(reservation.reference)
    page.get_by_role("button", name="Check in").click()
    expect(page.locator(".check-in-result__verdict")).to_contain_text("Already checked in at")
    expect(page.locator(".check-in-result__verdict")).to_contain_text("by Sam.")
