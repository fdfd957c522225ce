"""Shared by the booking pages: reads, this browser's session, the one-time hold."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterable
from importlib import import_module
from itertools import groupby
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.db import connection, transaction
from django.db.models.functions import Now
from django.http import (
    Http404,
    HttpRequest,
)
from django.urls import reverse

from bookings.locking import retrying_conflicts, set_local_timeouts
from bookings.models import Reservation, ReservationStatus
from bookings.services import (
    Actor,
    Booking,
    manage_token_hash,
    reservation_book,
)
from resources.models import Resource, ResourceState
from resources.selectors import (
    resources_with_availability,
)
from settings_app.selectors import SettingsSnapshot, system_settings

CUSTOMER = Actor("customer")
# Session keys: reference -> manage token of this browser's bookings; one-time form
# tokens -> the reference of the hold they created ("" until used).
SESSION_BOOKINGS = "reservo_bookings"
SESSION_FORM_TOKENS = "reservo_form_tokens"
REMEMBERED_BOOKINGS = 20
REMEMBERED_FORM_TOKENS = 20
LIVE_POLL_MILLISECONDS = 2000
LIVE_MAX_IDS = 100


# Reads --------------------------------------------------------------------------------


def _booking_rules() -> SettingsSnapshot:
    return system_settings()


def _visible_resource(slug: str) -> Resource:
    resource = (
        resources_with_availability().filter(slug=slug).exclude(state=ResourceState.DRAFT).first()
    )
    if resource is None:
        raise Http404
    return resource


def _seat_rows(seats: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for row, row_seats in groupby(seats, key=lambda seat: seat["row"]):
        seat_list = list(row_seats)
        rows.append({"row": row, "seats": seat_list})
    return rows


def _owned_reservation(reference: str, token: str | None) -> Reservation | None:
    """The reservation if `token` is its manage token (compared by hash, in constant time)."""
    if not token:
        return None
    reservation = (
        Reservation.objects.select_related("resource")
        .annotate(db_now=Now())
        .filter(reference=reference)
        .first()
    )
    if reservation is None:
        return None
    if not hmac.compare_digest(reservation.manage_token_hash, manage_token_hash(token)):
        return None
    return reservation


def _seat_labels(reservation: Reservation) -> list[str]:
    return list(
        reservation.seat_links.order_by("seat__row", "seat__number", "seat__label").values_list(
            "seat__label", flat=True
        )
    )


def _seconds_left(reservation: Reservation) -> int:
    if reservation.status != ReservationStatus.HELD or reservation.hold_expires_at is None:
        return 0
    left = (reservation.hold_expires_at - reservation.db_now).total_seconds()  # type: ignore[attr-defined]
    return max(int(left), 0)


# Session ------------------------------------------------------------------------------


def _session_bookings(request: HttpRequest) -> dict[str, str]:
    return dict(request.session.get(SESSION_BOOKINGS, {}))


def _remember_booking(request: HttpRequest, booking: Booking) -> None:
    bookings = _session_bookings(request)
    bookings.pop(booking.reservation.reference, None)
    bookings[booking.reservation.reference] = booking.manage_token
    request.session[SESSION_BOOKINGS] = dict(list(bookings.items())[-REMEMBERED_BOOKINGS:])


def _live_hold(request: HttpRequest, resource: Resource) -> Reservation | None:
    """This browser's live hold on `resource`, if it has one (by the database clock)."""
    references = list(_session_bookings(request))
    if not references:
        return None
    return (
        Reservation.objects.filter(
            reference__in=references,
            resource=resource,
            status=ReservationStatus.HELD,
            hold_expires_at__gt=Now(),
        )
        .order_by("-created_at")
        .first()
    )


def _session_reservation(request: HttpRequest, reference: str) -> Reservation:
    """This browser's reservation, or 404 (no existence leak for anyone else)."""
    reservation = _owned_reservation(reference, _session_bookings(request).get(reference))
    if reservation is None:
        raise Http404
    return reservation


def _new_form_token(request: HttpRequest) -> str:
    token = secrets.token_urlsafe(18)
    tokens = dict(request.session.get(SESSION_FORM_TOKENS, {}))
    tokens[token] = ""
    request.session[SESSION_FORM_TOKENS] = dict(list(tokens.items())[-REMEMBERED_FORM_TOKENS:])
    return token


def _reload_session(request: HttpRequest) -> None:
    """Read the session again (called under the form-token lock, so it is current)."""
    engine = import_module(settings.SESSION_ENGINE)
    request.session = engine.SessionStore(request.session.session_key)


def _hold_once(
    request: HttpRequest, form_token: str, resource: Resource, cleaned: dict[str, Any]
) -> str | None:
    """Create the hold for one submission of the hold form; returns its reference.

    A form token books at most once: a second submission of the same form (a double
    click, a resubmitted page) gets the first one's reference. The token is claimed
    under a transaction-scoped advisory lock, and the claim is written to the session in
    the same transaction as the hold, so concurrent duplicates cannot both book.
    Returns None when the token is unknown to this session (a stale or foreign form).

    A browser holds at most once per resource at a time: while its hold is live, another
    submission (the back button, a second tab) gets that hold's reference. The session
    and the resource are locked together too, so two tabs cannot both hold.
    """

    def attempt() -> str | None:
        with transaction.atomic():
            set_local_timeouts()
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0)),"
                    " pg_advisory_xact_lock(hashtextextended(%s, 0))",
                    [
                        f"reservo-session-hold:{request.session.session_key}:{resource.pk}",
                        "reservo-form:" + form_token,
                    ],
                )
            _reload_session(request)
            tokens = dict(request.session.get(SESSION_FORM_TOKENS, {}))
            if form_token not in tokens:
                return None
            if tokens[form_token]:
                return str(tokens[form_token])
            live = _live_hold(request, resource)
            if live is not None:
                return live.reference
            booking = reservation_book(
                resource_id=resource.pk,
                actor=CUSTOMER,
                quantity=cleaned["quantity"],
                seat_ids=cleaned["seats"],
                hold=True,
            )
            tokens[form_token] = booking.reservation.reference
            request.session[SESSION_FORM_TOKENS] = tokens
            _remember_booking(request, booking)
            request.session.save()
            return booking.reservation.reference

    return retrying_conflicts(attempt)


def _manage_path(reference: str, token: str) -> str:
    return reverse("bookings:manage", args=[reference]) + "?" + urlencode({"token": token})
