"""Notifications: the transactional outbox, and how each outbox row is delivered.

`outbox_enqueue` runs inside the transaction that changes reservations (from
`services.common.record`), so an outbox row exists exactly when the change committed;
`outbox_enqueue_seats_changed` likewise inside a move to other seats (an email only). The
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
import http.client
import json
import logging
import re
import time
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import connection
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils import timezone, translation
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from bookings.models import (
    SEATS_CHANGED_EVENT,
    OutboxMessage,
    Reservation,
    ReservationSeat,
    ReservationStatus,
    WebhookEndpoint,
)
from bookings.webhook_http import WebhookAddressRefused, WebhookTimeout, webhook_post
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


def webhook_endpoints_active(client_ids: Collection[int]) -> list[WebhookEndpoint]:
    """The active webhook endpoints of these API clients."""
    if not client_ids:
        return []
    return list(WebhookEndpoint.objects.filter(api_client_id__in=client_ids, active=True))


def _snapshot(reservation: Reservation, resource: Resource, seat_ids: list[int]) -> dict[str, Any]:
    """The reservation as the webhooks' payload tells it."""
    return {
        "id": str(reservation.public_id),
        "reference": reservation.reference,
        "resource": resource.pk,
        "quantity": reservation.quantity,
        "seats": seat_ids,
        "status": reservation.status,
        "hold_expires_at": _timestamp(reservation.hold_expires_at),
        "created_at": _timestamp(reservation.created_at),
        "confirmed_at": _timestamp(reservation.confirmed_at),
        "cancelled_at": _timestamp(reservation.cancelled_at),
        "expired_at": _timestamp(reservation.expired_at),
        "customer": {"name": reservation.customer_name, "email": reservation.customer_email},
    }


def _email_payload(
    reservation: Reservation,
    resource: Resource,
    *,
    snapshot: dict[str, Any],
    seat_labels: list[str],
    changed_by: str,
) -> dict[str, Any]:
    """What the worker needs to write the customer's email about the reservation."""
    return {
        "reservation": snapshot,
        "resource": {
            "name": resource.name,
            "starts_at": _timestamp(resource.starts_at),
            "ends_at": _timestamp(resource.ends_at),
        },
        "seat_labels": seat_labels,
        "changed_by": changed_by,
        # The email is written in the language the customer booked in.
        "language": reservation.language,
    }


def outbox_enqueue(
    reservations: Sequence[Reservation],
    *,
    resource: Resource,
    changed_by: str = "",
    manage_token: str | None = None,
    endpoints: Sequence[WebhookEndpoint] | None = None,
    reason: str = "",
) -> None:
    """Write the outbox rows telling the reservations' current status (same transaction):
    an email to each customer with an address, a POST to each of the API client's active
    webhook endpoints that wants the event.

    `reservations` are rows of `resource` as this transaction wrote them. `changed_by`,
    the kind of actor who made the change (customer, api, staff, system), tells the
    customer who cancelled. `manage_token` (plain text, known only at booking time) goes
    into the customer's email row. `endpoints`, the clients' active webhook endpoints if
    the caller read them already (`webhook_endpoints_active`), saves reading them here.
    `reason`, staff's words on the change, goes into the customer's email row.
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
    if endpoints is None:
        endpoints = webhook_endpoints_active(client_ids)
    messages = []
    for reservation in reservations:
        event_type = f"reservation.{reservation.status}"
        snapshot = _snapshot(
            reservation, resource, [seat_id for seat_id, _label in seats[reservation.pk]]
        )
        if reservation in emailed:
            payload = _email_payload(
                reservation,
                resource,
                snapshot=snapshot,
                seat_labels=[label for _seat_id, label in seats[reservation.pk]],
                changed_by=changed_by,
            )
            if manage_token is not None:
                payload["manage_token"] = manage_token
            if reason:
                payload["reason"] = reason
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
    # A change of status is told once: an event already in the outbox for the same target
    # is not written again (outbox_once_per_event_and_target; a seat move is not one).
    OutboxMessage.objects.bulk_create(messages, ignore_conflicts=True)


def outbox_enqueue_seats_changed(
    reservation: Reservation,
    *,
    resource: Resource,
    seats_before: Sequence[tuple[int, str]],
    seats_after: Sequence[tuple[int, str]],
    changed_by: str,
) -> None:
    """Write the email telling the customer their booking moved from `seats_before` to
    `seats_after` ((id, label) pairs, in the order to show), in the transaction of the
    move. Each move is its own email (outbox_once_per_event_and_target leaves this event
    out). Nothing for a customer without an address, nor for a house block; no webhook
    (a move changes no status)."""
    if not reservation.customer_email or reservation.blocked:
        return
    snapshot = _snapshot(reservation, resource, sorted(seat_id for seat_id, _label in seats_after))
    payload = _email_payload(
        reservation,
        resource,
        snapshot=snapshot,
        seat_labels=[label for _seat_id, label in seats_after],
        changed_by=changed_by,
    )
    payload["previous_seat_labels"] = [label for _seat_id, label in seats_before]
    OutboxMessage.objects.create(
        reservation=reservation,
        event_type=SEATS_CHANGED_EVENT,
        channel=OutboxMessage.Channel.EMAIL,
        target=reservation.customer_email,
        payload=payload,
    )


# Delivery ---------------------------------------------------------------------------

logger = logging.getLogger(__name__)


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


def webhook_deliver(message: OutboundMessage, *, url: str, secret: str) -> int:
    """POST the event; returns the response status (2xx) or raises DeliveryFailed.

    The whole delivery ends within RESERVO_WEBHOOK_TIMEOUT_S, and goes only to an address
    that webhooks may reach (bookings.webhook_http).
    """
    body = webhook_body(message)
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Reservo-Webhooks/1",
        EVENT_ID_HEADER: str(message.event_id),
        "Idempotency-Key": str(message.event_id),
        SIGNATURE_HEADER: webhook_signature(secret, timestamp, body),
    }
    try:
        status = webhook_post(
            url,
            body,
            headers,
            timeout=settings.RESERVO_WEBHOOK_TIMEOUT_S,
            allow_private=settings.RESERVO_WEBHOOK_ALLOW_PRIVATE,
        )
    except WebhookAddressRefused as exc:
        raise DeliveryFailed(f"Refused before connecting: {exc}") from exc
    except WebhookTimeout as exc:
        raise DeliveryFailed(f"Timed out: {exc}") from exc
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from exc
    if not 200 <= status < 300:
        note = " (redirects are not followed)" if 300 <= status < 400 else ""
        raise DeliveryFailed(f"HTTP {status}{note}", response_status=status)
    return status


# The circuit breaker, per endpoint, shared by every worker through the endpoint's row.
# Closed: deliveries go. After RESERVO_WEBHOOK_CIRCUIT_FAILURES failures in a row it opens:
# the endpoint's messages are put off, without a connection and without using up an
# attempt, until `circuit_open_until`. Then one delivery (the probe, half-open) is let
# through, and the cool-off starts again meanwhile; its success closes the circuit and
# makes the endpoint's waiting messages due, its failure opens it again.

_CIRCUIT_PROBE_SQL = """
WITH probe AS (
    UPDATE bookings_webhookendpoint
       SET circuit_open_until = now() + make_interval(secs => %(cooloff)s)
     WHERE id = %(id)s AND consecutive_failures >= %(threshold)s
       AND (circuit_open_until IS NULL OR circuit_open_until <= now())
    RETURNING circuit_open_until
)
SELECT e.consecutive_failures,
       COALESCE((SELECT circuit_open_until FROM probe), e.circuit_open_until),
       EXISTS (SELECT FROM probe)
  FROM bookings_webhookendpoint e
 WHERE e.id = %(id)s
"""

_CIRCUIT_FAILED_SQL = """
UPDATE bookings_webhookendpoint
   SET consecutive_failures = consecutive_failures + 1,
       circuit_open_until = CASE
           WHEN consecutive_failures + 1 >= %(threshold)s
           THEN now() + make_interval(secs => %(cooloff)s)
           ELSE circuit_open_until END
 WHERE id = %(id)s
RETURNING consecutive_failures, circuit_open_until
"""

# Returns how many failures in a row there were, when there were any.
_CIRCUIT_CLOSE_SQL = """
WITH before AS (
    SELECT id, consecutive_failures FROM bookings_webhookendpoint
     WHERE id = %(id)s AND (consecutive_failures > 0 OR circuit_open_until IS NOT NULL)
       FOR UPDATE
)
UPDATE bookings_webhookendpoint e
   SET consecutive_failures = 0, circuit_open_until = NULL
  FROM before
 WHERE e.id = before.id
RETURNING before.consecutive_failures
"""

# The messages put off while the circuit was open are due again once it closes.
_CIRCUIT_RELEASE_SQL = """
UPDATE bookings_outboxmessage SET next_attempt_at = now()
 WHERE status = 'pending' AND next_attempt_at > now() AND claim_token IS NULL
   AND channel = 'webhook' AND target = %(target)s
"""


def _circuit_params(endpoint_id: int) -> dict[str, Any]:
    return {
        "id": endpoint_id,
        "threshold": settings.RESERVO_WEBHOOK_CIRCUIT_FAILURES,
        "cooloff": settings.RESERVO_WEBHOOK_CIRCUIT_COOLOFF_S,
    }


def webhook_circuit_open_until(endpoint: WebhookEndpoint) -> datetime | None:
    """Asked before a delivery: None when it may go (the circuit is closed, or this delivery
    is the probe), else until when the endpoint's messages wait. `endpoint` is the row as
    the worker loaded it, kept current by these functions."""
    if endpoint.consecutive_failures < settings.RESERVO_WEBHOOK_CIRCUIT_FAILURES:
        return None
    with connection.cursor() as cursor:
        cursor.execute(_CIRCUIT_PROBE_SQL, _circuit_params(endpoint.pk))
        row = cursor.fetchone()
    if row is None:
        return None  # deleted meanwhile: the delivery says so
    endpoint.consecutive_failures, endpoint.circuit_open_until, probe = row
    if probe:
        logger.info("webhook endpoint %s: circuit half-open, probing", endpoint.pk)
        return None
    if endpoint.consecutive_failures < settings.RESERVO_WEBHOOK_CIRCUIT_FAILURES:
        return None  # closed meanwhile by another worker's success
    return endpoint.circuit_open_until


def webhook_circuit_succeeded(endpoint: WebhookEndpoint) -> None:
    with connection.cursor() as cursor:
        cursor.execute(_CIRCUIT_CLOSE_SQL, _circuit_params(endpoint.pk))
        row = cursor.fetchone()
        was_open = row is not None and row[0] >= settings.RESERVO_WEBHOOK_CIRCUIT_FAILURES
        if was_open:
            cursor.execute(_CIRCUIT_RELEASE_SQL, {"target": str(endpoint.pk)})
    if was_open:
        logger.info("webhook endpoint %s answered again: circuit closed", endpoint.pk)
    endpoint.consecutive_failures, endpoint.circuit_open_until = 0, None


def webhook_circuit_failed(endpoint: WebhookEndpoint) -> None:
    with connection.cursor() as cursor:
        cursor.execute(_CIRCUIT_FAILED_SQL, _circuit_params(endpoint.pk))
        row = cursor.fetchone()
    if row is None:
        return
    endpoint.consecutive_failures, endpoint.circuit_open_until = row
    if endpoint.consecutive_failures >= settings.RESERVO_WEBHOOK_CIRCUIT_FAILURES:
        logger.warning(
            "webhook endpoint %s failed %d times in a row: circuit open until %s",
            endpoint.pk,
            endpoint.consecutive_failures,
            endpoint.circuit_open_until,
        )


EMAIL_SUBJECTS = {
    "reservation.held": lambda: _("Your places are held: %(reference)s"),
    "reservation.confirmed": lambda: _("Booking confirmed: %(reference)s"),
    "reservation.cancelled": lambda: _("Booking cancelled: %(reference)s"),
    "reservation.expired": lambda: _("Your hold expired: %(reference)s"),
    SEATS_CHANGED_EVENT: lambda: _("Your seats have changed: %(reference)s"),
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


def email_language(language: str | None) -> str:
    """The language an email is written in: the booking's, if the site speaks it, else the
    site's default (a booking made before languages were recorded has none)."""
    if language:
        try:
            return translation.get_supported_language_variant(language)
        except LookupError:
            pass
    return settings.LANGUAGE_CODE


def email_message(message: OutboundMessage) -> EmailMultiAlternatives:
    """The customer's email for one event, plain text and HTML, from templates/emails/, in
    the booking's language (its dates too)."""
    reservation = message.payload["reservation"]
    resource = message.payload.get("resource", {})
    token = message.payload.get("manage_token")
    context = {
        "event_type": message.event_type,
        "reference": reservation["reference"],
        "customer_name": reservation["customer"]["name"],
        "quantity": reservation["quantity"],
        "seat_labels": message.payload.get("seat_labels", []),
        "previous_seat_labels": message.payload.get("previous_seat_labels", []),
        "resource_name": resource.get("name", ""),
        "starts_at": _parse_time(resource.get("starts_at")),
        "ends_at": _parse_time(resource.get("ends_at")),
        "hold_expires_at": _parse_time(reservation.get("hold_expires_at")),
        "manage_url": manage_url(reservation["reference"], token) if token else None,
        "changed_by": message.payload.get("changed_by", ""),
        "reason": message.payload.get("reason", ""),
    }
    template = message.event_type.removeprefix("reservation.")
    language = email_language(message.payload.get("language"))
    context["LANGUAGE_CODE"] = language
    with translation.override(language):
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
