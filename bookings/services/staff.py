"""Staff's changes to a booking: its customer's details, and a move to other seats."""

from __future__ import annotations

from collections.abc import Sequence

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from bookings.locking import in_booking_transaction
from bookings.models import (
    ACTIVE_STATUSES,
    Reservation,
    ReservationSeat,
)
from bookings.names import customer_name_clean
from bookings.notifications import outbox_enqueue_seats_changed
from bookings.services.booking import lock_free_seats, taken_seats
from bookings.services.common import (
    Actor,
    expire_if_due,
    lock_for_change,
    on_commit_invalidate,
    record_note,
)
from reservo.errors import (
    HoldExpired,
    InvalidState,
    ReservoError,
    SeatsUnavailable,
    ValidationFailed,
)
from resources.models import ResourceKind, Seat

# The history row of an edit of the customer's details (no change of status): this note,
# then the fields that changed, by these names.
DETAILS_CHANGED_NOTE = "details changed"
CUSTOMER_FIELD_NAMES = {
    "customer_name": "name",
    "customer_email": "email",
    "customer_phone": "phone",
    "note": "note",
}
# The history row of a move: "seats A1, A2 → B3, B4".
SEATS_MOVED_NOTE = "seats %(old)s \N{RIGHTWARDS ARROW} %(new)s"
CUSTOMER_NAME_MAX_LENGTH = Reservation._meta.get_field("customer_name").max_length or 200
CUSTOMER_PHONE_MAX_LENGTH = Reservation._meta.get_field("customer_phone").max_length or 40
CUSTOMER_EMAIL_MAX_LENGTH = 254
NOTE_MAX_LENGTH = 2000


def customer_details_clean(
    *, customer_name: str, customer_email: str, customer_phone: str, note: str
) -> dict[str, str]:
    """The customer's details as they are stored; ValidationFailed names each bad field."""
    values = {
        "customer_name": customer_name_clean(customer_name),
        "customer_email": customer_email.strip(),
        "customer_phone": customer_name_clean(customer_phone),
        "note": note.strip(),
    }
    errors: dict[str, list[str]] = {}
    limits = {
        "customer_name": CUSTOMER_NAME_MAX_LENGTH,
        "customer_email": CUSTOMER_EMAIL_MAX_LENGTH,
        "customer_phone": CUSTOMER_PHONE_MAX_LENGTH,
        "note": NOTE_MAX_LENGTH,
    }
    for field, limit in limits.items():
        if len(values[field]) > limit:
            errors[field] = [
                ngettext("At most %(limit)d character.", "At most %(limit)d characters.", limit)
                % {"limit": limit}
            ]
    if values["customer_email"] and "customer_email" not in errors:
        try:
            validate_email(values["customer_email"])
        except ValidationError:
            errors["customer_email"] = [_("Enter a valid email address.")]
    if errors:
        raise ValidationFailed(errors)
    return values


def reservation_update_customer(
    *,
    reservation_id: int,
    actor: Actor,
    customer_name: str,
    customer_email: str,
    customer_phone: str,
    note: str,
) -> Reservation:
    """Change the customer's name, email, phone and the staff note of a reservation, in any
    status, with one history row (same status to same status) naming the fields that
    changed. Places are untouched, and nothing is sent: the customer is not told about
    an edit of their own details. Nothing changed, nothing is written."""
    values = customer_details_clean(
        customer_name=customer_name,
        customer_email=customer_email,
        customer_phone=customer_phone,
        note=note,
    )

    def work() -> Reservation:
        locked = lock_for_change(reservation_id, actor)
        reservation = locked.reservation
        changed = [field for field, value in values.items() if getattr(reservation, field) != value]
        if not changed:
            return reservation
        for field in changed:
            setattr(reservation, field, values[field])
        reservation.save(update_fields=changed)
        names = ", ".join(CUSTOMER_FIELD_NAMES[field] for field in changed)
        record_note(locked, actor, f"{DETAILS_CHANGED_NOTE}: {names}")
        return reservation

    return in_booking_transaction(work)


def _seats_named(seat_ids: Sequence[int]) -> list[tuple[int, str]]:
    """(id, label) of these seats, in the order of the seat plan."""
    return list(
        Seat.objects.filter(id__in=seat_ids)
        .order_by("row", "number", "label", "id")
        .values_list("id", "label")
    )


def _seat_labels(seat_ids: Sequence[int]) -> list[str]:
    return [label for _seat_id, label in _seats_named(seat_ids)]


def _seats_taken(seat_ids: Sequence[int]) -> SeatsUnavailable:
    taken = taken_seats(seat_ids)
    return SeatsUnavailable(
        _("Seats already taken: %(labels)s.") % {"labels": ", ".join(_seat_labels(taken))},
        seats=taken,
    )


def reservation_move_seats(
    *, reservation_id: int, actor: Actor, seat_ids: Sequence[int]
) -> Reservation:
    """Move a held or confirmed reservation (checked in or not, a block too) to other seats
    of its resource, as many as it has: its places and the resource's counters stay as
    they are. The seats it keeps stay linked; the ones it leaves are unlinked and the new
    ones linked, in one transaction, with a history row "seats A1, A2 → B3, B4".

    Locks the resource, then the reservation, then the new seats in primary-key order;
    seats another booking holds are refused with SeatsUnavailable naming them (and the
    partial unique index on active seats refuses them should that check ever be wrong).
    A hold found past its expiry is expired instead, and HoldExpired raised. The customer
    (with an address; not for a house block) is emailed the old and new seats, in the
    booking's language, from the outbox row written here: each move its own email."""
    wanted = sorted(seat_ids)
    if not wanted:
        raise ValidationFailed({"seats": [_("Choose at least one seat.")]})
    if len(set(wanted)) != len(wanted):
        raise ValidationFailed({"seats": [_("A seat is listed twice.")]})
    new_seats: list[int] = []

    def work() -> Reservation | ReservoError:
        locked = lock_for_change(reservation_id, actor)
        resource, reservation = locked.resource, locked.reservation
        if resource.kind != ResourceKind.SEATED:
            raise ValidationFailed({"seats": [_("This booking has no seats; nothing to move.")]})
        if expire_if_due(locked):
            return HoldExpired(_("This hold expired; the places were released."))
        if reservation.status not in ACTIVE_STATUSES:
            raise InvalidState(
                _("This reservation is %(status)s; only a held or confirmed one can move.")
                % {"status": reservation.get_status_display().lower()},
                current_status=reservation.status,
            )
        if len(wanted) != reservation.quantity:
            raise ValidationFailed(
                {
                    "seats": [
                        ngettext(
                            "Choose %(count)d seat, as many as the booking has.",
                            "Choose %(count)d seats, as many as the booking has.",
                            reservation.quantity,
                        )
                        % {"count": reservation.quantity}
                    ]
                }
            )
        current = list(
            ReservationSeat.objects.filter(reservation=reservation).values_list(
                "seat_id", flat=True
            )
        )
        new_seats[:] = [seat for seat in wanted if seat not in current]
        if not new_seats:
            raise ValidationFailed({"seats": [_("These are already the booking's seats.")]})
        lock_free_seats(resource.pk, new_seats)
        leaving = [seat for seat in current if seat not in wanted]
        ReservationSeat.objects.filter(reservation=reservation, seat_id__in=leaving).delete()
        ReservationSeat.objects.bulk_create(
            ReservationSeat(reservation=reservation, seat_id=seat, resource_id=resource.pk)
            for seat in new_seats
        )
        named = _seats_named([*current, *new_seats])  # one read, in the seat plan's order
        seats_before = [seat for seat in named if seat[0] in current]
        seats_after = [seat for seat in named if seat[0] in wanted]
        note = SEATS_MOVED_NOTE % {
            "old": ", ".join(label for _seat_id, label in seats_before),
            "new": ", ".join(label for _seat_id, label in seats_after),
        }
        record_note(locked, actor, note)
        outbox_enqueue_seats_changed(
            reservation,
            resource=resource,
            seats_before=seats_before,
            seats_after=seats_after,
            changed_by=actor.kind,
        )
        on_commit_invalidate(resource.pk)
        return reservation

    outcome = in_booking_transaction(
        work,
        # The database's own refusal, should the check above ever be wrong.
        constraint_errors={"reservation_seat_active_unique": lambda: _seats_taken(new_seats)},
    )
    if isinstance(outcome, ReservoError):
        raise outcome
    return outcome
