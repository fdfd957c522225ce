"""Notifications: the transactional outbox, and how each outbox row is delivered.

`outbox_enqueue` runs inside the transaction that changes reservations (from
`services.common.record`), so an outbox row exists exactly when the change committed. The
worker (`bookings.worker`) delivers the rows later, outside any transaction: an email
to the customer, a signed JSON POST to each of the API client's webhook endpoints.

The customer's manage token is only known, in plain text, while the reservation is
being booked, or confirmed by the customer's own session (only its hash is stored). It
travels in the payload of that email row, and the worker erases it from the row as soon
as the email is delivered; other emails (a cancellation, an expiry) quote the reference
and point to the link the customer already has.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils import timezone, translation
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from bookings.models import (
    OutboxMessage,
    Reservation,
    ReservationSeat,
    ReservationStatus,
    WebhookEndpoint,
)
from resources.models import Resource, ResourceKind

EVENT_TYPES = (
    "reservation.held",
    "reservation.confirmed",
    "reservation.cancelled",
    "reservation.expired",
)
# The customer hears about every change they did not necessarily see on screen; a hold
# email carries the manage link that confirms or cancels it.
EMAILED_STATUSES = (
    ReservationStatus.HELD,
    ReservationStatus.CONFIRMED,
    ReservationStatus.CANCELLED,
    ReservationStatus.EXPIRED,
)

SIGNATURE_HEADER = "Reservo-Signature"
EVENT_ID_HEADER = "Reservo-Event-Id"

# Every status is told to the customer by email and to the client's webhooks.
EMAILED = [str(status) for status in EMAILED_STATUSES]


def _timestamp(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def outbox_enqueue(
    reservations: Sequence[Reservation],
    *,
    resource: Resource,
    changed_by: str = "",
    manage_token: str | None = None,
) -> None:
    """Write the outbox rows telling the reservations' current status (same transaction):
    an email to each customer with an address, a POST to each of the API client's active
    webhook endpoints that wants the event.

    `reservations` are rows of `resource` as this transaction wrote them. `changed_by`,
    the kind of actor who made the change (customer, api, staff, system), tells the
    customer who cancelled. `manage_token` (plain text, known only at booking time) goes
    into the customer's email row.
    """
    emailed = [r for r in reservations if r.customer_email and r.status in EMAILED]
    client_ids = {r.api_client_id for r in reservations if r.api_client_id is not None}
    if not emailed and not client_ids:
        return
    seats: dict[int, list[tuple[int, str]]] = defaultdict(list)
    if resource.kind == ResourceKind.SEATED:
        for reservation_id, seat_id, label in (
            ReservationSeat.objects.filter(reservation__in=reservations)
            .order_by("seat_id")
            .values_list("reservation_id", "seat_id", "seat__label")
        ):
            seats[reservation_id].append((seat_id, label))
    endpoints = (
        list(WebhookEndpoint.objects.filter(api_client_id__in=client_ids, active=True))
        if client_ids
        else []
    )
    messages = []
    for reservation in reservations:
        event_type = f"reservation.{reservation.status}"
        snapshot = {
            "id": str(reservation.public_id),
            "reference": reservation.reference,
            "resource": resource.pk,
            "quantity": reservation.quantity,
            "seats": [seat_id for seat_id, _label in seats[reservation.pk]],
            "status": reservation.status,
            "hold_expires_at": _timestamp(reservation.hold_expires_at),
            "created_at": _timestamp(reservation.created_at),
            "confirmed_at": _timestamp(reservation.confirmed_at),
            "cancelled_at": _timestamp(reservation.cancelled_at),
            "expired_at": _timestamp(reservation.expired_at),
            "customer": {"name": reservation.customer_name, "email": reservation.customer_email},
        }
        if reservation in emailed:
            payload: dict[str, Any] = {
                "reservation": snapshot,
                "resource": {
                    "name": resource.name,
                    "starts_at": _timestamp(resource.starts_at),
                    "ends_at": _timestamp(resource.ends_at),
                },
                "seat_labels": [label for _seat_id, label in seats[reservation.pk]],
                "changed_by": changed_by,
            }
            if manage_token is not None:
                payload["manage_token"] = manage_token
            messages.append(
                OutboxMessage(
                    reservation=reservation,
                    event_type=event_type,
                    channel=OutboxMessage.Channel.EMAIL,
                    target=reservation.customer_email,
                    payload=payload,
                )
            )
        messages.extend(
            OutboxMessage(
                reservation=reservation,
                event_type=event_type,
                channel=OutboxMessage.Channel.WEBHOOK,
                target=str(endpoint.pk),
                payload={"reservation": snapshot},
            )
            for endpoint in endpoints
            if endpoint.api_client_id == reservation.api_client_id
            and (not endpoint.event_types or event_type in endpoint.event_types)
        )
    # A change is told once: an event already in the outbox is not written again.
    OutboxMessage.objects.bulk_create(messages, ignore_conflicts=True)


# Delivery ---------------------------------------------------------------------------


class DeliveryFailed(Exception):
    """A delivery that should be tried again later (or given up, `permanent`)."""

    def __init__(
        self, error: str, *, response_status: int | None = None, permanent: bool = False
    ) -> None:
        super().__init__(error)
        self.response_status = response_status
        self.permanent = permanent


@dataclass(frozen=True)
class OutboundMessage:
    """An outbox row as claimed by a worker."""

    id: int
    event_id: UUID
    event_type: str
    channel: str
    target: str
    payload: dict[str, Any]
    attempts: int
    created_at: datetime


def webhook_body(message: OutboundMessage) -> bytes:
    """The JSON body of a webhook: the same event id and content on every redelivery."""
    event = {
        "id": str(message.event_id),
        "type": message.event_type,
        "occurred_at": message.created_at.isoformat(),
        "reservation": message.payload["reservation"],
    }
    return json.dumps(event, separators=(",", ":"), sort_keys=True).encode()


def webhook_signature(secret: str, timestamp: int, body: bytes) -> str:
    """`t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">` (README, "Webhooks")."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def new_webhook_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirected POST would be replayed as a GET without its body: refuse instead.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def webhook_deliver(message: OutboundMessage, *, url: str, secret: str) -> int:
    """POST the event; returns the response status (2xx) or raises DeliveryFailed."""
    body = webhook_body(message)
    timestamp = int(time.time())
    request = urllib.request.Request(  # noqa: S310 (URLs are validated as http(s) on input)
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "Reservo-Webhooks/1",
            EVENT_ID_HEADER: str(message.event_id),
            "Idempotency-Key": str(message.event_id),
            SIGNATURE_HEADER: webhook_signature(secret, timestamp, body),
        },
    )
    if not url.startswith(("http://", "https://")):
        raise DeliveryFailed(_("Only http and https URLs are supported."), permanent=True)
    try:
        with _opener.open(request, timeout=settings.RESERVO_WEBHOOK_TIMEOUT_S) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        raise DeliveryFailed(f"HTTP {exc.code}", response_status=exc.code) from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DeliveryFailed(f"{type(exc).__name__}: {reason}") from exc


EMAIL_SUBJECTS = {
    "reservation.held": lambda: _("Your places are held: %(reference)s"),
    "reservation.confirmed": lambda: _("Booking confirmed: %(reference)s"),
    "reservation.cancelled": lambda: _("Booking cancelled: %(reference)s"),
    "reservation.expired": lambda: _("Your hold expired: %(reference)s"),
}


def manage_url(reference: str, token: str) -> str | None:
    """The customer's self-service link (the booking pages' manage page)."""
    try:
        path = reverse("bookings:manage", args=[reference])
    except NoReverseMatch:
        return None
    return f"{settings.RESERVO_PUBLIC_URL}{path}?{urlencode({'token': token})}"


def _parse_time(value: str | None) -> datetime | None:
    parsed = parse_datetime(value) if value else None
    return timezone.localtime(parsed) if parsed else None


def email_message(message: OutboundMessage) -> EmailMultiAlternatives:
    """The customer's email for one event, plain text and HTML, from templates/emails/."""
    reservation = message.payload["reservation"]
    resource = message.payload.get("resource", {})
    token = message.payload.get("manage_token")
    context = {
        "event_type": message.event_type,
        "reference": reservation["reference"],
        "customer_name": reservation["customer"]["name"],
        "quantity": reservation["quantity"],
        "seat_labels": message.payload.get("seat_labels", []),
        "resource_name": resource.get("name", ""),
        "starts_at": _parse_time(resource.get("starts_at")),
        "ends_at": _parse_time(resource.get("ends_at")),
        "hold_expires_at": _parse_time(reservation.get("hold_expires_at")),
        "manage_url": manage_url(reservation["reference"], token) if token else None,
        "changed_by": message.payload.get("changed_by", ""),
    }
    template = message.event_type.removeprefix("reservation.")
    with translation.override(settings.LANGUAGE_CODE):
        subject = EMAIL_SUBJECTS[message.event_type]() % {"reference": reservation["reference"]}
        # A block left empty (no manage link) leaves no run of blank lines behind.
        text = re.sub(r"\n{3,}", "\n\n", render_to_string(f"emails/{template}.txt", context))
        html = render_to_string(f"emails/{template}.html", context)
    domain = settings.DEFAULT_FROM_EMAIL.rsplit("@", 1)[-1].strip(" >") or "reservo.localhost"
    email = EmailMultiAlternatives(
        subject=subject,
        body=text,
        to=[message.target],
        # A stable Message-ID: a redelivered email can be recognised as the same one.
        headers={
            "Message-ID": f"<{message.event_id}@{domain}>",
            EVENT_ID_HEADER: str(message.event_id),
        },
    )
    email.attach_alternative(html, "text/html")
    return email


def email_deliver(message: OutboundMessage) -> None:
    try:
        email_message(message).send(fail_silently=False)
    except (OSError, ValueError) as exc:
        raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from exc
