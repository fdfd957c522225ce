"""Deliberately broken booking paths for negative controls. Test-only: nothing imports them
outside tests/. They read without a lock and then write (check-then-act)."""

from __future__ import annotations

from django.db import connection, transaction
from django.db.models.functions import Now

from bookings.models import ACTIVE_STATUSES, Reservation, ReservationEvent, ReservationStatus
from bookings.services.common import new_reference
from reservo.errors import InvalidState, SoldOut


def book_without_lock(*, resource_id: int, quantity: int) -> Reservation:
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT capacity - held - confirmed FROM resources_resource WHERE id = %s",
                [resource_id],
            )
            (available,) = cursor.fetchone()
            # Widen the window between the check and the write, as a slow request would.
            cursor.execute("SELECT pg_sleep(0.02)")
        if quantity > available:
            raise SoldOut(available=available)
        return Reservation.objects.create(
            reference=new_reference(),
            resource_id=resource_id,
            quantity=quantity,
            status=ReservationStatus.CONFIRMED,
            confirmed_at=Now(),
            manage_token_hash="",
        )


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
