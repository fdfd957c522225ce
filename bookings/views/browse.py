"""Browsing: the home page and a resource page, where places are picked and held."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from django.db.models import F
from django.http import (
    HttpRequest,
    HttpResponse,
    QueryDict,
)
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from bookings.forms import HoldForm
from bookings.page_limits import PlacesLimitReached, hold_admission, hold_rate_wait
from bookings.views.common import (
    LIVE_POLL_MILLISECONDS,
    _booking_rules,
    _hold_once,
    _live_hold,
    _new_form_token,
    _seat_rows,
    _visible_resource,
)
from reservo.error_pages import renders_domain_errors
from reservo.errors import (
    LimitExceeded,
    ResourceNotBookable,
    SalesClosed,
    SeatsUnavailable,
    SoldOut,
    ValidationFailed,
)
from resources.models import Resource, ResourceKind, ResourceState
from resources.selectors import (
    SALES_CLOSED,
    SALES_UPCOMING,
    SEAT_AVAILABLE,
    SEAT_HELD,
    availability_of,
    resources_with_availability,
    sales_not_closed,
    sales_status,
    seat_map,
)

# A seat of this browser's own live hold, on its seat map.
SEAT_YOURS = "yours"

# Pages --------------------------------------------------------------------------------


@require_GET
@renders_domain_errors
def home(request: HttpRequest) -> HttpResponse:
    resources = sales_not_closed(
        resources_with_availability().filter(state=ResourceState.OPEN)
    ).order_by(F("starts_at").asc(nulls_last=True), "id")
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
    sales = sales_status(resource.pk)
    limit = resource.max_per_booking or rules.default_max_per_booking
    live_hold = _live_hold(request, resource)
    seats: list[dict[str, Any]] = []
    if resource.kind == ResourceKind.SEATED:
        taken = set(taken_seat_ids)
        yours = set(live_hold.seat_links.values_list("seat_id", flat=True)) if live_hold else set()
        seats = [
            {**seat, "status": SEAT_YOURS}
            if seat["id"] in yours
            else {**seat, "status": SEAT_HELD}
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
            "live_hold": live_hold,
            "cancelled": resource.state == ResourceState.CANCELLED,
            "sales_upcoming": sales == SALES_UPCOMING,
            "sales_closed": sales == SALES_CLOSED,
            "limit": limit,
            "max_quantity": max(min(limit, availability["available"]), 1),
            "quantity": quantity,
            "seat_rows": _seat_rows(seats),
            "form": shown_form,
            "form_token": token,
            "conflict": conflict,
            "hold_seconds": rules.hold_ttl_seconds,
            "maintenance": rules.maintenance_mode,
            "maintenance_message": rules.maintenance_message,
            "live_url": reverse("bookings:live_resource", args=[resource.pk]),
            "poll_ms": LIVE_POLL_MILLISECONDS,
        },
        status=status,
    )


def _minutes(seconds: int) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return ngettext("%(n)d minute", "%(n)d minutes", minutes) % {"n": minutes}


def _retry_after(page: HttpResponse, seconds: int) -> HttpResponse:
    page["Retry-After"] = str(seconds)
    return page


@never_cache  # Back from the checkout must show this browser's hold, not an old copy
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
    wait = hold_rate_wait(request)
    if wait is not None:
        message = _(
            "Many holds were made from your connection in a short time. Please wait "
            "%(minutes)s and try again."
        ) % {"minutes": _minutes(wait)}
        page = _resource_page(request, resource, form=form, status=429, conflict=message)
        return _retry_after(page, wait)
    places = form.cleaned_data["quantity"] or len(form.cleaned_data["seats"] or [])
    form_token = form.cleaned_data["form_token"]
    try:
        with hold_admission(request, places, form_token) as admission:
            reference = _hold_once(request, form_token, resource, form.cleaned_data)
            admission.record(reference)
    except PlacesLimitReached as refusal:
        message = ngettext(
            "At most %(limit)d place can be held at once from one connection, and "
            "%(held)d already are. Confirm or release a hold first.",
            "At most %(limit)d places can be held at once from one connection, and "
            "%(held)d already are. Confirm or release a hold first.",
            refusal.limit,
        ) % {"limit": refusal.limit, "held": refusal.held}
        page = _resource_page(request, resource, form=form, status=429, conflict=message)
        return _retry_after(page, refusal.retry_after)
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
    except (LimitExceeded, ResourceNotBookable, SalesClosed) as error:
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
