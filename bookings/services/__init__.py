"""Booking services: the only code that changes reservation state.

Each service is one transaction (see `locking.in_booking_transaction`): lock the resource
row, expire its due holds, check, write the change, its history row and its outbox rows,
and defer cache invalidation to on_commit. Every decision about time uses the database
clock.
"""

from bookings.services.booking import booked_from, reservation_book
from bookings.services.common import SYSTEM, Actor, Booking, ReferenceTaken, manage_token_hash
from bookings.services.transitions import (
    reservation_cancel,
    reservation_confirm,
    reservations_expire_due,
    transitioned_from,
)

__all__ = [
    "SYSTEM",
    "Actor",
    "Booking",
    "ReferenceTaken",
    "booked_from",
    "manage_token_hash",
    "reservation_book",
    "reservation_cancel",
    "reservation_confirm",
    "reservations_expire_due",
    "transitioned_from",
]
