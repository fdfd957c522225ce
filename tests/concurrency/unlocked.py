"""A deliberately broken booking path for negative controls. Test-only: nothing imports it
outside tests/. It reads availability without a lock and then inserts (check-then-act)."""

from __future__ import annotations

from django.db import connection, transaction
from django.db.models.functions import Now

from bookings.models import Reservation, ReservationStatus
from bookings.services.common import _new_reference
from reservo.errors import SoldOut


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
            reference=_new_reference(),
            resource_id=resource_id,
            quantity=quantity,
            status=ReservationStatus.CONFIRMED,
            confirmed_at=Now(),
            manage_token_hash="",
        )
