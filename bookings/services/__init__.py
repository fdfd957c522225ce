"""Booking services: the only code that changes reservation state.

Each service is one transaction (`bookings.locking.in_booking_transaction`): lock the
resource row, read the rules and the database clock under it, expire its due holds, check,
write the change with its history and outbox rows, and defer cache invalidation to
on_commit. Every decision about time uses the database clock.
"""

from bookings.services.booking import reservation_book
from bookings.services.checkin import (
    check_in_code,
    check_in_code_reference,
    check_in_reservation_id,
    checked_in_moment,
    reservation_check_in,
)
from bookings.services.common import (
    SYSTEM,
    Actor,
    Booking,
    ReferenceTaken,
    holds_due_by,
    manage_token_hash,
)
from bookings.services.staff import reservation_move_seats, reservation_update_customer
from bookings.services.transitions import (
    holds_extend_for_maintenance,
    reservation_cancel,
    reservation_confirm,
    reservations_expire_due,
)

__all__ = [
    "SYSTEM",
    "Actor",
    "Booking",
    "ReferenceTaken",
    "check_in_code",
    "check_in_code_reference",
    "check_in_reservation_id",
    "checked_in_moment",
    "holds_due_by",
    "holds_extend_for_maintenance",
    "manage_token_hash",
    "reservation_book",
    "reservation_cancel",
    "reservation_check_in",
    "reservation_confirm",
    "reservation_move_seats",
    "reservation_update_customer",
    "reservations_expire_due",
]
