"""Customer booking pages: browse, hold, check out, confirm, manage and cancel.

Views are thin: the booking services decide everything about places and time (from the
database); these views turn their answers into pages. A checkout is tied to the browser
that made the hold: the hold's secret manage token lives in that browser's session, and a
reservation is shown only to whoever presents a token whose hash matches.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterable
from contextlib import suppress
from importlib import import_module
from itertools import groupby
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.db import connection, transaction
from django.db.models import F
from django.db.models.functions import Now
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
    QueryDict,
)
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from bookings.forms import CustomerForm, HoldForm, ManageTokenForm
from bookings.locking import set_local_timeouts
from bookings.models import Reservation, ReservationStatus
from bookings.services import (
    Actor,
    Booking,
    manage_token_hash,
    reservation_book,
    reservation_cancel,
    reservation_confirm,
)
from reservo.error_pages import error_page, renders_domain_errors
from reservo.errors import (
    RETRYABLE_SQLSTATES,
    Busy,
    HoldExpired,
    InvalidState,
    LimitExceeded,
    ResourceNotBookable,
    SeatsUnavailable,
    SoldOut,
    ValidationFailed,
    sqlstate_of,
)
from resources.models import Resource, ResourceKind, ResourceState
from resources.selectors import (
    SEAT_AVAILABLE,
    SEAT_HELD,
    availability_of,
    resource_availability,
    resources_with_availability,
    seat_map,
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


def _is_retryable(error: BaseException) -> bool:
    cause: BaseException | None = error
    while cause is not None:
        if sqlstate_of(cause) in RETRYABLE_SQLSTATES:
            return True
        cause = cause.__cause__
    return False


def _hold_once(
    request: HttpRequest, form_token: str, resource: Resource, cleaned: dict[str, Any]
) -> str | None:
    """Create the hold for one submission of the hold form; returns its reference.

    A form token books at most once: a second submission of the same form (a double
    click, a resubmitted page) gets the first one's reference. The token is claimed
    under a transaction-scoped advisory lock, and the claim is written to the session in
    the same transaction as the hold, so concurrent duplicates cannot both book.
    Returns None when the token is unknown to this session (a stale or foreign form).
    """
    attempts = max(1, settings.RESERVO_SERIALIZATION_RETRIES)
    for attempt in range(1, attempts + 1):
        try:
            with transaction.atomic():
                set_local_timeouts()
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                        ["reservo-form:" + form_token],
                    )
                _reload_session(request)
                tokens = dict(request.session.get(SESSION_FORM_TOKENS, {}))
                if form_token not in tokens:
                    return None
                if tokens[form_token]:
                    return str(tokens[form_token])
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
        except Busy as error:
            if attempt < attempts and _is_retryable(error):
                continue
            raise
    raise AssertionError("unreachable: the last attempt returns or raises")


# Pages --------------------------------------------------------------------------------


@require_GET
@renders_domain_errors
def home(request: HttpRequest) -> HttpResponse:
    resources = (
        resources_with_availability()
        .filter(state=ResourceState.OPEN)
        .order_by(F("starts_at").asc(nulls_last=True), "id")
    )
    cards: list[dict[str, Any]] = [{"resource": r, **availability_of(r)} for r in resources]
    return render(
        request,
        "bookings/home.html",
        {
            "cards": cards,
            "live_url": reverse("bookings:live_resources"),
            "live_ids": ",".join(str(card["resource"].pk) for card in cards),
            "poll_ms": LIVE_POLL_MILLISECONDS,
        },
    )


def _resource_page(
    request: HttpRequest,
    resource: Resource,
    *,
    form: HoldForm | None = None,
    status: int = 200,
    conflict: str = "",
    taken_seat_ids: Iterable[int] = (),
) -> HttpResponse:
    rules = _booking_rules()
    availability = availability_of(resource)
    limit = resource.max_per_booking or rules.default_max_per_booking
    seats: list[dict[str, Any]] = []
    if resource.kind == ResourceKind.SEATED:
        taken = set(taken_seat_ids)
        seats = [
            {**seat, "status": SEAT_HELD}
            if seat["id"] in taken and seat["status"] == SEAT_AVAILABLE
            else dict(seat)
            for seat in seat_map(resource.pk)
        ]
    token = _new_form_token(request)
    selected: set[int] = set()
    quantity = 1
    taken_ids = set(taken_seat_ids)
    if form is not None and isinstance(form.data, QueryDict):
        selected = {
            int(value)
            for value in form.data.getlist("seats")
            if value.isdigit() and int(value) not in taken_ids
        }
        raw_quantity = form.data.get("quantity") or ""
        quantity = int(raw_quantity) if raw_quantity.isdigit() else 1
    for seat in seats:
        seat["selected"] = seat["id"] in selected and seat["status"] == SEAT_AVAILABLE
        seat["just_taken"] = seat["id"] in taken_ids
    shown_form = form or HoldForm(kind=resource.kind, limit=limit)
    return render(
        request,
        "bookings/resource.html",
        {
            "resource": resource,
            "available": availability["available"],
            "capacity": availability["capacity"],
            "bookable": resource.state == ResourceState.OPEN,
            "limit": limit,
            "max_quantity": max(min(limit, availability["available"]), 1),
            "quantity": quantity,
            "seat_rows": _seat_rows(seats),
            "per_row": max((len(row["seats"]) for row in _seat_rows(seats)), default=1),
            "form": shown_form,
            "form_token": token,
            "conflict": conflict,
            "hold_minutes": max(rules.hold_ttl_seconds // 60, 1),
            "maintenance": rules.maintenance_mode,
            "maintenance_message": rules.maintenance_message,
            "live_url": reverse("bookings:live_resource", args=[resource.pk]),
            "poll_ms": LIVE_POLL_MILLISECONDS,
        },
        status=status,
    )


@require_http_methods(["GET", "POST"])
@renders_domain_errors
def resource_detail(request: HttpRequest, slug: str) -> HttpResponse:
    resource = _visible_resource(slug)
    if request.method != "POST":
        return _resource_page(request, resource)

    rules = _booking_rules()
    limit = resource.max_per_booking or rules.default_max_per_booking
    seat_ids = [seat["id"] for seat in seat_map(resource.pk)]
    form = HoldForm(request.POST, kind=resource.kind, limit=limit, seat_ids=seat_ids)
    if not form.is_valid():
        return _resource_page(request, resource, form=form, status=400)
    try:
        reference = _hold_once(
            request, form.cleaned_data["form_token"], resource, form.cleaned_data
        )
    except SeatsUnavailable as error:
        taken = [int(seat_id) for seat_id in error.extras.get("seats", [])]
        labels = [seat["label"] for seat in seat_map(resource.pk) if seat["id"] in taken]
        message = ngettext(
            "Sorry, seat %(seats)s was just taken by someone else. "
            "It is now marked as taken; the rest of your choice is kept.",
            "Sorry, seats %(seats)s were just taken by someone else. "
            "They are now marked as taken; the rest of your choice is kept.",
            len(labels) or 1,
        ) % {"seats": ", ".join(labels) or "?"}
        return _resource_page(
            request, resource, form=form, status=409, conflict=message, taken_seat_ids=taken
        )
    except SoldOut as error:
        available = int(error.extras.get("available", 0))
        if available:
            message = ngettext(
                "Not enough places left: only %(n)d place is still available.",
                "Not enough places left: only %(n)d places are still available.",
                available,
            ) % {"n": available}
        else:
            message = _("Sorry, this is now sold out.")
        fresh = _visible_resource(slug)
        return _resource_page(request, fresh, form=form, status=409, conflict=message)
    except (LimitExceeded, ResourceNotBookable) as error:
        fresh = _visible_resource(slug)
        return _resource_page(request, fresh, form=form, status=409, conflict=error.detail)
    except ValidationFailed as error:
        for field, field_errors in error.errors.items():
            for message in field_errors:
                form.add_error(field if field in form.fields else None, message)
        return _resource_page(request, resource, form=form, status=400)
    if reference is None:
        return _resource_page(
            request,
            resource,
            form=form,
            status=400,
            conflict=_("This form had expired, so nothing was booked. Please choose again."),
        )
    return redirect("bookings:checkout", reference=reference)


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
    if reservation.status == ReservationStatus.EXPIRED or (
        reservation.status == ReservationStatus.HELD and seconds_left <= 0
    ):
        return _hold_expired_page(request, reservation)
    if reservation.status != ReservationStatus.HELD:
        return _not_active_page(request, reservation)

    form = CustomerForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                reservation_confirm(
                    reservation_id=reservation.pk,
                    actor=CUSTOMER,
                    customer_name=form.cleaned_data["name"],
                    customer_email=form.cleaned_data["email"],
                    # The confirmation email then carries the customer's manage link.
                    manage_token=_session_bookings(request).get(reference),
                )
            except HoldExpired:
                return _hold_expired_page(request, reservation)
            except InvalidState as error:
                if error.extras.get("current_status") == ReservationStatus.CONFIRMED:
                    return redirect("bookings:confirmed", reference=reference)
                return error_page(request, error, restart_url=_restart_url(reservation))
            return redirect("bookings:confirmed", reference=reference)
        status = 400
    return render(
        request,
        "bookings/checkout.html",
        {
            "reservation": reservation,
            "resource": reservation.resource,
            "seat_labels": _seat_labels(reservation),
            "seconds_left": seconds_left,
            "form": form,
        },
        status=status,
    )


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


def _manage_path(reference: str, token: str) -> str:
    return reverse("bookings:manage", args=[reference]) + "?" + urlencode({"token": token})


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


# Live availability (polled by the pages; served from the ≤1 s shared cache) ----------


def _live_payload(resource_id: int, availability: dict[str, int]) -> dict[str, Any]:
    return {
        "id": resource_id,
        "available": availability["available"],
        "capacity": availability["capacity"],
    }


@never_cache
@require_GET
@renders_domain_errors
def live_resource(request: HttpRequest, resource_id: int) -> JsonResponse:
    availability = resource_availability(resource_id)
    if availability is None:
        return JsonResponse({"detail": _("Not found.")}, status=404)
    payload = _live_payload(resource_id, availability)
    payload["seats"] = [
        {"id": seat["id"], "label": seat["label"], "status": seat["status"]}
        for seat in seat_map(resource_id)
    ]
    return JsonResponse(payload)


@never_cache
@require_GET
@renders_domain_errors
def live_resources(request: HttpRequest) -> JsonResponse:
    ids = []
    for part in request.GET.get("ids", "").split(",")[:LIVE_MAX_IDS]:
        if part.strip().isdigit():
            ids.append(int(part))
    results = []
    for resource_id in dict.fromkeys(ids):
        availability = resource_availability(resource_id)
        if availability is not None:
            results.append(_live_payload(resource_id, availability))
    return JsonResponse({"results": results})
