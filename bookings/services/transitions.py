"""Transitions of one reservation (confirm, cancel) and the sweep that expires due holds."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence

from django.db.models import BooleanField
from django.db.models.expressions import RawSQL
from django.db.models.functions import Now
from django.utils.translation import gettext as _

from bookings.locking import in_booking_transaction
from bookings.models import (
    ACTIVE_STATUSES,
    Reservation,
    ReservationStatus,
)
from bookings.services.common import (
    SYSTEM,
    Actor,
    _expire_due_holds,
    _lock_resource,
    _on_commit_invalidate,
    _record,
    manage_token_hash,
)
from reservo.errors import (
    HoldExpired,
    InvalidState,
    NotFound,
    ReservoError,
)
from resources.models import Resource


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
