"""Checkout: what is held and until when, the customer's details, confirmation."""

from __future__ import annotations

from contextlib import suppress

from django.contrib import messages
from django.http import (
    HttpRequest,
    HttpResponse,
)
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from bookings.forms import CustomerForm
from bookings.models import Reservation, ReservationStatus
from bookings.page_limits import confirmation_email_wait
from bookings.services import (
    holds_due_by,
    reservation_cancel,
    reservation_confirm,
)
from bookings.views.common import (
    CUSTOMER,
    _manage_path,
    _seat_labels,
    _seconds_left,
    _session_bookings,
    _session_reservation,
)
from reservo.error_pages import error_page, renders_domain_errors
from reservo.errors import (
    HoldExpired,
    InvalidState,
)
from settings_app.selectors import system_settings


def _restart_url(reservation: Reservation) -> str:
    return reverse("bookings:resource", args=[reservation.resource.slug])


def _hold_expired_page(request: HttpRequest, reservation: Reservation) -> HttpResponse:
    return error_page(
        request,
        HoldExpired(
            _(
                "Your hold on %(resource)s ran out of time, so the places were released "
                "for other customers. You can start again: if they are still free, they "
                "are yours to hold."
            )
            % {"resource": reservation.resource.name}
        ),
        restart_url=_restart_url(reservation),
    )


def _not_active_page(request: HttpRequest, reservation: Reservation) -> HttpResponse:
    return error_page(
        request,
        InvalidState(
            _("This reservation is %(status)s.")
            % {"status": reservation.get_status_display().lower()},
            current_status=reservation.status,
        ),
        restart_url=_restart_url(reservation),
    )


@never_cache
@require_http_methods(["GET", "POST"])
@renders_domain_errors
def checkout(request: HttpRequest, reference: str) -> HttpResponse:
    reservation = _session_reservation(request, reference)
    if reservation.status == ReservationStatus.CONFIRMED:
        return redirect("bookings:confirmed", reference=reference)
    seconds_left = _seconds_left(reservation)
    current = system_settings()
    if reservation.status == ReservationStatus.EXPIRED or (
        reservation.status == ReservationStatus.HELD
        and reservation.hold_expires_at is not None
        and reservation.hold_expires_at
        <= holds_due_by(
            reservation.db_now,  # type: ignore[attr-defined]
            maintenance_mode=current.maintenance_mode,
            maintenance_started_at=current.maintenance_started_at,
        )
    ):
        return _hold_expired_page(request, reservation)
    if reservation.status != ReservationStatus.HELD:
        return _not_active_page(request, reservation)

    form = CustomerForm(request.POST or None)
    status = 200
    retry_after = None
    if request.method == "POST" and not form.is_valid():
        status = 400
    elif request.method == "POST":
        retry_after = confirmation_email_wait(request, form.cleaned_data["email"])
        if retry_after is not None:
            form.add_error(
                None,
                _(
                    "Too many confirmation emails were asked for recently, from your "
                    "connection or to this address. Your places stay held until the hold "
                    "ends; please try again in a few minutes."
                ),
            )
            status = 429
        else:
            try:
                reservation_confirm(
                    reservation_id=reservation.pk,
                    actor=CUSTOMER,
                    customer_name=form.cleaned_data["name"],
                    customer_email=form.cleaned_data["email"],
                    # The confirmation email then carries the customer's manage link.
                    manage_token=_session_bookings(request).get(reference),
                    # Its emails are written in the language the page was shown in.
                    language=translation.get_language(),
                )
            except HoldExpired:
                return _hold_expired_page(request, reservation)
            except InvalidState as error:
                if error.extras.get("current_status") == ReservationStatus.CONFIRMED:
                    return redirect("bookings:confirmed", reference=reference)
                return error_page(request, error, restart_url=_restart_url(reservation))
            return redirect("bookings:confirmed", reference=reference)
    response = render(
        request,
        "bookings/checkout.html",
        {
            "reservation": reservation,
            "resource": reservation.resource,
            "seat_labels": _seat_labels(reservation),
            "seconds_left": seconds_left,
            "form": form,
            "maintenance": current,
        },
        status=status,
    )
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response


@require_POST
@renders_domain_errors
def release_hold(request: HttpRequest, reference: str) -> HttpResponse:
    reservation = _session_reservation(request, reference)
    # Already expired or cancelled: the places are free either way.
    with suppress(InvalidState):
        reservation_cancel(reservation_id=reservation.pk, actor=CUSTOMER)
    messages.info(request, _("Your hold was released. Nothing was booked."))
    return redirect("bookings:resource", slug=reservation.resource.slug)


@never_cache
@require_GET
@renders_domain_errors
def confirmed(request: HttpRequest, reference: str) -> HttpResponse:
    reservation = _session_reservation(request, reference)
    if reservation.status == ReservationStatus.HELD:
        return redirect("bookings:checkout", reference=reference)
    token = _session_bookings(request)[reference]
    return render(
        request,
        "bookings/confirmed.html",
        {
            "reservation": reservation,
            "resource": reservation.resource,
            "seat_labels": _seat_labels(reservation),
            "manage_url": request.build_absolute_uri(_manage_path(reference, token)),
        },
    )
