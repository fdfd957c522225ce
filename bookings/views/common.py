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
from django.core.signing import BadSignature, TimestampSigner
from django.db import connection, transaction
from django.db.models.functions import Now
from django.http import (
    Http404,
    HttpRequest,
)
from django.middleware.csrf import get_token
from django.urls import reverse
from django.utils import translation
from django.utils.crypto import salted_hmac

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
# Session keys: reference -> manage token of this browser's bookings; reference -> manage
# token hash of the bookings whose manage link it opened; used form tokens -> the reference
# of the hold each created; when (database clock, epoch seconds) a hold created the session.
SESSION_BOOKINGS = "reservo_bookings"
SESSION_MANAGED = "reservo_managed"
SESSION_FORM_TOKENS = "reservo_form_tokens"
SESSION_CREATED = "reservo_created"
REMEMBERED_BOOKINGS = 20
REMEMBERED_FORM_TOKENS = 20
# A hold form is good for this long after its page was shown.
FORM_TOKEN_MAX_AGE_SECONDS = 6 * 3600
# Submissions sent before the browser had a session (a double click, two tabs) find the
# session that the first of them created for as long as this, and no longer.
SESSION_ADOPTION_SECONDS = 120
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
    """The reservation if `token` is its manage token (compared by hash, in constant time).
    A house block is never a customer's, whatever token is shown."""
    if not token:
        return None
    reservation = (
        Reservation.objects.select_related("resource")
        .annotate(db_now=Now())
        .filter(reference=reference, blocked=False)
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


# One-time form tokens -------------------------------------------------------------------
#
# Showing an event page writes nothing: its hold form carries a signed token, bound to this
# browser's CSRF cookie (which the POST must carry anyway), and stored nowhere. The session
# is created by the first hold. A token books at most once: the session records the token
# with the hold it made, in the hold's transaction, under locks on the browser and the
# token. Submissions sent before the browser had a session cannot carry its cookie: the
# session a hold creates has a key derived (with SECRET_KEY) from the browser's CSRF
# secret, so that they find it, for SESSION_ADOPTION_SECONDS only.


def _form_signer(browser: str) -> TimestampSigner:
    return TimestampSigner(salt=f"reservo.form-token:{browser}")


def _new_form_token(request: HttpRequest) -> str:
    get_token(request)  # this browser's CSRF secret, set in a cookie if it had none
    return _form_signer(request.META["CSRF_COOKIE"]).sign(secrets.token_urlsafe(8))


def _form_token_valid(request: HttpRequest, form_token: str) -> bool:
    browser = request.META.get("CSRF_COOKIE")
    if not browser:
        return False
    try:
        _form_signer(browser).unsign(form_token, max_age=FORM_TOKEN_MAX_AGE_SECONDS)
    except BadSignature:  # forged, of another browser, or expired
        return False
    return True


def _browser_session_key(browser: str) -> str:
    return salted_hmac("reservo.browser-session", browser, algorithm="sha256").hexdigest()[:32]


def _reload_session(request: HttpRequest, own_key: str | None, key: str, now: float) -> bool:
    """Read this browser's session again (called under its lock, so it is current).

    Without a session of its own, the request takes the one its browser's first hold
    created moments ago, if any, else a new one (keyed `key` if that is free). Returns True
    if the new session must be inserted under that key.
    """
    engine = import_module(settings.SESSION_ENGINE)
    if own_key:
        request.session = engine.SessionStore(own_key)
        return False
    found = engine.SessionStore(key)
    created = found.get(SESSION_CREATED)
    recent = isinstance(created, float | int) and 0 <= now - created <= SESSION_ADOPTION_SECONDS
    if found.session_key is not None and recent:
        found.modified = True  # its cookie goes with this response too
        request.session = found
        return False
    session = engine.SessionStore()
    session[SESSION_CREATED] = now
    request.session = session
    if found.session_key is None:
        session._session_key = key
        return True
    return False


def _hold_once(
    request: HttpRequest, form_token: str, resource: Resource, cleaned: dict[str, Any]
) -> str | None:
    """Create the hold for one submission of the hold form; returns its reference.

    A form token books at most once: a second submission of the same form (a double
    click, a resubmitted page) gets the first one's reference. The token is claimed
    under a transaction-scoped advisory lock, and the claim is written to the session in
    the same transaction as the hold, so concurrent duplicates cannot both book.
    Returns None when the token is not valid for this browser (a stale or foreign form).

    A browser holds at most once per resource at a time: while its hold is live, another
    submission (the back button, a second tab) gets that hold's reference. The browser's
    session is locked too, so two tabs cannot both hold.
    """
    if not _form_token_valid(request, form_token):
        return None
    request.session.keys()  # loads it: a session that no longer exists has no key
    own_key = request.session.session_key
    key = own_key or _browser_session_key(request.META["CSRF_COOKIE"])

    def attempt() -> str | None:
        with transaction.atomic():
            set_local_timeouts()
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0)),"
                    " pg_advisory_xact_lock(hashtextextended(%s, 0)),"
                    " extract(epoch FROM clock_timestamp())::float8",
                    [f"reservo-session-hold:{key}", "reservo-form:" + form_token],
                )
                now = cursor.fetchone()[2]
            insert = _reload_session(request, own_key, key, now)
            tokens = dict(request.session.get(SESSION_FORM_TOKENS, {}))
            if tokens.get(form_token):
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
                # The language of the page: the booking's emails are written in it.
                language=translation.get_language(),
            )
            tokens[form_token] = booking.reservation.reference
            request.session[SESSION_FORM_TOKENS] = dict(
                list(tokens.items())[-REMEMBERED_FORM_TOKENS:]
            )
            _remember_booking(request, booking)
            request.session.save(must_create=insert)
            return booking.reservation.reference

    original = request.session
    try:
        return retrying_conflicts(attempt)
    except BaseException:
        request.session = original  # nothing was held: no session is written
        raise


def _manage_path(reference: str, token: str) -> str:
    return reverse("bookings:manage", args=[reference]) + "?" + urlencode({"token": token})
