"""Self-service: the private manage link, and cancelling a booking from it."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
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

from bookings.forms import ManageTokenForm
from bookings.models import Reservation, ReservationStatus
from bookings.services import (
    reservation_cancel,
)
from bookings.views.common import (
    CUSTOMER,
    _manage_path,
    _owned_reservation,
    _seat_labels,
    _seconds_left,
)
from reservo.error_pages import error_page, renders_domain_errors
from reservo.errors import (
    InvalidState,
)


def _manage_reservation(request: HttpRequest, reference: str, token: str | None) -> Reservation:
    reservation = _owned_reservation(reference, token)
    if reservation is None:
        raise Http404
    return reservation


@never_cache
@require_GET
@renders_domain_errors
def manage(request: HttpRequest, reference: str) -> HttpResponse:
    token = request.GET.get("token", "")
    reservation = _manage_reservation(request, reference, token)
    return render(
        request,
        "bookings/manage.html",
        {
            "reservation": reservation,
            "resource": reservation.resource,
            "seat_labels": _seat_labels(reservation),
            "token": token,
            "cancel_url": reverse("bookings:cancel", args=[reference])
            + "?"
            + urlencode({"token": token}),
            "seconds_left": _seconds_left(reservation),
        },
    )


@never_cache
@require_http_methods(["GET", "POST"])
@renders_domain_errors
def cancel(request: HttpRequest, reference: str) -> HttpResponse:
    token = (request.POST if request.method == "POST" else request.GET).get("token", "")
    reservation = _manage_reservation(request, reference, token)
    manage_url = _manage_path(reference, token)
    if request.method == "POST":
        form = ManageTokenForm(request.POST)
        if form.is_valid():
            try:
                reservation_cancel(reservation_id=reservation.pk, actor=CUSTOMER)
            except InvalidState as error:
                if error.extras.get("current_status") not in (
                    ReservationStatus.CANCELLED,
                    ReservationStatus.EXPIRED,
                ):
                    return error_page(request, error, back_url=manage_url)
                messages.info(request, _("This booking was already cancelled."))
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
    return render(
        request,
        "bookings/cancel.html",
        {
            "reservation": reservation,
            "resource": reservation.resource,
            "seat_labels": _seat_labels(reservation),
            "form": ManageTokenForm(initial={"token": token}),
            "manage_url": manage_url,
        },
    )
