"""What every booking service shares: who acts, the resource lock (always first), the rules
read under it, history and outbox rows, and the expiry of due holds."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import connection, transaction
from django.utils.text import Truncator
from django.utils.translation import gettext as _

from bookings.models import Reservation, ReservationEvent, ReservationStatus, WebhookEndpoint
from bookings.notifications import outbox_enqueue
from reservo.errors import Maintenance, NotFound, ReservoError
from resources.models import Resource
from resources.selectors import availability_invalidate
from settings_app.models import SINGLETON_ID, SystemSettings

REFERENCE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O, 1/I: read over the phone
assert 256 % len(REFERENCE_ALPHABET) == 0  # new_reference maps bytes without bias
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

    @classmethod
    def staff(cls, user: AbstractBaseUser | AnonymousUser) -> Actor:
        """A member of staff, by their username."""
        return cls("staff", user.get_username())

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


EVENT_NOTE_MAX_LENGTH = ReservationEvent._meta.get_field("note").max_length or 100


def new_reference() -> str:
    # One read of the system's randomness, not one per character: 256 is a multiple of
    # the alphabet's 32 letters, so every letter stays equally likely.
    return "RSV-" + "".join(
        REFERENCE_ALPHABET[byte % len(REFERENCE_ALPHABET)]
        for byte in secrets.token_bytes(REFERENCE_LENGTH)
    )


@dataclass(frozen=True)
class Rules:
    """The settings the booking rules use and the database clock, read under the locks."""

    now: datetime
    maintenance_mode: bool
    maintenance_message: str
    hold_ttl: timedelta
    default_max_per_booking: int
    maintenance_started_at: datetime | None = None

    @property
    def holds_due_by(self) -> datetime:
        return holds_due_by(
            self.now,
            maintenance_mode=self.maintenance_mode,
            maintenance_started_at=self.maintenance_started_at,
        )


def holds_due_by(
    now: datetime, *, maintenance_mode: bool, maintenance_started_at: datetime | None
) -> datetime:
    """A hold expiring at or before this is due. While maintenance is on, the holds that
    were live when it began wait for it to end, which extends them."""
    if maintenance_mode and maintenance_started_at is not None:
        return min(now, maintenance_started_at)
    return now


def _settings_default(field: str) -> object:
    return SystemSettings._meta.get_field(field).get_default()  # type: ignore[union-attr]


# FOR SHARE, which the ORM does not offer: switching maintenance on (an UPDATE of this row)
# waits for the bookings that read it off, and a booking that reads it after the switch
# committed sees it on. The clock is read in the same statement, after the resource lock.
RULES_SQL = """
    SELECT statement_timestamp(), maintenance_mode, maintenance_message, hold_ttl_seconds,
           default_max_per_booking, maintenance_started_at
      FROM settings_app_systemsettings
     WHERE id = %s
       FOR SHARE
"""


def lock_resource(resource_id: int) -> Resource:
    """Lock the resource row: the first lock of every write to its reservations."""
    try:
        return Resource.objects.select_for_update().get(pk=resource_id)
    except Resource.DoesNotExist:
        raise NotFound(_("No such resource.")) from None


def lock_reservation(reservation_id: int) -> Reservation:
    """Lock the reservation row and read it afresh (after its resource's lock)."""
    reservation = Reservation.objects.select_for_update().filter(pk=reservation_id).first()
    if reservation is None:
        raise NotFound(_("No such reservation."))
    return reservation


@dataclass(frozen=True)
class LockedReservation:
    """A reservation locked for a change, with its resource (locked first) and the rules
    read under that lock."""

    resource: Resource
    rules: Rules
    reservation: Reservation


def lock_for_change(reservation_id: int, actor: Actor) -> LockedReservation:
    """Lock the reservation's resource, read the rules under it (refusing `actor` while
    maintenance binds it), then lock the reservation and read it afresh."""
    resource_id = (
        Reservation.objects.filter(pk=reservation_id).values_list("resource_id", flat=True).first()
    )
    if resource_id is None:
        raise NotFound(_("No such reservation."))
    resource = lock_resource(resource_id)
    rules = rules_under_lock(actor)
    reservation = lock_reservation(reservation_id)
    reservation.resource = resource
    return LockedReservation(resource=resource, rules=rules, reservation=reservation)


def expire_if_due(locked: LockedReservation) -> bool:
    """Expire the locked reservation if it is a hold past its expiry by the rules read
    under the lock; whether it did."""
    reservation = locked.reservation
    if (
        reservation.status != ReservationStatus.HELD
        or reservation.hold_expires_at is None
        or reservation.hold_expires_at > locked.rules.holds_due_by
    ):
        return False
    set_status(
        [reservation],
        ReservationStatus.EXPIRED,
        SYSTEM,
        resource=locked.resource,
        now=locked.rules.now,
    )
    return True


def record_note(locked: LockedReservation, actor: Actor, note: str) -> None:
    """The history row of a change that keeps the locked reservation's status (a check-in,
    an edit of its details, a move to other seats): `note` says what it was."""
    reservation = locked.reservation
    ReservationEvent.objects.create(
        reservation=reservation,
        from_status=reservation.status,
        to_status=reservation.status,
        actor=str(actor),
        occurred_at=locked.rules.now,
        note=Truncator(note).chars(EVENT_NOTE_MAX_LENGTH),
    )


def rules_under_lock(actor: Actor) -> Rules:
    """The clock and the settings, read once the resource is locked; refuses an actor bound
    by maintenance while it is on. The settings row comes from a migration; its field
    defaults stand in should it be missing."""
    with connection.cursor() as cursor:
        cursor.execute(RULES_SQL, [SINGLETON_ID])
        row = cursor.fetchone()
        if row is None:
            cursor.execute("SELECT statement_timestamp()")
            (now,) = cursor.fetchone()
            row = (
                now,
                *(
                    _settings_default(field)
                    for field in (
                        "maintenance_mode",
                        "maintenance_message",
                        "hold_ttl_seconds",
                        "default_max_per_booking",
                    )
                ),
                None,
            )
    now, maintenance_mode, maintenance_message, hold_ttl_seconds, default_max, started = row
    if actor.bound_by_maintenance and maintenance_mode:
        raise maintenance_error(maintenance_message)
    return Rules(
        now=now,
        maintenance_mode=maintenance_mode,
        maintenance_message=maintenance_message,
        hold_ttl=timedelta(seconds=hold_ttl_seconds),
        default_max_per_booking=default_max,
        maintenance_started_at=started,
    )


def maintenance_error(message: str) -> Maintenance:
    return Maintenance(
        message or _("Bookings are paused for maintenance. Please come back shortly.")
    )


def on_commit_invalidate(resource_id: int) -> None:
    transaction.on_commit(lambda: availability_invalidate(resource_id))


STATUS_TIMESTAMP = {
    ReservationStatus.CONFIRMED: "confirmed_at",
    ReservationStatus.CANCELLED: "cancelled_at",
    ReservationStatus.EXPIRED: "expired_at",
}


def record(
    reservations: Sequence[Reservation],
    from_status: str,
    actor: Actor,
    *,
    resource: Resource,
    manage_token: str | None = None,
    endpoints: Sequence[WebhookEndpoint] | None = None,
    reason: str = "",
) -> None:
    """History rows and outbox notifications for changes made in this transaction, and
    the invalidation of the resource's cached availability after it commits.
    `endpoints`: the API clients' active webhook endpoints, if read already. `reason`
    (staff's words) goes into the history rows and the customers' emails."""
    ReservationEvent.objects.bulk_create(
        ReservationEvent(
            reservation=reservation,
            from_status=from_status,
            to_status=reservation.status,
            actor=str(actor),
            reason=reason,
        )
        for reservation in reservations
    )
    outbox_enqueue(
        reservations,
        resource=resource,
        changed_by=actor.kind,
        manage_token=manage_token,
        endpoints=endpoints,
        reason=reason,
    )
    on_commit_invalidate(resource.pk)


def set_status(
    reservations: Sequence[Reservation],
    status: ReservationStatus,
    actor: Actor,
    *,
    resource: Resource,
    now: datetime,
    manage_token: str | None = None,
    also: Sequence[str] = (),
    reason: str = "",
) -> None:
    """Move locked reservations, all of one status, to `status` at `now`, with their
    history and outbox rows. The counter trigger adjusts the resource's counters."""
    if not reservations:
        return
    from_status = reservations[0].status
    timestamp_field = STATUS_TIMESTAMP[status]
    for reservation in reservations:
        reservation.status = status
        setattr(reservation, timestamp_field, now)
    if len(reservations) == 1 and also:
        reservations[0].save(update_fields=["status", timestamp_field, *also])
    else:
        assert not also  # changes of other fields are made one reservation at a time
        Reservation.objects.filter(pk__in=[r.pk for r in reservations]).update(
            status=status, **{timestamp_field: now}
        )
    record(
        reservations,
        from_status,
        actor,
        resource=resource,
        manage_token=manage_token,
        reason=reason,
    )


def expire_due_holds(resource: Resource, rules: Rules, actor: Actor) -> list[Reservation]:
    """Expire the locked resource's holds that are due by the database clock (`Rules`);
    returns them. Every write to a resource's reservations locks the resource first,
    so no other transaction is changing these rows. The locked row's counters say
    whether it has any hold at all; with none, nothing is read."""
    if resource.held == 0:
        return []
    due = list(
        Reservation.objects.filter(
            resource_id=resource.pk,
            status=ReservationStatus.HELD,
            hold_expires_at__lte=rules.holds_due_by,
        ).order_by("pk")
    )
    set_status(due, ReservationStatus.EXPIRED, actor, resource=resource, now=rules.now)
    return due
