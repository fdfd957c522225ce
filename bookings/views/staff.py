"""The door: staff check bookings in by scanning their QR code or typing their reference.

For staff who may work the door: superusers and the booking clerk group. The page works
without JavaScript (a typed reference, or a handheld scanner that types the code); where
the browser can read QR codes with the camera (BarcodeDetector), static/reservo/checkin.js
scans and submits the same form.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth.views import redirect_to_login
from django.db.models import Q
from django.db.models.functions import Now
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from bookings.models import Reservation
from bookings.services import Actor, check_in_reservation_id, reservation_check_in
from bookings.views.common import _seat_labels
from reservo.error_pages import renders_domain_errors
from reservo.errors import (
    AlreadyCheckedIn,
    InvalidCode,
    InvalidState,
    NotFound,
    PermissionDenied,
)
from resources.models import Resource, ResourceState
from settings_app.permissions import BOOKING_CLERK_GROUP

REFERENCE_PREFIX = "RSV-"
# The events offered to choose from: those on now or later, and those that started in the
# last day (a late arrival); a long list is no use at the door.
EVENT_CHOICES_SINCE = timedelta(days=1)
EVENT_CHOICES_MAX = 100


def may_check_in(user: Any) -> bool:
    return bool(
        user.is_active
        and user.is_staff
        and (user.is_superuser or user.groups.filter(name=BOOKING_CLERK_GROUP).exists())
    )


def _event_choices() -> list[tuple[str, str]]:
    events = (
        Resource.objects.exclude(state=ResourceState.DRAFT)
        .filter(
            Q(starts_at__isnull=True)
            | Q(starts_at__gte=Now() - EVENT_CHOICES_SINCE)
            | Q(ends_at__gte=Now())
        )
        .order_by("starts_at", "name", "id")
        .values_list("pk", "name")[:EVENT_CHOICES_MAX]
    )
    return [("", _("Any event")), *((str(pk), name) for pk, name in events)]


def event_at_the_door(now: datetime) -> int | None:
    """The event the page starts on, among today's (the local day of `now`; neither drafts
    nor cancelled) not yet over: the one on now (begun, its end still ahead; the last to
    begin if several), else the next to start, else the last to have begun of those
    with no end given. None when nothing is on today: then any event."""
    day = timezone.localtime(now).date()
    today = list(
        Resource.objects.exclude(state__in=[ResourceState.DRAFT, ResourceState.CANCELLED])
        .filter(
            starts_at__gte=timezone.make_aware(datetime.combine(day, time.min)),
            starts_at__lt=timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min)),
        )
        .filter(Q(ends_at__isnull=True) | Q(ends_at__gt=now))
        .order_by("starts_at", "id")
        .values_list("pk", "starts_at", "ends_at")
    )
    # Every event here has a start (the day filter needs one).
    on_now = [pk for pk, starts_at, ends_at in today if starts_at and ends_at and starts_at <= now]
    upcoming = [pk for pk, starts_at, _ends_at in today if starts_at and starts_at > now]
    if on_now:
        return on_now[-1]
    if upcoming:
        return upcoming[0]
    return today[-1][0] if today else None


class CheckInForm(forms.Form):
    event = forms.TypedChoiceField(
        label=gettext_lazy("Event at this door"),
        coerce=int,
        empty_value=None,
        required=False,
        help_text=gettext_lazy("A booking for another event is then not checked in."),
    )
    code = forms.CharField(
        label=gettext_lazy("Reference or QR code"),
        max_length=200,
        widget=forms.TextInput(
            attrs={
                "autocomplete": "off",
                "autocapitalize": "characters",
                "spellcheck": "false",
                "autofocus": True,
                "enterkeyhint": "go",
            }
        ),
        error_messages={"required": gettext_lazy("Scan a QR code or type a reference.")},
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["event"].choices = _event_choices()  # type: ignore[attr-defined]
        if not self.is_bound and "event" not in self.initial:
            # A fresh page: today's event; after a scan, the event staff scanned for.
            self.initial["event"] = event_at_the_door(timezone.now())


@dataclass(frozen=True)
class Outcome:
    """What the door staff see after a scan: a verdict, and the booking when one was found."""

    kind: str  # checked-in | already | refused | unknown
    message: str
    reservation: Reservation | None = None
    seat_labels: tuple[str, ...] = ()


def _reservation_id(entry: str) -> int:
    """The reservation a scanned code or a typed reference ("RSV-7K3Q9MAB", "7k3q 9mab")
    names. A code carries a signature (after a colon); a reference never does."""
    entry = entry.strip()
    if ":" in entry:
        return check_in_reservation_id(entry)
    reference = "".join(entry.split()).upper()
    if not reference.startswith(REFERENCE_PREFIX):
        reference = REFERENCE_PREFIX + reference
    pk = Reservation.objects.filter(reference=reference).values_list("pk", flat=True).first()
    if pk is None:
        raise NotFound(_("No booking has the reference %(reference)s.") % {"reference": reference})
    return pk


def _booking(reservation_id: int) -> Reservation:
    return Reservation.objects.select_related("resource").get(pk=reservation_id)


def _outcome(kind: str, message: str, reservation: Reservation | None) -> Outcome:
    seats = tuple(_seat_labels(reservation)) if reservation is not None else ()
    return Outcome(kind, message, reservation, seats)


def _door_name(user: Any) -> str:
    """Who checked a booking in, by the name the other door staff know them by."""
    return str(user.get_full_name() or user.get_username())


def _check_in(entry: str, event_id: int | None, user: Any) -> tuple[Outcome, int]:
    """Check in, as `user`, the booking `entry` names; the outcome to show and the page's
    status."""
    try:
        reservation_id = _reservation_id(entry)
    except (InvalidCode, NotFound) as error:
        return _outcome("unknown", error.detail, None), error.http_status
    if event_id is not None:
        booking = _booking(reservation_id)
        if booking.resource_id != event_id:
            event = Resource.objects.filter(pk=event_id).values_list("name", flat=True).first()
            message = _("Not checked in: this booking is for %(booked)s, not %(event)s.") % {
                "booked": booking.resource.name,
                "event": event or _("the chosen event"),
            }
            return _outcome("refused", message, booking), 409
    try:
        reservation = reservation_check_in(
            reservation_id=reservation_id, actor=Actor.staff(user), by=_door_name(user)
        )
    except (AlreadyCheckedIn, InvalidState) as error:
        kind = "already" if isinstance(error, AlreadyCheckedIn) else "refused"
        return _outcome(kind, error.detail, _booking(reservation_id)), error.http_status
    return _outcome("checked-in", _("Checked in."), reservation), 200


@never_cache
@require_http_methods(["GET", "POST"])
@renders_domain_errors
def check_in(request: HttpRequest) -> HttpResponse:
    user: Any = request.user
    if not (user.is_authenticated and user.is_staff):
        return redirect_to_login(request.get_full_path(), "admin:login")
    if not may_check_in(user):
        raise PermissionDenied(_("Only booking clerks and administrators can check bookings in."))
    outcome, status = None, 200
    form = CheckInForm(request.POST if request.method == "POST" else None)
    if form.is_bound and form.is_valid():
        event_id = form.cleaned_data["event"]
        outcome, status = _check_in(form.cleaned_data["code"], event_id, user)
        # Ready for the next one, at the same event.
        form = CheckInForm(initial={"event": event_id})
    elif form.is_bound:
        status = 400
    context = {
        "form": form,
        "outcome": outcome,
        "may_use_admin": admin.site.has_permission(request),
    }
    return render(request, "staff/check_in.html", context, status=status)
