"""Self-service: the private manage link, and cancelling a booking from it.

The link carries the booking's secret manage token in its query string. Its first visit
trades the token for an entry in the session (the token's hash, never the token) and
redirects to the bare address, so that the token stays out of the browser's history, of
access logs and of the Referer of the pages that follow.
"""

from __future__ import annotations

import hmac

from django.contrib import messages
from django.db.models.functions import Now
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
)
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from bookings.models import Reservation, ReservationStatus
from bookings.services import (
    reservation_cancel,
)
from bookings.views.common import (
    CUSTOMER,
    REMEMBERED_BOOKINGS,
    SESSION_MANAGED,
    _owned_reservation,
    _seat_labels,
    _seconds_left,
    _session_bookings,
)
from reservo.error_pages import error_page, renders_domain_errors
from reservo.errors import (
    InvalidState,
)


def checked_in_message() -> str:
    return _("This booking is checked in; it can no longer be cancelled.")


def _remember_managed(request: HttpRequest, reservation: Reservation) -> None:
    managed = dict(request.session.get(SESSION_MANAGED, {}))
    managed.pop(reservation.reference, None)
    managed[reservation.reference] = reservation.manage_token_hash
    request.session[SESSION_MANAGED] = dict(list(managed.items())[-REMEMBERED_BOOKINGS:])


def _managed_reservation(request: HttpRequest, reference: str) -> Reservation:
    """The reservation if this browser made it or opened its manage link; else 404."""
    own_token = _session_bookings(request).get(reference)
    if own_token:
        reservation = _owned_reservation(reference, own_token)
    else:
        known_hash = dict(request.session.get(SESSION_MANAGED, {})).get(reference, "")
        reservation = (
            Reservation.objects.select_related("resource")
            .annotate(db_now=Now())
            .filter(reference=reference)
            .first()
        )
        if reservation is not None and not (
            known_hash and hmac.compare_digest(reservation.manage_token_hash, known_hash)
        ):
            reservation = None
    if reservation is None:
        raise Http404
    return reservation


def _token_for_session(request: HttpRequest, reference: str, token: str) -> Reservation:
    """The reservation of a manage token, remembered in this browser's session; else 404."""
    reservation = _owned_reservation(reference, token)
    if reservation is None:
        raise Http404
    _remember_managed(request, reservation)
    return reservation


def _without_token(request: HttpRequest, reference: str, view: str) -> HttpResponse:
    _token_for_session(request, reference, request.GET["token"])
    return HttpResponseRedirect(reverse(view, args=[reference]))


@never_cache
@require_GET
@renders_domain_errors
def manage(request: HttpRequest, reference: str) -> HttpResponse:
    if "token" in request.GET:
        return _without_token(request, reference, "bookings:manage")
    reservation = _managed_reservation(request, reference)
    return render(
        request,
        "bookings/manage.html",
        {
            "reservation": reservation,
            "resource": reservation.resource,
            "seat_labels": _seat_labels(reservation),
            "cancel_url": reverse("bookings:cancel", args=[reference]),
            "seconds_left": _seconds_left(reservation),
        },
    )


@never_cache
@require_http_methods(["GET", "POST"])
@renders_domain_errors
def cancel(request: HttpRequest, reference: str) -> HttpResponse:
    if request.method == "GET" and "token" in request.GET:
        return _without_token(request, reference, "bookings:cancel")
    if request.method == "POST" and request.POST.get("token"):
        # A form rendered with the token in it (before the token went to the session).
        reservation = _token_for_session(request, reference, request.POST["token"])
    else:
        reservation = _managed_reservation(request, reference)
    manage_url = reverse("bookings:manage", args=[reference])
    if request.method == "POST":
        try:
            reservation_cancel(reservation_id=reservation.pk, actor=CUSTOMER)
        except InvalidState as error:
            if error.extras.get("current_status") == ReservationStatus.CONFIRMED:
                # The only confirmed booking a cancel refuses is one checked in since
                # this page was opened.
                messages.warning(request, checked_in_message())
            elif error.extras.get("current_status") in (
                ReservationStatus.CANCELLED,
                ReservationStatus.EXPIRED,
            ):
                messages.info(request, _("This booking was already cancelled."))
            else:
                return error_page(request, error, back_url=manage_url)
        else:
            messages.success(
                request,
                _("Your booking %(reference)s is cancelled. The places were released.")
                % {"reference": reference},
            )
        return HttpResponseRedirect(manage_url)
    if not reservation.is_active:
        messages.info(request, _("This booking was already cancelled."))
        return HttpResponseRedirect(manage_url)
    if reservation.checked_in_at is not None:
        messages.info(request, checked_in_message())
        return HttpResponseRedirect(manage_url)
    return render(
        request,
        "bookings/cancel.html",
        {
            "reservation": reservation,
            "resource": reservation.resource,
            "seat_labels": _seat_labels(reservation),
            "manage_url": manage_url,
        },
    )
