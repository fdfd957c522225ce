"""Reads of the SystemSettings singleton through the shared cache (never a per-process copy).

Every instance reads the same Redis entry, written through after each committed change and
kept one second at most, so a change reaches every instance within a second even if a
write-through was lost. A cache miss, or Redis being unreachable (the cache client ignores
its errors and reports a miss), reads PostgreSQL: never a stale or a default value.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from django.core.cache import cache

from settings_app.models import SINGLETON_ID, SystemSettings

CACHE_KEY = "system_settings:v1"
CACHE_SECONDS = 1


@dataclass(frozen=True)
class SettingsSnapshot:
    maintenance_mode: bool
    maintenance_message: str
    maintenance_until: datetime | None
    hold_ttl_seconds: int
    default_max_per_booking: int

    @classmethod
    def of(cls, row: SystemSettings) -> SettingsSnapshot:
        return cls(
            maintenance_mode=row.maintenance_mode,
            maintenance_message=row.maintenance_message,
            maintenance_until=row.maintenance_until,
            hold_ttl_seconds=row.hold_ttl_seconds,
            default_max_per_booking=row.default_max_per_booking,
        )


def system_settings_from_database() -> SettingsSnapshot:
    return SettingsSnapshot.of(SystemSettings.objects.get(pk=SINGLETON_ID))


def system_settings() -> SettingsSnapshot:
    """The current settings: the shared cache if it has them, else PostgreSQL."""
    cached: dict[str, Any] | None = cache.get(CACHE_KEY)
    if cached is not None:
        try:
            return SettingsSnapshot(**cached)
        except TypeError:
            pass  # an entry written by another version of this code: read the database
    snapshot = system_settings_from_database()
    # add, not set: a write-through that landed meanwhile is newer than what we read.
    cache.add(CACHE_KEY, asdict(snapshot), timeout=CACHE_SECONDS)
    return snapshot


def system_settings_cache_write(snapshot: SettingsSnapshot) -> None:
    """Write-through after commit; the short timeout bounds staleness should it be lost."""
    cache.set(CACHE_KEY, asdict(snapshot), timeout=CACHE_SECONDS)
