"""Reads of the SystemSettings singleton through the shared cache.

Every instance reads the same Redis entry, written through after each committed change and
kept half a second at most; each process keeps what it read for another half second at
most (every booking write reads the switch, and this saves it a Redis round trip). So a
change reaches every instance within a second even if a write-through was lost, and the
process that made it sees it at once. A cache miss, or Redis being unreachable (the cache
client ignores its errors and reports a miss), reads PostgreSQL: never a default value.
The switch decides nothing on its own: every booking service checks it again in its
transaction.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from django.core.cache import cache

from settings_app.models import SINGLETON_ID, SystemSettings

CACHE_KEY = "system_settings:v1"
CACHE_SECONDS = 0.5
# Together with CACHE_SECONDS, the one-second bound DESIGN sets on every per-process copy.
PROCESS_SECONDS = 0.5
# (monotonic time it was read, snapshot), or None.
_remembered: tuple[float, SettingsSnapshot] | None = None


@dataclass(frozen=True)
class SettingsSnapshot:
    maintenance_mode: bool
    maintenance_message: str
    maintenance_until: datetime | None
    hold_ttl_seconds: int
    default_max_per_booking: int
    maintenance_started_at: datetime | None = None

    @classmethod
    def of(cls, row: SystemSettings) -> SettingsSnapshot:
        return cls(
            maintenance_mode=row.maintenance_mode,
            maintenance_message=row.maintenance_message,
            maintenance_until=row.maintenance_until,
            hold_ttl_seconds=row.hold_ttl_seconds,
            default_max_per_booking=row.default_max_per_booking,
            maintenance_started_at=row.maintenance_started_at,
        )


def system_settings_from_database() -> SettingsSnapshot:
    return SettingsSnapshot.of(SystemSettings.objects.get(pk=SINGLETON_ID))


def system_settings() -> SettingsSnapshot:
    """The current settings: this process's copy of the last half second, else the shared
    cache, else PostgreSQL."""
    global _remembered
    remembered = _remembered
    now = time.monotonic()
    if remembered is not None and now - remembered[0] < PROCESS_SECONDS:
        return remembered[1]
    snapshot = _shared_or_database()
    # Unless a write-through replaced the copy meanwhile: that one is newer.
    if _remembered is remembered:
        _remembered = (now, snapshot)
    return snapshot


def _shared_or_database() -> SettingsSnapshot:
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
    """Write-through after commit, to this process's copy and the shared cache; the short
    timeouts bound staleness should the shared write be lost."""
    global _remembered
    _remembered = (time.monotonic(), snapshot)
    cache.set(CACHE_KEY, asdict(snapshot), timeout=CACHE_SECONDS)
