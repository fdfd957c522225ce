"""Staff roles: the "booking clerk" group (view and cancel reservations, nothing else)."""

from __future__ import annotations

from typing import Any

from django.apps import apps as global_apps

BOOKING_CLERK_GROUP = "booking clerk"
# Custom permissions on reservations, used by the admin actions (no model field changes).
RESERVATION_CUSTOM_PERMISSIONS = {
    "cancel_reservation": "Can cancel reservations",
    "confirm_reservation": "Can confirm held reservations",
}
BOOKING_CLERK_PERMISSIONS = [
    ("bookings", "reservation", "view_reservation"),
    ("bookings", "reservation", "cancel_reservation"),
    ("bookings", "reservationevent", "view_reservationevent"),
    ("resources", "resource", "view_resource"),
]


def booking_clerk_group_ensure(apps: Any = global_apps) -> Any:
    """Create (or complete) the clerk group; `apps` is the migration state when migrating."""
    content_type_model = apps.get_model("contenttypes", "ContentType")
    permission_model = apps.get_model("auth", "Permission")
    group_model = apps.get_model("auth", "Group")

    def permission(app_label: str, model: str, codename: str) -> Any:
        content_type, _ = content_type_model.objects.get_or_create(app_label=app_label, model=model)
        name = RESERVATION_CUSTOM_PERMISSIONS.get(codename) or (
            f"Can {codename.split('_', 1)[0]} {model}"
        )
        found, _ = permission_model.objects.get_or_create(
            content_type=content_type, codename=codename, defaults={"name": name}
        )
        return found

    for codename in RESERVATION_CUSTOM_PERMISSIONS:
        permission("bookings", "reservation", codename)
    group, _ = group_model.objects.get_or_create(name=BOOKING_CLERK_GROUP)
    group.permissions.add(*(permission(*spec) for spec in BOOKING_CLERK_PERMISSIONS))
    return group


def booking_clerk_group_remove(apps: Any = global_apps) -> None:
    apps.get_model("auth", "Group").objects.filter(name=BOOKING_CLERK_GROUP).delete()
    apps.get_model("auth", "Permission").objects.filter(
        content_type__app_label="bookings", codename__in=list(RESERVATION_CUSTOM_PERMISSIONS)
    ).delete()
