"""Resource services: create and change resources and their seats.

Changes that touch capacity lock the resource row, like bookings do, so a capacity
change and a booking never interleave. The counters are never written here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Case, F, Value, When
from django.db.models.functions import Now
from django.utils.text import slugify
from django.utils.translation import gettext as _

from bookings.locking import in_booking_transaction
from reservo.errors import CapacityBelowBooked, NotFound, ValidationFailed
from resources.models import Resource, ResourceKind, ResourceState, Seat
from resources.selectors import availability_invalidate

MAX_SEATS = 10_000
LABEL_PATTERN = re.compile(r"^\s*([A-Za-z]*)\s*-?\s*(\d*)\s*$")


@dataclass(frozen=True)
class SeatSpec:
    label: str
    row: str
    number: int | None


def seat_specs_from_rows(rows: Sequence[str], per_row: int) -> list[SeatSpec]:
    """Seats A1..A12, B1..B12 from rows ["A", "B"] and 12 seats per row."""
    rows = [str(row).strip() for row in rows]
    errors = []
    if not rows or any(not row for row in rows):
        errors.append(_("Give at least one row, each with a name."))
    if len(set(rows)) != len(rows):
        errors.append(_("A row is listed twice."))
    if per_row < 1:
        errors.append(_("A row needs at least one seat."))
    if len(rows) * max(per_row, 0) > MAX_SEATS:
        errors.append(_("At most %(n)d seats.") % {"n": MAX_SEATS})
    if errors:
        raise ValidationFailed({"seats": errors})
    return [SeatSpec(f"{row}{n}", row, n) for row in rows for n in range(1, per_row + 1)]


def seat_specs_from_labels(labels: Sequence[str]) -> list[SeatSpec]:
    """Seats from labels like "A1", "B12"; a label without that shape keeps no row/number."""
    labels = [str(label).strip() for label in labels]
    if not labels or any(not label or len(label) > 20 for label in labels):
        raise ValidationFailed({"seats": [_("Seat labels must be 1 to 20 characters.")]})
    if len(set(labels)) != len(labels):
        raise ValidationFailed({"seats": [_("A seat label is listed twice.")]})
    if len(labels) > MAX_SEATS:
        raise ValidationFailed({"seats": [_("At most %(n)d seats.") % {"n": MAX_SEATS}]})
    specs = []
    for label in labels:
        match = LABEL_PATTERN.match(label)
        row, number = (match.group(1), match.group(2)) if match else ("", "")
        specs.append(SeatSpec(label, row, int(number) if number else None))
    return specs


def _unique_slug(name: str) -> str:
    base = slugify(name)[:180] or "resource"
    slug, n = base, 2
    while Resource.objects.filter(slug=slug).exists():
        slug, n = f"{base}-{n}", n + 1
    return slug


def _validate_times(
    starts_at: datetime | None,
    ends_at: datetime | None,
    sales_open_at: datetime | None,
    sales_close_at: datetime | None,
) -> None:
    errors: dict[str, list[str]] = {}
    if starts_at and ends_at and ends_at <= starts_at:
        errors["ends_at"] = [_("The end must be after the start.")]
    if sales_open_at and sales_close_at and sales_close_at <= sales_open_at:
        errors["sales_close_at"] = [_("Sales must close after they open.")]
    if errors:
        raise ValidationFailed(errors)


def resource_create(
    *,
    name: str,
    kind: str = ResourceKind.CAPACITY,
    capacity: int | None = None,
    seats: Sequence[SeatSpec] = (),
    slug: str | None = None,
    state: str = ResourceState.OPEN,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    max_per_booking: int | None = None,
    sales_open_at: datetime | None = None,
    sales_close_at: datetime | None = None,
    description: str = "",
    venue: str = "",
) -> Resource:
    """Create a resource; a seated one gets its seats and a capacity equal to their count."""
    errors: dict[str, list[str]] = {}
    if not name.strip():
        errors["name"] = [_("A name is required.")]
    if kind not in ResourceKind.values:
        errors["kind"] = [
            _("Kind must be one of: %(kinds)s.") % {"kinds": ", ".join(ResourceKind.values)}
        ]
    if state not in ResourceState.values:
        errors["state"] = [_("Unknown state.")]
    if kind == ResourceKind.SEATED:
        if not seats:
            errors["seats"] = [_("A seated resource needs seats.")]
        elif capacity is not None and capacity != len(seats):
            errors["capacity"] = [_("A seated resource's capacity is its number of seats.")]
        capacity = len(seats)
    elif seats:
        errors["seats"] = [_("Only a seated resource has seats.")]
    elif capacity is None or capacity < 1:
        errors["capacity"] = [_("Capacity must be at least 1.")]
    if max_per_booking is not None and max_per_booking < 1:
        errors["max_per_booking"] = [_("Must be at least 1.")]
    if slug and Resource.objects.filter(slug=slug).exists():
        errors["slug"] = [_("This slug is already used.")]
    if errors:
        raise ValidationFailed(errors)
    assert capacity is not None
    _validate_times(starts_at, ends_at, sales_open_at, sales_close_at)

    with transaction.atomic():
        resource = Resource.objects.create(
            name=name.strip(),
            slug=slug or _unique_slug(name),
            kind=kind,
            capacity=capacity,
            state=state,
            starts_at=starts_at,
            ends_at=ends_at,
            max_per_booking=max_per_booking,
            sales_open_at=sales_open_at,
            sales_close_at=sales_close_at,
            description=description,
            venue=venue,
        )
        Seat.objects.bulk_create(
            Seat(resource=resource, label=s.label, row=s.row, number=s.number) for s in seats
        )
    return resource


# In the order forms show them.
UPDATABLE_FIELDS = (
    "name",
    "description",
    "venue",
    "capacity",
    "state",
    "starts_at",
    "ends_at",
    "max_per_booking",
    "sales_open_at",
    "sales_close_at",
)


def resource_update(*, resource_id: int, **changes: Any) -> Resource:
    """Change a resource under its row lock; capacity never drops below held + confirmed."""
    unknown = set(changes).difference(UPDATABLE_FIELDS)
    if unknown:
        raise ValidationFailed({field: [_("This field cannot be changed.")] for field in unknown})

    def update() -> Resource:
        resource = Resource.objects.select_for_update().filter(pk=resource_id).first()
        if resource is None:
            raise NotFound(_("No such resource."))
        errors: dict[str, list[str]] = {}
        if "state" in changes and changes["state"] not in ResourceState.values:
            errors["state"] = [_("Unknown state.")]
        if "name" in changes and not str(changes["name"]).strip():
            errors["name"] = [_("A name is required.")]
        new_capacity = changes.get("capacity", resource.capacity)
        if "capacity" in changes:
            if resource.kind == ResourceKind.SEATED and new_capacity != resource.capacity:
                errors["capacity"] = [_("A seated resource's capacity is its number of seats.")]
            elif new_capacity is None or new_capacity < 1:
                errors["capacity"] = [_("Capacity must be at least 1.")]
        if changes.get("max_per_booking") is not None and changes["max_per_booking"] < 1:
            errors["max_per_booking"] = [_("Must be at least 1.")]
        if errors:
            raise ValidationFailed(errors)
        _validate_times(
            *(
                changes.get(field, getattr(resource, field))
                for field in ("starts_at", "ends_at", "sales_open_at", "sales_close_at")
            )
        )
        booked = resource.held + resource.confirmed
        if new_capacity < booked:
            raise CapacityBelowBooked(
                _("%(booked)d places are held or booked; capacity cannot go below that.")
                % {"booked": booked},
                booked=booked,
            )
        for field, value in changes.items():
            setattr(resource, field, value)
        # Never the counters: only the reservation trigger writes them.
        resource.save(update_fields=sorted(changes))
        transaction.on_commit(lambda: availability_invalidate(resource_id))
        return resource

    return in_booking_transaction(
        update,
        constraint_errors={
            "resource_counters_within_capacity": lambda: CapacityBelowBooked(
                _("Places were booked meanwhile; capacity cannot go below held + confirmed.")
            )
        },
    )


def resource_add_seats(*, resource_id: int, seats: Sequence[SeatSpec]) -> Resource:
    """Add seats to a seated resource; its capacity grows by as many."""

    def add() -> Resource:
        resource = Resource.objects.select_for_update().filter(pk=resource_id).first()
        if resource is None:
            raise NotFound(_("No such resource."))
        if resource.kind != ResourceKind.SEATED:
            raise ValidationFailed({"seats": [_("Only a seated resource has seats.")]})
        existing = set(
            Seat.objects.filter(resource=resource, label__in=[s.label for s in seats]).values_list(
                "label", flat=True
            )
        )
        if existing:
            raise ValidationFailed(
                {
                    "seats": [
                        _("Seats already exist: %(labels)s.")
                        % {"labels": ", ".join(sorted(existing))}
                    ]
                }
            )
        Seat.objects.bulk_create(
            Seat(resource=resource, label=s.label, row=s.row, number=s.number) for s in seats
        )
        resource.capacity += len(seats)
        resource.save(update_fields=["capacity"])
        transaction.on_commit(lambda: availability_invalidate(resource_id))
        return resource

    return in_booking_transaction(add)


def resource_close_sales(*, resource_id: int) -> bool:
    """Close sales now, by the database clock, under the resource lock: a booking that
    takes the lock after this commits finds sales closed. A window not open yet ends
    with it. Sales already closed keep the time they closed; returns whether they
    closed now."""

    def close() -> bool:
        updated = (
            Resource.objects.filter(pk=resource_id)
            .exclude(sales_close_at__lte=Now())
            .update(
                sales_close_at=Now(),
                sales_open_at=Case(
                    When(sales_open_at__gte=Now(), then=Value(None)), default=F("sales_open_at")
                ),
            )
        )
        if not updated:
            if not Resource.objects.filter(pk=resource_id).exists():
                raise NotFound(_("No such resource."))
            return False
        transaction.on_commit(lambda: availability_invalidate(resource_id))
        return True

    return in_booking_transaction(close)
