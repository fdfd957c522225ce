"""Reads of resources and availability; they own the shared cache.

`available` counts only unexpired holds: holds past their expiry that the sweep has not
reached yet are subtracted in the same query. Cached values live one second at most, are
never served past the resource's next hold expiry, and are left behind by every commit
that changes the resource (versioned entries), so a client reads its own writes and another
instance never serves stale availability for longer than a second. If Redis is down,
reads go to PostgreSQL.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from django.conf import settings
from django.core.cache import cache
from django.db.models import (
    Case,
    CharField,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce, Now

from reservo import metrics
from resources.models import Resource, Seat

if TYPE_CHECKING:
    from bookings.models import Reservation

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


def _hold_expiries(**resource: Any) -> QuerySet[Any]:
    """The expiry times of the resource's unexpired holds (database clock), soonest first."""
    from bookings.models import Reservation, ReservationStatus

    return (
        Reservation.objects.filter(status=ReservationStatus.HELD, **resource)
        .filter(hold_expires_at__gt=RawSQL("clock_timestamp()", []))
        .order_by("hold_expires_at")
        .values_list("hold_expires_at", flat=True)
    )


def _next_hold_expiry() -> Subquery:
    return Subquery(_hold_expiries(resource=OuterRef("pk"))[:1])


SALES_UPCOMING, SALES_OPEN, SALES_CLOSED = "upcoming", "open", "closed"


def sales_status_of_row() -> Case:
    """A resource's sales status (upcoming, open or closed) by the database clock: sales
    close at `sales_close_at`, or else when the event starts."""
    return Case(
        When(sales_open_at__gt=Now(), then=Value(SALES_UPCOMING)),
        When(
            Q(sales_close_at__lte=Now()) | Q(sales_close_at__isnull=True, starts_at__lte=Now()),
            then=Value(SALES_CLOSED),
        ),
        default=Value(SALES_OPEN),
        output_field=CharField(),
    )


def sales_not_closed(resources: QuerySet[Resource]) -> QuerySet[Resource]:
    """The resources whose sales are open or still to open."""
    return resources.alias(sales_status=sales_status_of_row()).exclude(sales_status=SALES_CLOSED)


def sales_status(resource_id: int) -> str:
    status: str = (
        Resource.objects.filter(pk=resource_id)
        .annotate(sales_status=sales_status_of_row())
        .values_list("sales_status", flat=True)
        .get()
    )
    return status


def resources_with_availability() -> QuerySet[Resource]:
    """Resources annotated with `expired_held` (use `availability_of` to read them) and
    `next_hold_expiry` (until when that availability holds, if nothing is written)."""
    return Resource.objects.annotate(
        expired_held=_expired_held_quantity(), next_hold_expiry=_next_hold_expiry()
    )


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


def _version_key(resource_id: int) -> str:
    return f"resource-version:{resource_id}"


def cached_read_keys(name: str, resource_id: int) -> list[str]:
    """The shared cache keys a read of `name` for this resource looks up (see `_cached`)."""
    return [_version_key(resource_id), f"{name}:{resource_id}"]


def _cached(
    name: str,
    resource_id: int,
    compute: Callable[[], tuple[T | None, datetime | None]],
    found: Mapping[str, Any] | None = None,
) -> T | None:
    """Read through the shared cache for at most RESERVO_AVAILABILITY_CACHE_SECONDS.

    `compute` returns the value and the moment it stops being true on its own (the next
    hold expiry); an entry is not served past it. Each entry records the resource's
    version it was computed under, and every commit that changes the resource bumps that
    version (`availability_invalidate`). The version and the entry are read together, in
    one round trip (MGET), and an entry of another version is a miss: a read that began
    before a commit stores its result under the old version, which no read accepts any
    more, so no stale value outlives an invalidation. A Redis failure is a miss
    (IGNORE_EXCEPTIONS): the value then comes from PostgreSQL. `found`: these keys as
    already read by the caller (the API sends them with its throttle's round trip).
    """
    version_key, key = cached_read_keys(name, resource_id)
    if found is None:
        found = cache.get_many([version_key, key])
    version = found.get(version_key, 0)
    entry = found.get(key)
    if isinstance(entry, tuple) and len(entry) == 3:
        entry_version, value, until = entry
        if entry_version == version and (until is None or time.time() < until):
            metrics.cache_result(name, "hit")
            return value  # type: ignore[no-any-return]
    metrics.cache_result(name, "miss")
    value, true_until = compute()
    if value is not None:
        until = true_until.timestamp() if true_until is not None else None
        cache.set(key, (version, value, until), timeout=settings.RESERVO_AVAILABILITY_CACHE_SECONDS)
    return value


def _one_resource(
    resource_id: int, represent: Callable[[Resource], T]
) -> tuple[T | None, datetime | None]:
    resource = resources_with_availability().filter(pk=resource_id).first()
    if resource is None:
        return None, None
    return represent(resource), resource.next_hold_expiry  # type: ignore[attr-defined]


def resource_availability(resource_id: int) -> dict[str, int] | None:
    """Availability of one resource through the shared cache (None if there is no such resource)."""
    return _cached("availability", resource_id, lambda: _one_resource(resource_id, availability_of))


def resource_represented(
    resource_id: int,
    represent: Callable[[Resource], T],
    found: Mapping[str, Any] | None = None,
) -> T | None:
    """`represent(resource)` (annotated for `availability_of`) through the shared cache, or
    None if there is no such resource. Exact right after a write that committed. `found`:
    the keys of `cached_read_keys("resource", resource_id)`, if the caller has read them."""
    return _cached("resource", resource_id, lambda: _one_resource(resource_id, represent), found)


def seat_map(resource_id: int) -> list[dict[str, Any]]:
    """Every seat of a resource with its status: available, held (an unexpired hold or a
    house block) or booked."""
    return _cached("seatmap", resource_id, lambda: _seat_map_from_db(resource_id)) or []


def _seat_map_from_db(resource_id: int) -> tuple[list[dict[str, Any]], datetime | None]:
    next_hold_expiry = _hold_expiries(resource_id=resource_id).first()
    seats = Seat.objects.filter(resource_id=resource_id).order_by("row", "number", "label", "id")
    status_sql = """
        SELECT CASE WHEN r.status = 'confirmed' THEN 'booked' ELSE 'held' END
          FROM bookings_reservationseat rs
          JOIN bookings_reservation r ON r.id = rs.reservation_id
         WHERE rs.seat_id = resources_seat.id AND rs.active
           AND (r.status = 'confirmed' OR r.blocked OR r.hold_expires_at > clock_timestamp())
         LIMIT 1
    """
    statuses = [
        {
            "id": seat.pk,
            "label": seat.label,
            "row": seat.row,
            "number": seat.number,
            "status": seat.taken or SEAT_AVAILABLE,  # type: ignore[attr-defined]
        }
        for seat in seats.annotate(taken=RawSQL(status_sql, []))
    ]
    return statuses, next_hold_expiry


SEAT_BLOCKED, SEAT_CHECKED_IN = "blocked", "checked_in"


@dataclass(frozen=True)
class SeatPlan:
    """Staff's view of a seated resource: `seats` (each with its `status` and its `holder`,
    the reservation holding it, or None) and `holders` (those reservations, in the order of
    their first seat). `resource` is annotated for `availability_of`."""

    resource: Resource
    seats: list[dict[str, Any]]
    holders: list[dict[str, Any]]


def seat_plan(resource_id: int) -> SeatPlan | None:
    """Every seat of a resource with who holds it: available, held (an unexpired hold),
    blocked (a house block), booked or checked_in, from PostgreSQL (never the cache: staff
    act on it). None if there is no such resource. Three queries."""
    from bookings.models import ReservationSeat, ReservationStatus

    resource = resources_with_availability().filter(pk=resource_id).first()
    if resource is None:
        return None
    seats: list[dict[str, Any]] = [
        {"id": seat_id, "label": label, "row": row, "number": number}
        for seat_id, label, row, number in Seat.objects.filter(resource_id=resource_id)
        .order_by("row", "number", "label", "id")
        .values_list("id", "label", "row", "number")
    ]
    links = (
        ReservationSeat.objects.filter(resource_id=resource_id, active=True)
        .filter(
            Q(reservation__status=ReservationStatus.CONFIRMED)
            | Q(reservation__blocked=True)
            | Q(reservation__hold_expires_at__gt=RawSQL("clock_timestamp()", []))
        )
        .select_related("reservation")
    )
    holder_of_seat: dict[int, dict[str, Any]] = {}
    holders: dict[int, dict[str, Any]] = {}
    for link in links:
        reservation = link.reservation
        holder = holders.get(reservation.pk)
        if holder is None:
            holder = holders[reservation.pk] = {
                "id": reservation.pk,
                "reference": reservation.reference,
                "name": reservation.customer_name,
                "email": reservation.customer_email,
                "phone": reservation.customer_phone,
                "note": reservation.note,
                "quantity": reservation.quantity,
                "status": _staff_status(reservation),
                "hold_expires_at": reservation.hold_expires_at,
                "checked_in_at": reservation.checked_in_at,
                "seat_ids": [],
                "seat_labels": [],
            }
        holder_of_seat[link.seat_id] = holder
    ordered_holders = []
    for seat in seats:
        holder = holder_of_seat.get(seat["id"])
        seat["holder"] = holder
        seat["status"] = holder["status"] if holder else SEAT_AVAILABLE
        if holder is not None:
            if not holder["seat_labels"]:
                ordered_holders.append(holder)
            holder["seat_ids"].append(seat["id"])
            holder["seat_labels"].append(seat["label"])
    return SeatPlan(resource=resource, seats=seats, holders=ordered_holders)


def _staff_status(reservation: Reservation) -> str:
    from bookings.models import ReservationStatus

    if reservation.blocked:
        return SEAT_BLOCKED
    if reservation.status == ReservationStatus.CONFIRMED:
        return SEAT_CHECKED_IN if reservation.checked_in_at else SEAT_BOOKED
    return SEAT_HELD


def availability_invalidate(resource_id: int) -> None:
    """Called on commit of every change to a resource: its cached reads are from now on
    looked up under a new version.

    One INCR, which starts a missing version at 1. A cache failure is logged (and counted)
    like the ones django-redis swallows, never raised: the commit is done, and the entries
    it leaves behind expire within RESERVO_AVAILABILITY_CACHE_SECONDS anyway.
    """
    try:
        redis = cache.client.get_client(write=True)  # type: ignore[attr-defined]
        redis.incr(cache.make_key(_version_key(resource_id)))
    except Exception:
        logging.getLogger(settings.DJANGO_REDIS_LOGGER).warning(
            "availability of resource %s not invalidated: the cache did not answer",
            resource_id,
            exc_info=True,
        )


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
