"""The system settings admin page's form, as tests post it."""

from __future__ import annotations

from typing import Any

CHANGE_URL = "/admin/settings_app/systemsettings/1/change/"


def settings_form(**overrides: Any) -> dict[str, Any]:
    """Every field at its default; an override of None leaves that field out."""
    data = {
        "maintenance_mode": "",
        "maintenance_message": "",
        "maintenance_until_0": "",
        "maintenance_until_1": "",
        "hold_ttl_seconds": "600",
        "default_max_per_booking": "10",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}
