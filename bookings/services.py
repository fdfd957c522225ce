"""Booking services: the only code that changes reservation state.

Each service is one transaction (see `locking.in_booking_transaction`): lock the resource
row, expire its due holds, check, write the change and its history row, and defer cache
invalidation to on_commit. Every decision about time uses the database clock.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from django.db import connection, transaction
from django.db.models import BooleanField, Field, Subquery, Value
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce, Now
from django.utils.translation import gettext as _

from bookings.locking import in_booking_transaction
from bookings.models import (
    ACTIVE_STATUSES,
    ApiClient,
    Reservation,
    ReservationEvent,
    ReservationSeat,
    ReservationStatus,
)
from bookings.notifications import outbox_enqueue
from reservo.errors import (
    HoldExpired,
    InvalidState,
    LimitExceeded,
    Maintenance,
    NotFound,
    ReservoError,
    ResourceNotBookable,
    SeatsUnavailable,
    SoldOut,
    ValidationFailed,
)
from resources.models import Resource, ResourceState, Seat
from resources.selectors import availability_invalidate, resource_available_now
from settings_app.models import SINGLETON_ID, SystemSettings

REFERENCE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O, 1/I: read over the phone
REFERENCE_LENGTH = 8
REFERENCE_ATTEMPTS = 3


class ReferenceTaken(ReservoError):
    """A new reference collided with an existing one (about 1 in 10^12): book again."""


@dataclass(frozen=True)
class Actor:
    """Who asked for a change; recorded in history and deciding maintenance rules."""

    kind: Literal["customer", "api", "staff", "system"]
    name: str = ""

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}" if self.name else self.kind

    @property
    def bound_by_maintenance(self) -> bool:
        return self.kind in ("customer", "api")


SYSTEM = Actor("system")


@dataclass(frozen=True)
class Booking:
    reservation: Reservation
    # Shown once to the customer (their self-service link); only its hash is stored.
    manage_token: str


def manage_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_reference() -> str:
    return "RSV-" + "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(REFERENCE_LENGTH))


def _settings_value(field: str) -> Coalesce:
    """One SystemSettings field as a subquery, read in the same statement as the resource lock."""
    model_field = SystemSettings._meta.get_field(field)
    assert isinstance(model_field, Field)
    return Coalesce(
        Subquery(SystemSettings.objects.filter(id=SINGLETON_ID).values(field)[:1]),
        Value(model_field.get_default()),
        output_field=model_field,
    )


def _lock_resource(resource_id: int, actor: Actor) -> Resource:
    """Lock the resource row (always the first lock) and read the settings in the same trip."""
    resource = (
        Resource.objects.select_for_update(of=("self",))
        .annotate(
            db_now=Now(),
            maintenance_mode=_settings_value("maintenance_mode"),
            maintenance_message=_settings_value("maintenance_message"),
            hold_ttl_seconds=_settings_value("hold_ttl_seconds"),
            default_max_per_booking=_settings_value("default_max_per_booking"),
        )
        .filter(pk=resource_id)
        .order_by()
        .first()
    )
    if resource is None:
        raise NotFound(_("No such resource."))
    if actor.bound_by_maintenance and resource.maintenance_mode:  # type: ignore[attr-defined]
        raise Maintenance(
            resource.maintenance_message  # type: ignore[attr-defined]
            or _("Bookings are paused for maintenance. Please come back shortly.")
        )
    return resource


def _record(
    reservations: Sequence[Reservation],
    from_status: str,
    actor: Actor,
    *,
    manage_token: str | None = None,
) -> None:
    """History rows and outbox notifications for transitions made in the current transaction."""
    ReservationEvent.objects.bulk_create(
        ReservationEvent(
            reservation=r, from_status=from_status, to_status=r.status, actor=str(actor)
        )
        for r in reservations
    )
    outbox_enqueue(reservations, manage_token=manage_token)


def _on_commit_invalidate(resource_id: int) -> None:
    transaction.on_commit(lambda: availability_invalidate(resource_id))


def _expire_due_holds(resource_id: int, actor: Actor) -> list[tuple[int, int]]:
    """Expire the resource's holds past their expiry (database clock); returns (id, quantity)s.

    The caller holds the resource lock, and every transition locks the resource first,
    so no other transaction is changing these rows.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE bookings_reservation SET status = 'expired', expired_at = now() "
            "WHERE resource_id = %s AND status = 'held' AND hold_expires_at <= clock_timestamp() "
            "RETURNING id, quantity",
            [resource_id],
        )
        rows = cursor.fetchall()
    if rows:
        expired = [Reservation(id=pk, status=ReservationStatus.EXPIRED) for pk, _q in rows]
        _record(expired, ReservationStatus.HELD, actor)
        _on_commit_invalidate(resource_id)
    return rows


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
    api_client: ApiClient | None = None,
) -> Booking:
    """Book places by quantity or by seats, as a hold or confirmed at once. All or nothing."""
    _validate_request(quantity, seat_ids)
    seat_ids = sorted(seat_ids) if seat_ids is not None else None
    wanted = len(seat_ids) if seat_ids is not None else quantity
    assert wanted is not None
    token = secrets.token_urlsafe(24)

    def book() -> Reservation:
        resource = _lock_resource(resource_id, actor)
        if resource.state != ResourceState.OPEN:
            raise ResourceNotBookable(_("'%(name)s' is not open for booking.") % {"name": resource})
        if (seat_ids is not None) != (resource.kind == Resource.Kind.SEATED):
            field = "seats" if seat_ids is not None else "quantity"
            message = (
                _("This resource has no seats; book a quantity.")
                if seat_ids is not None
                else _("This resource is seated; choose seats.")
            )
            raise ValidationFailed({field: [message]})
        limit = resource.max_per_booking or resource.default_max_per_booking  # type: ignore[attr-defined]
        if wanted > limit:
            raise LimitExceeded(
                _("At most %(limit)d places per booking.") % {"limit": limit}, limit=limit
            )
        freed = sum(quantity for _pk, quantity in _expire_due_holds(resource_id, actor))
        held = resource.held - freed
        available = resource.capacity - held - resource.confirmed
        if seat_ids is not None:
            _lock_free_seats(resource_id, seat_ids)
        if wanted > available:
            raise _sold_out(resource, available)

        now: datetime = resource.db_now  # type: ignore[attr-defined]
        reservation = Reservation.objects.create(
            reference=_new_reference(),
            resource_id=resource_id,
            quantity=wanted,
            status=ReservationStatus.HELD if hold else ReservationStatus.CONFIRMED,
            created_at=now,
            hold_expires_at=now + timedelta(seconds=resource.hold_ttl_seconds) if hold else None,  # type: ignore[attr-defined]
            confirmed_at=None if hold else now,
            customer_name=customer_name,
            customer_email=customer_email,
            api_client=api_client,
            manage_token_hash=manage_token_hash(token),
        )
        if seat_ids is not None:
            ReservationSeat.objects.bulk_create(
                ReservationSeat(reservation=reservation, seat_id=seat_id, resource_id=resource_id)
                for seat_id in seat_ids
            )
        _record([reservation], "", actor, manage_token=token)
        _on_commit_invalidate(resource_id)
        reservation.resource = resource
        return reservation

    constraint_errors: dict[str, Callable[[], ReservoError]] = {
        # The database's own refusal, should a check above ever be wrong.
        "resource_counters_within_capacity": lambda: _sold_out(
            None, resource_available_now(resource_id)
        ),
        "reservation_seat_active_unique": lambda: SeatsUnavailable(
            _("Some of these seats were just taken."),
            seats=_taken_seats(seat_ids or []),
        ),
        "reservation_reference_unique": ReferenceTaken,
    }
    for _attempt in range(REFERENCE_ATTEMPTS):
        try:
            reservation = in_booking_transaction(book, constraint_errors=constraint_errors)
        except ReferenceTaken:
            continue
        return Booking(reservation=reservation, manage_token=token)
    raise ReferenceTaken()


def _sold_out(resource: Resource | None, available: int) -> SoldOut:
    available = max(available, 0)
    if resource is not None and available:
        detail = _("Only %(n)d places left on '%(name)s'.") % {"n": available, "name": resource}
    elif available:
        detail = _("Only %(n)d places left.") % {"n": available}
    else:
        detail = _("Sold out.")
    return SoldOut(detail, available=available)


def _taken_seats(seat_ids: Sequence[int]) -> list[int]:
    return sorted(
        ReservationSeat.objects.filter(seat_id__in=seat_ids, active=True).values_list(
            "seat_id", flat=True
        )
    )


def _lock_free_seats(resource_id: int, seat_ids: Sequence[int]) -> None:
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
    taken = _taken_seats(seat_ids)
    if taken:
        labels = list(Seat.objects.filter(id__in=taken).values_list("label", flat=True))
        raise SeatsUnavailable(
            _("Seats already taken: %(labels)s.") % {"labels": ", ".join(labels)}, seats=taken
        )


def _lock_reservation(reservation_id: int, actor: Actor) -> tuple[Resource, Reservation, bool]:
    """Lock resource then reservation, re-read it; says whether its hold is past expiry."""
    resource_id = (
        Reservation.objects.filter(pk=reservation_id).values_list("resource_id", flat=True).first()
    )
    if resource_id is None:
        raise NotFound(_("No such reservation."))
    resource = _lock_resource(resource_id, actor)
    reservation = (
        Reservation.objects.select_for_update(of=("self",))
        .annotate(
            hold_past=RawSQL(
                "bookings_reservation.hold_expires_at <= clock_timestamp()",
                [],
                output_field=BooleanField(),
            )
        )
        .get(pk=reservation_id)
    )
    reservation.resource = resource
    past = reservation.status == ReservationStatus.HELD and bool(reservation.hold_past)  # type: ignore[attr-defined]
    return resource, reservation, past


STATUS_TIMESTAMP = {
    ReservationStatus.CONFIRMED: "confirmed_at",
    ReservationStatus.CANCELLED: "cancelled_at",
    ReservationStatus.EXPIRED: "expired_at",
}


def _set_status(
    resource: Resource,
    reservation: Reservation,
    status: ReservationStatus,
    actor: Actor,
    extra_fields: Sequence[str] = (),
    manage_token: str | None = None,
) -> None:
    from_status = reservation.status
    timestamp_field = STATUS_TIMESTAMP[status]
    reservation.status = status
    setattr(reservation, timestamp_field, resource.db_now)  # type: ignore[attr-defined]
    reservation.save(update_fields=["status", timestamp_field, *extra_fields])
    _record([reservation], from_status, actor, manage_token=manage_token)
    _on_commit_invalidate(resource.pk)


def _transition(
    reservation_id: int,
    actor: Actor,
    change: Callable[[Resource, Reservation], None],
    when_expired: Callable[[], ReservoError],
) -> Reservation:
    """Lock, re-read and change one reservation. A hold found past its expiry is expired
    (and that is committed, freeing its places) and the caller's error is raised instead."""

    def work() -> tuple[Reservation, bool]:
        resource, reservation, past = _lock_reservation(reservation_id, actor)
        if past:
            _set_status(resource, reservation, ReservationStatus.EXPIRED, SYSTEM)
            return reservation, False
        change(resource, reservation)
        return reservation, True

    reservation, changed = in_booking_transaction(work)
    if not changed:
        raise when_expired()
    return reservation


def _invalid_state(reservation: Reservation, message: str) -> InvalidState:
    status_name = reservation.get_status_display().lower()
    return InvalidState(message % {"status": status_name}, current_status=reservation.status)


def reservation_confirm(
    *,
    reservation_id: int,
    actor: Actor,
    customer_name: str | None = None,
    customer_email: str | None = None,
    manage_token: str | None = None,
) -> Reservation:
    """Turn a hold into a booking. A hold past its expiry is expired instead, never confirmed.

    `manage_token`, when the caller knows it (the customer's own session), is put in the
    confirmation email's link; a token that does not match the reservation is ignored.
    """

    def confirm(resource: Resource, reservation: Reservation) -> None:
        if reservation.status != ReservationStatus.HELD:
            raise _invalid_state(
                reservation, _("This reservation is %(status)s; only a hold can be confirmed.")
            )
        extra = []
        if customer_name is not None:
            reservation.customer_name = customer_name
            extra.append("customer_name")
        if customer_email is not None:
            reservation.customer_email = customer_email
            extra.append("customer_email")
        token = manage_token
        if token is not None and not hmac.compare_digest(
            manage_token_hash(token), reservation.manage_token_hash
        ):
            token = None
        _set_status(resource, reservation, ReservationStatus.CONFIRMED, actor, extra, token)

    return _transition(
        reservation_id,
        actor,
        confirm,
        lambda: HoldExpired(_("This hold expired; the places were released.")),
    )


def reservation_cancel(*, reservation_id: int, actor: Actor) -> Reservation:
    """Cancel a held or confirmed reservation; its places are released exactly once."""

    def cancel(resource: Resource, reservation: Reservation) -> None:
        if reservation.status not in ACTIVE_STATUSES:
            raise _invalid_state(reservation, _("This reservation is already %(status)s."))
        _set_status(resource, reservation, ReservationStatus.CANCELLED, actor)

    return _transition(
        reservation_id,
        actor,
        cancel,
        lambda: InvalidState(
            _("This hold had already expired."), current_status=ReservationStatus.EXPIRED
        ),
    )


def reservations_expire_due(*, actor: Actor = SYSTEM, resource_batch: int = 100) -> int:
    """The sweep: expire every hold past its expiry, one resource per transaction."""
    resource_ids = list(
        Reservation.objects.filter(status=ReservationStatus.HELD, hold_expires_at__lte=Now())
        .order_by()
        .values_list("resource_id", flat=True)
        .distinct()[:resource_batch]
    )
    expired = 0
    for resource_id in resource_ids:

        def sweep(resource_id: int = resource_id) -> int:
            _lock_resource(resource_id, actor)
            return len(_expire_due_holds(resource_id, actor))

        expired += in_booking_transaction(sweep)
    return expired
