"""Reads for the back office's dashboard: the week's events, recent sales, holds about to
expire, the notification outbox and maintenance mode, one query each.

Every moment here is measured against the database clock, read once per dashboard together
with the maintenance switch; days are days in the site's time zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db import connection
from django.db.models import Count, DateTimeField, Func, Min, Q, Sum, Window
from django.db.models.functions import TruncDate
from django.utils import timezone

from bookings.models import OutboxMessage, Reservation, ReservationStatus
from resources.models import Resource, ResourceState
from resources.selectors import availability_of, resources_with_availability
from settings_app.models import SINGLETON_ID, SystemSettings

EVENT_DAYS_AHEAD = 7
SALES_DAYS = 14
EXPIRING_WITHIN = timedelta(minutes=10)
# A dashboard lists what fits on a screen; the full lists are one click away.
LIST_LIMIT = 50


class StatementTimestamp(Func):
    """The database clock (the start of the current statement)."""

    template = "statement_timestamp()"
    output_field = DateTimeField()


@dataclass(frozen=True)
class Maintenance:
    on: bool
    message: str
    until: datetime | None
    since: datetime | None


@dataclass(frozen=True)
class EventOccupancy:
    """An event's places: confirmed, held (live holds and house blocks) and free. Holds past
    their expiry that the sweep has not reached yet count as free."""

    resource: Resource
    capacity: int
    confirmed: int
    held: int
    free: int


@dataclass(frozen=True)
class DaySales:
    day: date
    bookings: int
    places: int


@dataclass(frozen=True)
class ExpiringHold:
    reservation: Reservation
    expires_in: timedelta


@dataclass(frozen=True)
class OutboxHealth:
    pending: int
    dead: int
    oldest_pending_at: datetime | None


def clock_and_maintenance() -> tuple[datetime, Maintenance]:
    """The database clock, and the maintenance switch as stored (not a cached copy)."""
    row = (
        SystemSettings.objects.filter(pk=SINGLETON_ID)
        .annotate(clock=StatementTimestamp())
        .values_list(
            "clock",
            "maintenance_mode",
            "maintenance_message",
            "maintenance_until",
            "maintenance_started_at",
        )
        .first()
    )
    if row is None:
        # The row comes from a migration; as for the booking services, its defaults stand in.
        with connection.cursor() as cursor:
            cursor.execute("SELECT statement_timestamp()")
            (clock,) = cursor.fetchone()
        return clock, Maintenance(on=False, message="", until=None, since=None)
    clock, on, message, until, since = row
    return clock, Maintenance(on=on, message=message, until=until, since=since)


def day_start(day: date) -> datetime:
    """Midnight at the start of `day` in the site's time zone."""
    return datetime.combine(day, time.min, tzinfo=timezone.get_current_timezone())


def local_date(moment: datetime) -> date:
    return timezone.localtime(moment).date()


def events_ahead(
    *, now: datetime, days: int = EVENT_DAYS_AHEAD
) -> tuple[list[EventOccupancy], int]:
    """Today's events and those of the next `days` days that are not cancelled, soonest
    first: the first LIST_LIMIT of them, and how many there are in all."""
    today = local_date(now)
    resources = (
        resources_with_availability()
        .filter(
            starts_at__gte=day_start(today),
            starts_at__lt=day_start(today + timedelta(days=days + 1)),
        )
        .exclude(state=ResourceState.CANCELLED)
        .annotate(found=Window(Count("pk")))
        .order_by("starts_at", "id")
    )
    listed = list(resources[:LIST_LIMIT])
    events = []
    for resource in listed:
        places = availability_of(resource)
        events.append(
            EventOccupancy(
                resource=resource,
                capacity=places["capacity"],
                confirmed=places["confirmed"],
                held=places["held"],
                free=places["available"],
            )
        )
    return events, (listed[0].found if listed else 0)  # type: ignore[attr-defined]


def sales_by_day(*, now: datetime, days: int = SALES_DAYS) -> list[DaySales]:
    """Bookings confirmed on each of the last `days` days (today included) that are still
    confirmed, and their places; a day without sales is there with zeros."""
    today = local_date(now)
    first = today - timedelta(days=days - 1)
    rows = (
        Reservation.objects.filter(
            status=ReservationStatus.CONFIRMED,
            confirmed_at__gte=day_start(first),
            confirmed_at__lt=day_start(today + timedelta(days=1)),
        )
        .annotate(day=TruncDate("confirmed_at", tzinfo=timezone.get_current_timezone()))
        .order_by()
        .values("day")
        .annotate(bookings=Count("pk"), places=Sum("quantity"))
    )
    found = {row["day"]: row for row in rows}
    sales = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        row = found.get(day)
        sales.append(
            DaySales(
                day=day,
                bookings=row["bookings"] if row else 0,
                places=row["places"] if row else 0,
            )
        )
    return sales


def holds_expiring(*, now: datetime, within: timedelta = EXPIRING_WITHIN) -> list[ExpiringHold]:
    """Customers' holds that expire within `within` from `now`, soonest first (house blocks
    never expire)."""
    holds = (
        Reservation.objects.filter(
            status=ReservationStatus.HELD,
            blocked=False,
            hold_expires_at__gt=now,
            hold_expires_at__lte=now + within,
        )
        .select_related("resource")
        .order_by("hold_expires_at", "id")[:LIST_LIMIT]
    )
    return [
        ExpiringHold(reservation=hold, expires_in=hold.hold_expires_at - now)  # type: ignore[operator]
        for hold in holds
    ]


def outbox_health() -> OutboxHealth:
    """Notifications waiting to be delivered, those given up on, and since when the oldest
    one waits."""
    pending, dead = OutboxMessage.Status.PENDING, OutboxMessage.Status.DEAD
    counts = OutboxMessage.objects.filter(status__in=[pending, dead]).aggregate(
        pending=Count("pk", filter=Q(status=pending)),
        dead=Count("pk", filter=Q(status=dead)),
        oldest_pending_at=Min("created_at", filter=Q(status=pending)),
    )
    return OutboxHealth(**counts)
