"""Booking places by quantity or by seats, as a hold or confirmed at once: all or nothing."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from datetime import datetime

from django.utils.formats import date_format
from django.utils.timezone import localtime
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from bookings.locking import in_booking_transaction
from bookings.models import ApiClient, Reservation, ReservationSeat, ReservationStatus
from bookings.notifications import webhook_endpoints_active
from bookings.services.common import (
    REFERENCE_ATTEMPTS,
    Actor,
    Booking,
    ReferenceTaken,
    expire_due_holds,
    lock_resource,
    manage_token_hash,
    new_reference,
    record,
    rules_under_lock,
)
from reservo.errors import (
    LimitExceeded,
    ReservoError,
    ResourceNotBookable,
    SalesClosed,
    SeatsUnavailable,
    SoldOut,
    ValidationFailed,
)
from resources.models import Resource, ResourceKind, ResourceState, Seat
from resources.selectors import resource_available_now


def _validate_request(quantity: int | None, seat_ids: Sequence[int] | None) -> None:
    if seat_ids is not None and quantity is not None:
        raise ValidationFailed({"seats": [_("Give either seats or a quantity, not both.")]})
    if seat_ids is None and quantity is None:
        raise ValidationFailed({"quantity": [_("Give a quantity or a list of seats.")]})
    if seat_ids is not None:
        if not seat_ids:
            raise ValidationFailed({"seats": [_("Choose at least one seat.")]})
        if len(set(seat_ids)) != len(seat_ids):
            raise ValidationFailed({"seats": [_("A seat is listed twice.")]})
    elif quantity is not None and quantity < 1:
        raise ValidationFailed({"quantity": [_("Book at least one place.")]})


def reservation_book(
    *,
    resource_id: int,
    actor: Actor,
    quantity: int | None = None,
    seat_ids: Sequence[int] | None = None,
    hold: bool = False,
    customer_name: str = "",
    customer_email: str = "",
    customer_phone: str = "",
    note: str = "",
    language: str = "",
    api_client: ApiClient | None = None,
    block: bool = False,
) -> Booking:
    """Book places by quantity or by seats, as a hold or confirmed at once. All or nothing.

    `block` (staff only) holds the places for the house with no expiry, whatever the
    resource's state (unless cancelled), sales window or per-booking limit."""
    _validate_request(quantity, seat_ids)
    assert not block or actor.kind == "staff", "only staff block places"
    seats = sorted(seat_ids) if seat_ids is not None else None
    wanted = len(seats) if seats is not None else quantity
    assert wanted is not None  # a booking names seats or a quantity (_validate_request)
    token = secrets.token_urlsafe(24)
    # They depend on the client alone: read before the resource is locked, not under it.
    endpoints = webhook_endpoints_active([api_client.pk] if api_client is not None else [])

    def book() -> Reservation | ReservoError:
        resource = lock_resource(resource_id)
        rules = rules_under_lock(actor)
        if resource.state != ResourceState.OPEN and not (
            block and resource.state != ResourceState.CANCELLED
        ):
            raise ResourceNotBookable(
                _("'%(name)s' is not open for booking.") % {"name": resource.name}
            )
        if not block:
            _ensure_on_sale(resource, rules.now)
        if (seats is not None) != (resource.kind == ResourceKind.SEATED):
            if seats is not None:
                raise ValidationFailed(
                    {"seats": [_("This resource has no seats; book a quantity.")]}
                )
            raise ValidationFailed({"quantity": [_("This resource is seated; choose seats.")]})
        limit = resource.max_per_booking or rules.default_max_per_booking
        if wanted > limit and not block:
            raise LimitExceeded(
                _("At most %(limit)d places per booking.") % {"limit": limit}, limit=limit
            )
        expired = expire_due_holds(resource, rules, actor)
        available = resource.available + sum(hold.quantity for hold in expired)
        try:
            if seats is not None:
                lock_free_seats(resource_id, seats)
            if wanted > available:
                raise _sold_out(resource.name, available)
        except ReservoError as refusal:
            if not expired:
                raise
            # The expiry is a change of its own: it commits, and the refusal follows.
            return refusal

        reservation = Reservation.objects.create(
            reference=new_reference(),
            resource=resource,
            quantity=wanted,
            status=ReservationStatus.HELD if hold or block else ReservationStatus.CONFIRMED,
            created_at=rules.now,
            hold_expires_at=rules.now + rules.hold_ttl if hold and not block else None,
            confirmed_at=None if hold or block else rules.now,
            customer_name=customer_name,
            customer_email=customer_email,
            customer_phone=customer_phone,
            note=note,
            language=language,
            blocked=block,
            api_client=api_client,
            manage_token_hash=manage_token_hash(token),
        )
        if seats is not None:
            ReservationSeat.objects.bulk_create(
                ReservationSeat(reservation=reservation, seat_id=seat_id, resource_id=resource_id)
                for seat_id in seats
            )
        reservation.seat_ids = seats or []  # type: ignore[attr-defined]
        record([reservation], "", actor, resource=resource, manage_token=token, endpoints=endpoints)
        return reservation

    constraint_errors: dict[str, Callable[[], ReservoError]] = {
        # The database's own refusals, should a check above ever be wrong.
        "resource_counters_within_capacity": lambda: _sold_out(
            None, resource_available_now(resource_id)
        ),
        "reservation_seat_active_unique": lambda: SeatsUnavailable(
            _("Some of these seats were just taken."), seats=taken_seats(seats or [])
        ),
        "reservation_reference_unique": ReferenceTaken,
    }
    for _attempt in range(REFERENCE_ATTEMPTS):
        try:
            outcome = in_booking_transaction(book, constraint_errors=constraint_errors)
        except ReferenceTaken:
            continue
        if isinstance(outcome, ReservoError):
            raise outcome
        return Booking(reservation=outcome, manage_token=token)
    raise ReferenceTaken()


def _ensure_on_sale(resource: Resource, now: datetime) -> None:
    """Refuse a booking outside the resource's sales window, by the database clock."""
    if resource.sales_open_at is not None and now < resource.sales_open_at:
        raise SalesClosed(
            _("Sales for '%(name)s' open on %(when)s.")
            % {
                "name": resource.name,
                "when": date_format(localtime(resource.sales_open_at), "DATETIME_FORMAT"),
            },
            sales_open_at=resource.sales_open_at.isoformat(),
        )
    if resource.sales_end is not None and now >= resource.sales_end:
        raise SalesClosed(_("Sales for '%(name)s' have closed.") % {"name": resource.name})


def _sold_out(resource_name: str | None, available: int) -> SoldOut:
    available = max(available, 0)
    if resource_name is not None and available:
        detail = ngettext(
            "Only %(n)d place left on '%(name)s'.",
            "Only %(n)d places left on '%(name)s'.",
            available,
        ) % {"n": available, "name": resource_name}
    elif available:
        detail = ngettext("Only %(n)d place left.", "Only %(n)d places left.", available) % {
            "n": available
        }
    else:
        detail = _("Sold out.")
    return SoldOut(detail, available=available)


def taken_seats(seat_ids: Sequence[int]) -> list[int]:
    return sorted(
        ReservationSeat.objects.filter(seat_id__in=seat_ids, active=True).values_list(
            "seat_id", flat=True
        )
    )


def lock_free_seats(resource_id: int, seat_ids: Sequence[int]) -> None:
    """Lock the requested seats in primary-key order; refuse unknown or taken ones."""
    found = list(
        Seat.objects.select_for_update()
        .filter(resource_id=resource_id, id__in=seat_ids)
        .order_by("id")
        .values_list("id", flat=True)
    )
    unknown = sorted(set(seat_ids) - set(found))
    if unknown:
        raise ValidationFailed(
            {"seats": [_("Unknown seats for this resource: %(ids)s.") % {"ids": unknown}]}
        )
    taken = list(
        ReservationSeat.objects.filter(seat_id__in=seat_ids, active=True)
        .order_by("seat_id")
        .values_list("seat_id", "seat__label")
    )
    if taken:
        raise SeatsUnavailable(
            _("Seats already taken: %(labels)s.")
            % {"labels": ", ".join(label for _seat, label in taken)},
            seats=[seat for seat, _label in taken],
        )
