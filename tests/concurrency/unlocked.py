"""Deliberately broken pieces for negative controls. Test-only: nothing imports them
outside tests/. They read without a lock, slowly, and the caller then writes
(check-then-act)."""

from __future__ import annotations

from django.db import connection, transaction
from django.db.models.functions import Now

from bookings.models import ACTIVE_STATUSES, Reservation, ReservationEvent, ReservationStatus
from reservo.errors import InvalidState
from resources.models import Resource


def _pause() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(0.02)")  # as a slow request would


def resource_read_without_lock(resource_id: int) -> Resource:
    """Stands in for `lock_resource`: the row as it is, no lock taken."""
    resource = Resource.objects.get(pk=resource_id)
    _pause()
    return resource


def reservation_read_without_lock(reservation_id: int) -> Reservation:
    """Stands in for `lock_reservation`: the row as it is, no lock taken."""
    reservation = Reservation.objects.get(pk=reservation_id)
    _pause()
    return reservation


def cancel_without_lock(*, reservation_id: int) -> None:
    with transaction.atomic():
        status = Reservation.objects.values_list("status", flat=True).get(pk=reservation_id)
        _pause()
        if status not in ACTIVE_STATUSES:
            raise InvalidState(current_status=status)
        Reservation.objects.filter(pk=reservation_id).update(
            status=ReservationStatus.CANCELLED, cancelled_at=Now()
        )
        ReservationEvent.objects.create(
            reservation_id=reservation_id,
            from_status=status,
            to_status=ReservationStatus.CANCELLED,
            actor="customer",
        )
