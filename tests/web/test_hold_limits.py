"""Per-address limits of the booking pages: holds made, places held at once, confirmation
emails per address and per recipient; names without control characters. All counted in
Redis and not applied (with a log line) when Redis is down."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from django.test import Client, override_settings
from django.urls import reverse

from bookings.models import OutboxMessage, Reservation, ReservationStatus
from reservo import limits
from tests.conftest import make_redis_unreachable, run_concurrently
from tests.factories import ResourceFactory
from tests.web.conftest import form_token

pytestmark = pytest.mark.django_db

ADDRESS = "203.0.113.7"
OTHER_ADDRESS = "198.51.100.20"
NO_RATE = {"RESERVO_HOLD_RATE": "", "RESERVO_HOLD_PLACES_PER_ADDRESS": 0}
# 30 s into a minute, an hour and ten minutes; hours into a day.
MID_WINDOW = 1_800_000_030.0


@pytest.fixture(autouse=True)
def _mid_window_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Counting windows are fixed: pin the clock inside one, so that no burst of a test
    straddles two."""
    monkeypatch.setattr(limits, "clock", lambda: MID_WINDOW)


def browser(address: str = ADDRESS) -> Client:
    """A fresh session (a new customer, or a script's new cookie jar) from `address`."""
    return Client(REMOTE_ADDR=address)


def post_hold(client: Client, resource: Any, quantity: int) -> Any:
    url = reverse("bookings:resource", args=[resource.slug])
    return client.post(url, {"form_token": form_token(client, url), "quantity": quantity})


def reference_of(response: Any) -> str:
    assert response.status_code == 302, response.content.decode()[:2000]
    match = re.fullmatch(r"/checkout/([A-Z0-9-]+)/", response["Location"])
    assert match, response["Location"]
    return match.group(1)


def places_held(resource: Any) -> int:
    return sum(
        Reservation.objects.filter(resource=resource, status=ReservationStatus.HELD).values_list(
            "quantity", flat=True
        )
    )


# Places held at once -------------------------------------------------------------------


@override_settings(RESERVO_HOLD_RATE="")
def test_the_reported_hoard_is_refused_past_the_places_one_address_may_hold(
    settings: Any,
) -> None:
    """Five fresh sessions from one address asking for 2 places each of 12: the default
    lets that address hold 6, and the rest are a friendly 429."""
    resource = ResourceFactory(capacity=12, max_per_booking=10)
    limit = settings.RESERVO_HOLD_PLACES_PER_ADDRESS
    assert 0 < limit < 10

    statuses = []
    for _ in range(5):
        response = post_hold(browser(), resource, 2)
        statuses.append(response.status_code)
    refused = post_hold(browser(), resource, 2)

    assert statuses.count(302) == limit // 2
    assert places_held(resource) == limit
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) >= 1
    page = refused.content.decode()
    assert f"At most {limit} places can be held at once from one connection" in page
    assert 'name="form_token"' in page  # the booking form again, not an error page
    # Another address is not affected.
    assert post_hold(browser(OTHER_ADDRESS), resource, 2).status_code == 302


@override_settings(RESERVO_HOLD_RATE="", RESERVO_HOLD_PLACES_PER_ADDRESS=4)
def test_places_count_only_while_held() -> None:
    resource = ResourceFactory(capacity=20)
    first, second = browser(), browser()
    released = reference_of(post_hold(first, resource, 2))
    confirmed = reference_of(post_hold(second, resource, 2))
    assert post_hold(browser(), resource, 1).status_code == 429

    # Released, and confirmed: neither holds places any more.
    first.post(reverse("bookings:release", args=[released]))
    checkout = reverse("bookings:checkout", args=[confirmed])
    second.post(checkout, {"name": "Ada", "email": "ada@example.com"})
    assert Reservation.objects.get(reference=confirmed).status == ReservationStatus.CONFIRMED

    assert post_hold(browser(), resource, 4).status_code == 302
    assert places_held(resource) == 4


@override_settings(RESERVO_HOLD_RATE="", RESERVO_HOLD_PLACES_PER_ADDRESS=4)
def test_an_expired_hold_stops_counting() -> None:
    resource = ResourceFactory(capacity=20)
    reference = reference_of(post_hold(browser(), resource, 4))
    assert post_hold(browser(), resource, 1).status_code == 429
    Reservation.objects.filter(reference=reference).update(hold_expires_at="2000-01-01T00:00:00Z")
    assert post_hold(browser(), resource, 4).status_code == 302


@pytest.mark.django_db(transaction=True)
@override_settings(RESERVO_HOLD_RATE="", RESERVO_HOLD_PLACES_PER_ADDRESS=6)
def test_holds_sent_together_from_one_address_never_pass_the_limit() -> None:
    resource = ResourceFactory(capacity=40, max_per_booking=10)
    url = reverse("bookings:resource", args=[resource.slug])
    forms = []
    for _ in range(8):
        client = browser()
        forms.append((client, form_token(client, url)))

    responses = run_concurrently(
        len(forms),
        lambda i: forms[i][0].post(url, {"form_token": forms[i][1], "quantity": 2}),
    )

    assert {response.status_code for response in responses} <= {302, 429}
    assert 0 < places_held(resource) <= 6


# Holds made ------------------------------------------------------------------------------


@override_settings(RESERVO_HOLD_RATE="3/10min", RESERVO_HOLD_PLACES_PER_ADDRESS=0)
def test_holds_made_from_one_address_are_limited() -> None:
    resource = ResourceFactory(capacity=50)
    made = [post_hold(browser(), resource, 1).status_code for _ in range(3)]
    refused = post_hold(browser(), resource, 1)

    assert made == [302, 302, 302]
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 600
    assert "Many holds were made from your connection" in refused.content.decode()
    assert Reservation.objects.filter(resource=resource).count() == 3
    assert post_hold(browser(OTHER_ADDRESS), resource, 1).status_code == 302


@override_settings(
    RESERVO_HOLD_RATE="3/10min", RESERVO_HOLD_PLACES_PER_ADDRESS=0, RESERVO_BEHIND_PROXY=True
)
def test_behind_a_proxy_the_forwarded_client_address_is_limited() -> None:
    resource = ResourceFactory(capacity=50)

    def from_client(spoofed: str) -> Client:
        # The client sends its own X-Forwarded-For; the proxy appends the real address.
        return Client(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=f"{spoofed}, {ADDRESS}")

    made = [post_hold(from_client(f"192.0.2.{i}"), resource, 1).status_code for i in range(4)]
    assert made == [302, 302, 302, 429]
    other = Client(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=OTHER_ADDRESS)
    assert post_hold(other, resource, 1).status_code == 302


def test_holds_pass_and_a_line_is_logged_when_redis_is_down(
    settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.RESERVO_HOLD_RATE = "1/10min"
    settings.RESERVO_HOLD_PLACES_PER_ADDRESS = 1
    resource = ResourceFactory(capacity=10)
    url = reverse("bookings:resource", args=[resource.slug])
    forms = []
    for _ in range(3):
        client = browser()
        forms.append((client, form_token(client, url)))
    make_redis_unreachable(settings)

    with caplog.at_level(logging.WARNING, logger=settings.DJANGO_REDIS_LOGGER):
        statuses = [
            client.post(url, {"form_token": token, "quantity": 2}).status_code
            for client, token in forms
        ]

    assert statuses == [302, 302, 302]
    assert places_held(resource) == 6
    messages = [record.getMessage() for record in caplog.records]
    assert any("page-hold limit not applied" in message for message in messages)
    assert any("places held limit not applied" in message for message in messages)


# Confirmation emails ---------------------------------------------------------------------


def confirm(client: Client, reference: str, email: str, name: str = "Ada") -> Any:
    checkout = reverse("bookings:checkout", args=[reference])
    return client.post(checkout, {"name": name, "email": email})


@override_settings(**NO_RATE, RESERVO_EMAIL_RATE_PER_RECIPIENT="2/h")
def test_confirmation_emails_to_one_recipient_are_limited() -> None:
    """hold → confirm → cancel, repeated from many addresses at one victim's inbox."""
    resource = ResourceFactory(capacity=50)
    sent = []
    for i in range(3):
        client = browser(f"192.0.2.{i + 1}")
        reference = reference_of(post_hold(client, resource, 1))
        sent.append((reference, confirm(client, reference, "Victim@Example.com")))

    assert [response.status_code for _, response in sent] == [302, 302, 429]
    refused_reference, refused = sent[2]
    assert int(refused["Retry-After"]) >= 1
    assert "Too many confirmation emails" in refused.content.decode()
    # The hold is kept for a later try; no email is queued for it.
    assert Reservation.objects.get(reference=refused_reference).status == ReservationStatus.HELD
    to_victim = OutboxMessage.objects.filter(channel="email", target__iexact="victim@example.com")
    assert to_victim.count() == 2
    # Another recipient is not affected.
    client = browser("192.0.2.50")
    reference = reference_of(post_hold(client, resource, 1))
    assert confirm(client, reference, "someone@example.com").status_code == 302


@override_settings(**NO_RATE, RESERVO_EMAIL_RATE_PER_ADDRESS="2/h")
def test_confirmation_emails_from_one_address_are_limited() -> None:
    resource = ResourceFactory(capacity=50)
    statuses = []
    for i in range(3):
        client = browser()
        reference = reference_of(post_hold(client, resource, 1))
        statuses.append(confirm(client, reference, f"person{i}@example.com").status_code)

    assert statuses == [302, 302, 429]
    assert OutboxMessage.objects.filter(channel="email").count() == 2


@override_settings(**NO_RATE, RESERVO_EMAIL_RATE_PER_RECIPIENT="1/h")
def test_confirmations_pass_and_a_line_is_logged_when_redis_is_down(
    settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    resource = ResourceFactory(capacity=50)
    holds = []
    for i in range(2):
        client = browser(f"192.0.2.{i + 1}")
        holds.append((client, reference_of(post_hold(client, resource, 1))))
    make_redis_unreachable(settings)

    with caplog.at_level(logging.WARNING, logger=settings.DJANGO_REDIS_LOGGER):
        statuses = [confirm(c, ref, "ada@example.com").status_code for c, ref in holds]

    assert statuses == [302, 302]
    assert any("email-" in record.getMessage() for record in caplog.records)


# Names -------------------------------------------------------------------------------------


@override_settings(**NO_RATE)
def test_control_and_bidi_characters_are_stripped_from_names() -> None:
    resource = ResourceFactory(capacity=5)
    client = browser()
    reference = reference_of(post_hold(client, resource, 1))

    name = "Ada\x1b[31m Love\u202elace\r\nBcc: x@example.com\u2066\x7f"
    assert confirm(client, reference, "ada@example.com", name=name).status_code == 302

    stored = Reservation.objects.get(reference=reference).customer_name
    assert stored == "Ada[31m Lovelace Bcc: x@example.com"
    email = OutboxMessage.objects.get(reservation__reference=reference, channel="email")
    assert email.payload["reservation"]["customer"]["name"] == stored


@override_settings(**NO_RATE)
def test_a_name_of_control_characters_only_is_refused() -> None:
    resource = ResourceFactory(capacity=5)
    client = browser()
    reference = reference_of(post_hold(client, resource, 1))

    response = confirm(client, reference, "ada@example.com", name="\x1b\u202e\r\n")

    assert response.status_code == 400
    assert "Please enter your name." in response.content.decode()
    assert Reservation.objects.get(reference=reference).status == ReservationStatus.HELD
