"""Bookings by staff in the back office: a new booking on a resource (by quantity, or seats
on the customers' seat map), an edit of a booking's customer details, a move to other seats.

Each page calls one booking service with the staff user as the actor; whatever the service
refuses comes back as an error on the form, which keeps what was typed.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from itertools import groupby
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from bookings.models import ACTIVE_STATUSES, Reservation, ReservationSeat, ReservationStatus
from bookings.services import (
    Actor,
    reservation_book,
    reservation_move_seats,
    reservation_update_customer,
)
from reservo.errors import (
    HoldExpired,
    InvalidState,
    LimitExceeded,
    ReservoError,
    SeatsUnavailable,
    SoldOut,
    ValidationFailed,
)
from resources.models import Resource, ResourceKind, ResourceState
from resources.selectors import (
    SEAT_AVAILABLE,
    SEAT_BOOKED,
    SEAT_HELD,
    availability_of,
    resources_with_availability,
    seat_map,
)

# A seat of the booking being moved, on its seat map.
SEAT_OWN = "yours"
SEAT_STATUS_LABELS = {
    SEAT_AVAILABLE: _("available"),
    SEAT_HELD: _("taken (on hold)"),
    SEAT_BOOKED: _("booked"),
    SEAT_OWN: _("this booking's seat"),
}
CONFIRM, HOLD = "confirm", "hold"


# Forms --------------------------------------------------------------------------------


class CustomerDetailsForm(forms.Form):
    """Who the booking is for. The service cleans and validates them again."""

    required_css_class = "required"

    customer_name = forms.CharField(label=_("Customer name"), max_length=200)
    customer_email = forms.EmailField(
        label=_("Email"),
        required=False,
        help_text=_("The confirmation and the customer's manage link are sent here."),
    )
    customer_phone = forms.CharField(label=_("Phone"), max_length=40, required=False)
    note = forms.CharField(
        label=_("Note"),
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("For staff only; the customer never sees it."),
    )


class SeatsField(forms.TypedMultipleChoiceField):
    def __init__(self, seat_ids: Iterable[int], *, required_message: str) -> None:
        super().__init__(
            label=_("Seats"),
            coerce=int,
            choices=[(seat_id, str(seat_id)) for seat_id in seat_ids],
            error_messages={
                "invalid_choice": _("One of these seats does not exist any more."),
                "required": required_message,
            },
        )


class StaffBookingForm(CustomerDetailsForm):
    quantity = forms.IntegerField(
        label=_("Number of places"),
        min_value=1,
        error_messages={"invalid": _("Enter a whole number of places.")},
    )
    mode = forms.ChoiceField(
        label=_("Booking"),
        choices=[
            (CONFIRM, _("Confirm now")),
            (HOLD, _("Hold: the customer confirms through the link in the email")),
        ],
        initial=CONFIRM,
        widget=forms.RadioSelect(attrs={"class": "radiolist"}),
    )
    field_order = ["quantity", "seats", "customer_name", "customer_email", "customer_phone"]

    def __init__(self, *args: Any, resource: Resource, seat_ids: Iterable[int], **kwargs: Any):
        super().__init__(*args, **kwargs)
        if resource.kind == ResourceKind.SEATED:
            del self.fields["quantity"]
            self.fields["seats"] = SeatsField(
                seat_ids, required_message=gettext("Choose at least one seat.")
            )
        self.order_fields(self.field_order)


class MoveSeatsForm(forms.Form):
    def __init__(self, *args: Any, seat_ids: Iterable[int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["seats"] = SeatsField(
            seat_ids, required_message=gettext("Choose the seats to move to.")
        )


def _add_errors(form: forms.Form, errors: dict[str, list[str]]) -> None:
    for field, field_errors in errors.items():
        for message in field_errors:
            form.add_error(field if field in form.fields else None, message)


# The seat map -------------------------------------------------------------------------


def _seat_rows(
    resource_id: int,
    *,
    selected: Collection[int] = (),
    own: Collection[int] = (),
    just_taken: Collection[int] = (),
) -> list[dict[str, Any]]:
    """The customers' seat map (`resources.selectors.seat_map`), grouped by row for
    `bookings/_seat_rows.html`: `own` seats (the booking's being moved) can be picked
    again, `just_taken` ones are shown taken whatever the cached map says."""
    seats = []
    for seat in seat_map(resource_id):
        status = seat["status"]
        if seat["id"] in own:
            status = SEAT_OWN
        elif seat["id"] in just_taken and status == SEAT_AVAILABLE:
            status = SEAT_HELD
        pickable = status in (SEAT_AVAILABLE, SEAT_OWN)
        seats.append(
            {
                **seat,
                "status": status,
                "status_label": SEAT_STATUS_LABELS[status],
                "pickable": pickable,
                "selected": pickable and seat["id"] in selected,
                "just_taken": seat["id"] in just_taken,
            }
        )
    return [
        {"row": row, "seats": list(row_seats)}
        for row, row_seats in groupby(seats, key=lambda seat: seat["row"])
    ]


def _selected_seats(form: forms.Form) -> set[int]:
    data = form.data
    values = data.getlist("seats") if isinstance(data, QueryDict) else []
    return {int(value) for value in values if str(value).isdigit()}


def _seats_taken_message(error: SeatsUnavailable, resource_id: int) -> tuple[str, list[int]]:
    taken = [int(seat_id) for seat_id in error.extras.get("seats", [])]
    labels = [seat["label"] for seat in seat_map(resource_id) if seat["id"] in taken]
    message = ngettext(
        "Seat %(seats)s is taken by another booking; it is now marked as taken and the "
        "rest of the choice is kept.",
        "Seats %(seats)s are taken by other bookings; they are now marked as taken and the "
        "rest of the choice is kept.",
        len(labels) or 1,
    ) % {"seats": ", ".join(labels) or "?"}
    return message, taken


# Pages --------------------------------------------------------------------------------


def _context(model_admin: admin.ModelAdmin, request: HttpRequest, **extra: Any) -> dict[str, Any]:
    return {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        **extra,
    }


def _change_url(reservation: Reservation) -> str:
    return reverse("admin:bookings_reservation_change", args=[reservation.pk])


def choose_resource_view(model_admin: admin.ModelAdmin, request: HttpRequest) -> HttpResponse:
    """The reservations list's "New booking": the resources open for booking, to pick one."""
    if not request.user.has_perm("bookings.add_reservation"):
        raise PermissionDenied
    resources = [
        {"resource": resource, **availability_of(resource)}
        for resource in resources_with_availability()
        .filter(state=ResourceState.OPEN)
        .order_by("starts_at", "id")
    ]
    context = _context(model_admin, request, title=gettext("New booking"), resources=resources)
    return TemplateResponse(request, "admin/bookings/reservation/new_booking_choose.html", context)


def new_booking_view(
    model_admin: admin.ModelAdmin, request: HttpRequest, resource_id: int
) -> HttpResponse:
    """A booking made by staff on one resource, confirmed at once or held."""
    if not request.user.has_perm("bookings.add_reservation"):
        raise PermissionDenied
    resource = get_object_or_404(resources_with_availability(), pk=resource_id)
    seated = resource.kind == ResourceKind.SEATED
    seat_ids = [seat["id"] for seat in seat_map(resource.pk)] if seated else []
    just_taken: list[int] = []
    if request.method == "POST":
        form = StaffBookingForm(request.POST, resource=resource, seat_ids=seat_ids)
        if form.is_valid():
            data = form.cleaned_data
            try:
                booking = reservation_book(
                    resource_id=resource.pk,
                    actor=Actor.staff(request.user),
                    quantity=None if seated else data["quantity"],
                    seat_ids=data["seats"] if seated else None,
                    hold=data["mode"] == HOLD,
                    customer_name=data["customer_name"],
                    customer_email=data["customer_email"],
                    customer_phone=data["customer_phone"],
                    note=data["note"],
                    language=translation.get_language() or "",
                )
            except SeatsUnavailable as error:
                message, just_taken = _seats_taken_message(error, resource.pk)
                form.add_error("seats", message)
            except SoldOut as error:
                available = int(error.extras.get("available", 0))
                form.add_error(
                    "seats" if seated else "quantity",
                    ngettext(
                        "Not enough places left: only %(n)d place is available.",
                        "Not enough places left: only %(n)d places are available.",
                        available,
                    )
                    % {"n": available}
                    if available
                    else gettext("Sold out: no place is left."),
                )
            except LimitExceeded as error:
                form.add_error("seats" if seated else "quantity", error.detail)
            except ValidationFailed as error:
                _add_errors(form, error.errors)
            except ReservoError as error:
                form.add_error(None, error.detail)
            else:
                reservation = booking.reservation
                model_admin.message_user(request, _booked_message(reservation), messages.SUCCESS)
                return HttpResponseRedirect(_change_url(reservation))
    else:
        form = StaffBookingForm(resource=resource, seat_ids=seat_ids)
    availability = availability_of(resource)
    context = _context(
        model_admin,
        request,
        title=gettext("New booking: %(resource)s") % {"resource": resource.name},
        resource=resource,
        resource_url=reverse("admin:resources_resource_change", args=[resource.pk]),
        form=form,
        seated=seated,
        seat_rows=_seat_rows(
            resource.pk,
            selected=_selected_seats(form) - set(just_taken) if form.is_bound else (),
            just_taken=just_taken,
        )
        if seated
        else [],
        available=availability["available"],
        capacity=availability["capacity"],
        bookable=resource.state == ResourceState.OPEN,
    )
    return TemplateResponse(request, "admin/bookings/reservation/new_booking.html", context)


def _booked_message(reservation: Reservation) -> str:
    values = {
        "reference": reservation.reference,
        "count": reservation.quantity,
        "name": reservation.customer_name,
    }
    if reservation.status == ReservationStatus.HELD:
        return (
            ngettext(
                "Booking %(reference)s: %(count)d place held for %(name)s.",
                "Booking %(reference)s: %(count)d places held for %(name)s.",
                reservation.quantity,
            )
            % values
        )
    return (
        ngettext(
            "Booking %(reference)s: %(count)d place confirmed for %(name)s.",
            "Booking %(reference)s: %(count)d places confirmed for %(name)s.",
            reservation.quantity,
        )
        % values
    )


def edit_details_view(
    model_admin: admin.ModelAdmin, request: HttpRequest, object_id: int
) -> HttpResponse:
    """Change the customer's name, email, phone and the staff note of a booking."""
    if not request.user.has_perm("bookings.change_reservation"):
        raise PermissionDenied
    reservation = get_object_or_404(Reservation.objects.select_related("resource"), pk=object_id)
    if request.method == "POST":
        form = CustomerDetailsForm(request.POST)
        if form.is_valid():
            try:
                updated = reservation_update_customer(
                    reservation_id=reservation.pk,
                    actor=Actor.staff(request.user),
                    **form.cleaned_data,
                )
            except ValidationFailed as error:
                _add_errors(form, error.errors)
            except ReservoError as error:
                form.add_error(None, error.detail)
            else:
                model_admin.message_user(
                    request,
                    gettext("Details of %(reference)s saved.") % {"reference": updated.reference},
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(_change_url(reservation))
    else:
        form = CustomerDetailsForm(
            initial={
                field: getattr(reservation, field)
                for field in ("customer_name", "customer_email", "customer_phone", "note")
            }
        )
    context = _context(
        model_admin,
        request,
        title=gettext("Edit details of %(reference)s") % {"reference": reservation.reference},
        reservation=reservation,
        reservation_url=_change_url(reservation),
        form=form,
    )
    return TemplateResponse(request, "admin/bookings/reservation/edit_details.html", context)


def move_seats_view(
    model_admin: admin.ModelAdmin, request: HttpRequest, object_id: int
) -> HttpResponse:
    """Move a held or confirmed booking to other seats of its resource, as many as it has."""
    if not request.user.has_perm("bookings.change_reservation"):
        raise PermissionDenied
    reservation = get_object_or_404(Reservation.objects.select_related("resource"), pk=object_id)
    resource = reservation.resource
    if resource.kind != ResourceKind.SEATED or reservation.status not in ACTIVE_STATUSES:
        model_admin.message_user(
            request,
            gettext("Only a held or confirmed booking with seats can move to other seats."),
            messages.ERROR,
        )
        return HttpResponseRedirect(_change_url(reservation))
    own = set(
        ReservationSeat.objects.filter(reservation=reservation, active=True).values_list(
            "seat_id", flat=True
        )
    )
    seat_ids = [seat["id"] for seat in seat_map(resource.pk)]
    just_taken: list[int] = []
    if request.method == "POST":
        form = MoveSeatsForm(request.POST, seat_ids=seat_ids)
        if form.is_valid():
            try:
                reservation_move_seats(
                    reservation_id=reservation.pk,
                    actor=Actor.staff(request.user),
                    seat_ids=form.cleaned_data["seats"],
                )
            except SeatsUnavailable as error:
                message, just_taken = _seats_taken_message(error, resource.pk)
                form.add_error("seats", message)
            except ValidationFailed as error:
                _add_errors(form, error.errors)
            except (HoldExpired, InvalidState) as error:
                # No longer a booking that can move: its page says what it has become.
                model_admin.message_user(request, error.detail, messages.ERROR)
                return HttpResponseRedirect(_change_url(reservation))
            except ReservoError as error:
                form.add_error(None, error.detail)
            else:
                labels = [seat["label"] for seat in seat_map(resource.pk) if seat["id"] in own]
                moved_to = ReservationSeat.objects.filter(reservation=reservation, active=True)
                moved = gettext("%(reference)s moved from seats %(old)s to %(new)s.") % {
                    "reference": reservation.reference,
                    "old": ", ".join(labels),
                    "new": ", ".join(
                        moved_to.order_by("seat__row", "seat__number", "seat__label").values_list(
                            "seat__label", flat=True
                        )
                    ),
                }
                if reservation.customer_email and not reservation.blocked:
                    moved += " " + gettext("%(email)s is emailed the new seats.") % {
                        "email": reservation.customer_email
                    }
                model_admin.message_user(request, moved, messages.SUCCESS)
                return HttpResponseRedirect(_change_url(reservation))
        selected = _selected_seats(form) - set(just_taken)
    else:
        form = MoveSeatsForm(seat_ids=seat_ids)
        selected = own
    context = _context(
        model_admin,
        request,
        title=gettext("Move %(reference)s to other seats") % {"reference": reservation.reference},
        reservation=reservation,
        reservation_url=_change_url(reservation),
        form=form,
        seat_rows=_seat_rows(resource.pk, selected=selected, own=own, just_taken=just_taken),
    )
    return TemplateResponse(request, "admin/bookings/reservation/move_seats.html", context)
