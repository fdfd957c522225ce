"""A deliberately broken transition for a negative control. Test-only: nothing imports it
outside tests/. It reads without a lock and then writes (check-then-act)."""

from __future__ import annotations

from django.db import connection, transaction
from django.db.models.functions import Now

from bookings.models import ACTIVE_STATUSES, Reservation, ReservationEvent, ReservationStatus
from reservo.errors import InvalidState


def cancel_without_lock(*, reservation_id: int) -> None:
    with transaction.atomic():
        status = Reservation.objects.values_list("status", flat=True).get(pk=reservation_id)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(0.02)")  # as a slow request would
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
