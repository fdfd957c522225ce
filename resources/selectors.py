"""Reads of resources and availability; they own the shared cache.

`available` counts only unexpired holds: holds past their expiry that the sweep has not
reached yet are subtracted in the same query. Cached values live one second at most and
are invalidated after every commit that changes availability, so another instance never
serves stale availability for longer than that. If Redis is down, reads go to PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings
from django.core.cache import cache
from django.db.models import IntegerField, OuterRef, QuerySet, Subquery, Sum, Value
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce

from reservo import metrics
from resources.models import Resource, Seat

T = TypeVar("T")

SEAT_AVAILABLE, SEAT_HELD, SEAT_BOOKED = "available", "held", "booked"


def _expired_held_quantity() -> Coalesce:
    from bookings.models import Reservation, ReservationStatus

    expired = (
        Reservation.objects.filter(resource=OuterRef("pk"), status=ReservationStatus.HELD)
        .filter(hold_expires_at__lte=RawSQL("clock_timestamp()", []))
        .order_by()
        .values("resource")
        .annotate(total=Sum("quantity"))
        .values("total")
    )
    return Coalesce(Subquery(expired, output_field=IntegerField()), Value(0))


def resources_with_availability() -> QuerySet[Resource]:
    """Resources annotated with `expired_held`; use `availability_of` to read them."""
    return Resource.objects.annotate(expired_held=_expired_held_quantity())


def availability_of(resource: Resource) -> dict[str, int]:
    expired_held = getattr(resource, "expired_held", 0)
    held = resource.held - expired_held
    return {
        "capacity": resource.capacity,
        "held": held,
        "confirmed": resource.confirmed,
        "available": max(resource.capacity - held - resource.confirmed, 0),
    }


def resource_available_now(resource_id: int) -> int:
    """Exact places left right now, from PostgreSQL (never the cache)."""
    resource = resources_with_availability().filter(pk=resource_id).first()
    return availability_of(resource)["available"] if resource else 0


def _availability_key(resource_id: int) -> str:
    return f"availability:{resource_id}"


def _seat_map_key(resource_id: int) -> str:
    return f"seatmap:{resource_id}"


def _cached(name: str, key: str, compute: Callable[[], T]) -> T:
    """Read through the shared cache for at most RESERVO_AVAILABILITY_CACHE_SECONDS.

    A Redis failure is a miss (IGNORE_EXCEPTIONS): the value then comes from PostgreSQL.
    """
    value: T | None = cache.get(key)
    if value is not None:
        metrics.cache_result(name, "hit")
        return value
    metrics.cache_result(name, "miss")
    value = compute()
    if value is not None:
        cache.set(key, value, timeout=settings.RESERVO_AVAILABILITY_CACHE_SECONDS)
    return value


def resource_availability(resource_id: int) -> dict[str, int] | None:
    """Availability of one resource through the shared cache (None if there is no such resource)."""

    def compute() -> dict[str, int] | None:
        resource = resources_with_availability().filter(pk=resource_id).first()
        return availability_of(resource) if resource is not None else None

    return _cached("availability", _availability_key(resource_id), compute)


def seat_map(resource_id: int) -> list[dict[str, Any]]:
    """Every seat of a resource with its status: available, held (unexpired hold) or booked."""
    return _cached("seatmap", _seat_map_key(resource_id), lambda: _seat_map_from_db(resource_id))


def _seat_map_from_db(resource_id: int) -> list[dict[str, Any]]:
    seats = Seat.objects.filter(resource_id=resource_id).order_by("row", "number", "label", "id")
    status_sql = """
        SELECT CASE WHEN r.status = 'confirmed' THEN 'booked' ELSE 'held' END
          FROM bookings_reservationseat rs
          JOIN bookings_reservation r ON r.id = rs.reservation_id
         WHERE rs.seat_id = resources_seat.id AND rs.active
           AND (r.status = 'confirmed' OR r.hold_expires_at > clock_timestamp())
         LIMIT 1
    """
    return [
        {
            "id": seat.pk,
            "label": seat.label,
            "row": seat.row,
            "number": seat.number,
            "status": seat.taken or SEAT_AVAILABLE,  # type: ignore[attr-defined]
        }
        for seat in seats.annotate(taken=RawSQL(status_sql, []))
    ]


def availability_invalidate(resource_id: int) -> None:
    """Called on commit of every change to a resource's availability."""
    cache.delete_many([_availability_key(resource_id), _seat_map_key(resource_id)])


def resources_counter_drift() -> list[dict[str, Any]]:
    """Resources whose counters differ from a recount of their active reservations."""
    from bookings.models import Reservation, ReservationStatus

    def recount(status: str) -> Coalesce:
        total = (
            Reservation.objects.filter(resource=OuterRef("pk"), status=status)
            .order_by()
            .values("resource")
            .annotate(total=Sum("quantity"))
            .values("total")
        )
        return Coalesce(Subquery(total, output_field=IntegerField()), Value(0))

    drift = []
    for resource in Resource.objects.annotate(
        expected_held=recount(ReservationStatus.HELD),
        expected_confirmed=recount(ReservationStatus.CONFIRMED),
    ).order_by("id"):
        expected = (resource.expected_held, resource.expected_confirmed)  # type: ignore[attr-defined]
        if expected != (resource.held, resource.confirmed):
            drift.append(
                {
                    "resource": resource,
                    "held": resource.held,
                    "confirmed": resource.confirmed,
                    "expected_held": expected[0],
                    "expected_confirmed": expected[1],
                }
            )
    return drift
