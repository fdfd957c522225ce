"""Check-in at the door: the signed code that identifies a reservation, and its one check-in."""

from __future__ import annotations

from datetime import UTC, datetime

from django.core.signing import BadSignature, Signer
from django.utils.formats import date_format
from django.utils.timezone import localtime
from django.utils.translation import gettext as _

from bookings.locking import in_booking_transaction
from bookings.models import Reservation, ReservationStatus
from bookings.services.common import Actor, lock_for_change, record_note
from reservo.errors import AlreadyCheckedIn, InvalidCode, InvalidState, NotFound

# A code signed for check-in is good for nothing else, and no other signed value is a code.
CHECK_IN_SALT = "reservo.check-in"
# The history row of a check-in: no change of status, this note.
CHECKED_IN_NOTE = "checked in"
# A code is a reference, ":" and a signature (about 56 characters); longer is not one.
CHECK_IN_CODE_MAX_LENGTH = 200


def check_in_code(reference: str) -> str:
    """The check-in code of the reservation with this reference: the reference signed with
    this installation's secret key. Compact and URL-safe; shown as a QR code. Signing the
    reference, which never changes, lets an email rendered from the outbox show the code
    without reading the database."""
    return Signer(salt=CHECK_IN_SALT).sign(reference)


def check_in_code_reference(code: str) -> str:
    """The reference a check-in code was made for; InvalidCode if the code is malformed,
    altered or signed by another installation (another SECRET_KEY)."""
    code = code.strip()
    if not code or len(code) > CHECK_IN_CODE_MAX_LENGTH:
        raise _invalid_code()
    try:
        return Signer(salt=CHECK_IN_SALT).unsign(code)
    except BadSignature:
        raise _invalid_code() from None


def _invalid_code() -> InvalidCode:
    return InvalidCode(_("This is not a check-in code of this site."))


def check_in_reservation_id(code: str) -> int:
    """The primary key of the reservation a check-in code was made for."""
    reference = check_in_code_reference(code)
    pk = Reservation.objects.filter(reference=reference).values_list("pk", flat=True).first()
    if pk is None:
        raise NotFound(_("No such reservation."))
    return pk


def checked_in_moment(checked_in_at: datetime, now: datetime) -> str:
    """When a check-in happened, as the door staff want it: "19:02" on the same day (in the
    site's time zone), the date as well on another."""
    moment, today = localtime(checked_in_at), localtime(now)
    time = date_format(moment, "TIME_FORMAT")
    if moment.date() == today.date():
        return time
    return f"{date_format(moment, 'DATE_FORMAT')}, {time}"


def _already_checked_in(reservation: Reservation, now: datetime) -> AlreadyCheckedIn:
    assert reservation.checked_in_at is not None
    return AlreadyCheckedIn(
        _("Already checked in at %(moment)s by %(name)s.")
        % {
            "moment": checked_in_moment(reservation.checked_in_at, now),
            "name": reservation.checked_in_by,
        },
        checked_in_at=reservation.checked_in_at.astimezone(UTC).isoformat(),
        checked_in_by=reservation.checked_in_by,
    )


def reservation_check_in(*, reservation_id: int, actor: Actor, by: str = "") -> Reservation:
    """Check a confirmed reservation in, once, at the database's time, with a history row.

    A second check-in is refused with AlreadyCheckedIn (when, and by whom, the first was);
    a reservation that is not confirmed, with InvalidState. `by`, the name the door staff
    know the actor by (`actor.name` if empty), is recorded as who checked it in; the
    history row names `actor`. Nothing cached shows check-ins, so there is nothing to
    invalidate.
    """

    def work() -> Reservation:
        locked = lock_for_change(reservation_id, actor)
        reservation, rules = locked.reservation, locked.rules
        if reservation.checked_in_at is not None:
            raise _already_checked_in(reservation, rules.now)
        if reservation.status != ReservationStatus.CONFIRMED:
            raise InvalidState(
                _("This reservation is %(status)s; only a confirmed one can check in.")
                % {"status": reservation.get_status_display().lower()},
                current_status=reservation.status,
            )
        reservation.checked_in_at = rules.now
        reservation.checked_in_by = by or actor.name or actor.kind
        reservation.save(update_fields=["checked_in_at", "checked_in_by"])
        record_note(locked, actor, CHECKED_IN_NOTE)
        return reservation

    return in_booking_transaction(work)
