"""Transitions of one reservation (confirm, cancel) and the sweep that expires due holds."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.db.models import DateTimeField, ExpressionWrapper, F, Value
from django.db.models.functions import Now
from django.utils.translation import gettext as _

from bookings.locking import in_booking_transaction
from bookings.models import ACTIVE_STATUSES, Reservation, ReservationStatus
from bookings.services.common import (
    SYSTEM,
    Actor,
    Rules,
    expire_due_holds,
    expire_if_due,
    lock_for_change,
    lock_resource,
    manage_token_hash,
    on_commit_invalidate,
    rules_under_lock,
    set_status,
)
from reservo.errors import HoldExpired, InvalidState, ReservoError, ValidationFailed
from resources.models import Resource, ResourceState

# Changes a locked reservation that is not a hold past its expiry.
Change = Callable[[Resource, Reservation, Rules], None]


def _transition(
    reservation_id: int, actor: Actor, change: Change, when_expired: Callable[[], ReservoError]
) -> Reservation:
    """Lock the resource, then the reservation, re-read it and change it. A hold found
    past its expiry is expired instead (and that commits, freeing its places), and
    `when_expired`'s error is raised."""

    def work() -> tuple[Reservation, bool]:
        locked = lock_for_change(reservation_id, actor)
        if expire_if_due(locked):
            return locked.reservation, False
        change(locked.resource, locked.reservation, locked.rules)
        return locked.reservation, True

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
    language: str | None = None,
) -> Reservation:
    """Turn a hold into a booking. A hold past its expiry is expired instead, never confirmed.

    `language`, when given, is the one the customer confirmed in: their emails follow it.

    `manage_token`, when the caller knows it (the customer's own session), is put in the
    confirmation email's link; a token that does not match the reservation is ignored.
    """

    def confirm(resource: Resource, reservation: Reservation, rules: Rules) -> None:
        if reservation.status != ReservationStatus.HELD:
            raise _invalid_state(
                reservation, _("This reservation is %(status)s; only a hold can be confirmed.")
            )
        if reservation.blocked:
            # The CHECK reservation_block_is_held_or_released refuses it too.
            raise InvalidState(
                _("This is a house block: it is never sold. Release it, then book its seats."),
                current_status=reservation.status,
            )
        also = []
        if customer_name is not None:
            reservation.customer_name = customer_name
            also.append("customer_name")
        if customer_email is not None:
            reservation.customer_email = customer_email
            also.append("customer_email")
        if language is not None and language != reservation.language:
            reservation.language = language
            also.append("language")
        token = manage_token
        if token is not None and not hmac.compare_digest(
            manage_token_hash(token), reservation.manage_token_hash
        ):
            token = None
        set_status(
            [reservation],
            ReservationStatus.CONFIRMED,
            actor,
            resource=resource,
            now=rules.now,
            manage_token=token,
            also=also,
        )

    return _transition(
        reservation_id,
        actor,
        confirm,
        lambda: HoldExpired(_("This hold expired; the places were released.")),
    )


def reservation_cancel(*, reservation_id: int, actor: Actor, reason: str = "") -> Reservation:
    """Cancel a held or confirmed reservation that is not checked in; its places are
    released exactly once. `reason`, staff's words, goes into the history and the
    customer's email."""

    def cancel(resource: Resource, reservation: Reservation, rules: Rules) -> None:
        if reservation.status not in ACTIVE_STATUSES:
            raise _invalid_state(reservation, _("This reservation is already %(status)s."))
        if reservation.checked_in_at is not None:
            # The CHECK reservation_checked_in_is_confirmed refuses it too.
            raise InvalidState(
                _("This reservation is checked in; it can no longer be cancelled."),
                current_status=reservation.status,
            )
        set_status(
            [reservation],
            ReservationStatus.CANCELLED,
            actor,
            resource=resource,
            now=rules.now,
            reason=reason,
        )

    return _transition(
        reservation_id,
        actor,
        cancel,
        lambda: InvalidState(
            _("This hold had already expired."), current_status=ReservationStatus.EXPIRED
        ),
    )


@dataclass(frozen=True)
class EventCancellation:
    """What cancelling an event did."""

    resource: Resource
    # The resource was cancelled before: this run only cancelled what was still active.
    was_cancelled: bool
    cancelled: list[Reservation]
    # Confirmed and checked in: a checked-in booking cannot be cancelled; it stays booked.
    checked_in: list[Reservation]


def resource_cancel(*, resource_id: int, actor: Actor, reason: str) -> EventCancellation:
    """Cancel an event: its state becomes cancelled (no more bookings), and every active
    reservation that is not checked in is cancelled with `reason` (history, emails), in
    one transaction under the resource lock. Holds already past their expiry are expired
    instead. Running it again changes nothing and says so."""
    if not reason.strip():
        raise ValidationFailed({"reason": [_("Say why the event is cancelled.")]})

    def work() -> EventCancellation:
        resource = lock_resource(resource_id)
        rules = rules_under_lock(actor)
        was_cancelled = resource.state == ResourceState.CANCELLED
        if not was_cancelled:
            resource.state = ResourceState.CANCELLED
            resource.save(update_fields=["state"])
        expire_due_holds(resource, rules, SYSTEM)
        active = list(
            Reservation.objects.select_for_update()
            .filter(resource_id=resource.pk, status__in=ACTIVE_STATUSES)
            .order_by("pk")
        )
        checked_in = [r for r in active if r.checked_in_at is not None]
        cancelled = [r for r in active if r.checked_in_at is None]
        for status in ACTIVE_STATUSES:
            set_status(
                [r for r in cancelled if r.status == status],
                ReservationStatus.CANCELLED,
                actor,
                resource=resource,
                now=rules.now,
                reason=reason,
            )
        on_commit_invalidate(resource.pk)
        return EventCancellation(resource, was_cancelled, cancelled, checked_in)

    return in_booking_transaction(work)


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
            resource = lock_resource(resource_id)
            return len(expire_due_holds(resource, rules_under_lock(actor), actor))

        expired += in_booking_transaction(sweep)
    return expired


def holds_extend_for_maintenance(*, started_at: datetime) -> int:
    """Add the time maintenance lasted (from `started_at` until now, by the database
    clock) to every hold that was live when it began; returns how many. Runs in the
    transaction that switches maintenance off, which holds the settings row: no booking
    or sweep decides about these holds meanwhile."""
    return Reservation.objects.filter(
        status=ReservationStatus.HELD, hold_expires_at__gt=started_at
    ).update(
        hold_expires_at=ExpressionWrapper(
            F("hold_expires_at") + (Now() - Value(started_at)), output_field=DateTimeField()
        )
    )
