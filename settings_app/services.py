"""Writes to the SystemSettings singleton: one locked update, cache written through on commit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models.functions import Now
from django.utils.translation import gettext as _

from bookings.services import holds_extend_for_maintenance
from reservo.errors import ValidationFailed
from settings_app.models import SINGLETON_ID, SystemSettings
from settings_app.selectors import SettingsSnapshot, system_settings_cache_write

HOLD_TTL_MIN_SECONDS = 10
HOLD_TTL_MAX_SECONDS = 86400

UPDATABLE_FIELDS = frozenset(
    {
        "maintenance_mode",
        "maintenance_message",
        "maintenance_until",
        "hold_ttl_seconds",
        "default_max_per_booking",
    }
)


def _validate(changes: dict[str, Any]) -> None:
    errors: dict[str, list[str]] = {}
    unknown = set(changes) - UPDATABLE_FIELDS
    for field in sorted(unknown):
        errors[field] = [_("This setting cannot be changed.")]
    ttl = changes.get("hold_ttl_seconds")
    if "hold_ttl_seconds" in changes and (
        not isinstance(ttl, int) or not HOLD_TTL_MIN_SECONDS <= ttl <= HOLD_TTL_MAX_SECONDS
    ):
        errors["hold_ttl_seconds"] = [
            _("A hold lasts between %(min)d seconds and %(max)d seconds (one day).")
            % {"min": HOLD_TTL_MIN_SECONDS, "max": HOLD_TTL_MAX_SECONDS}
        ]
    limit = changes.get("default_max_per_booking")
    if "default_max_per_booking" in changes and (not isinstance(limit, int) or limit < 1):
        errors["default_max_per_booking"] = [_("Allow at least one place per booking.")]
    until = changes.get("maintenance_until")
    if until is not None and not isinstance(until, datetime):
        errors["maintenance_until"] = [_("Give a date and time.")]
    if errors:
        raise ValidationFailed(errors)


def system_settings_update(**changes: Any) -> SystemSettings:
    """Change settings under the row lock; every instance sees the change within a second.
    Switching maintenance off extends the holds that were live when it went on by as long
    as it lasted, in the same transaction."""
    _validate(changes)
    with transaction.atomic():
        row = SystemSettings.objects.select_for_update().get(pk=SINGLETON_ID)
        updated = [*sorted(changes), "updated_at"]
        switching = changes.get("maintenance_mode", row.maintenance_mode)
        if switching and not row.maintenance_mode:
            row.maintenance_started_at = Now()  # type: ignore[assignment]
            updated.append("maintenance_started_at")
        elif not switching and row.maintenance_mode:
            if row.maintenance_started_at is not None:
                holds_extend_for_maintenance(started_at=row.maintenance_started_at)
            row.maintenance_started_at = None
            updated.append("maintenance_started_at")
        for field, value in changes.items():
            setattr(row, field, value)
        row.updated_at = Now()  # type: ignore[assignment]
        row.save(update_fields=updated)
        row.refresh_from_db()
        snapshot = SettingsSnapshot.of(row)
        transaction.on_commit(lambda: system_settings_cache_write(snapshot))
    return row
