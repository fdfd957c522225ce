"""The system settings page: one row, saved through the service, logged, for superusers."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.test import Client

from settings_app.models import SystemSettings
from settings_app.permissions import BOOKING_CLERK_GROUP
from settings_app.selectors import CACHE_KEY
from tests.settings_app.admin_form import CHANGE_URL, settings_form

pytestmark = pytest.mark.django_db


def test_list_goes_straight_to_the_single_row(superuser_client: Client) -> None:
    response = superuser_client.get("/admin/settings_app/systemsettings/")
    assert response.status_code == 302
    assert response["Location"] == CHANGE_URL


def test_no_add_no_delete(superuser_client: Client) -> None:
    assert superuser_client.get("/admin/settings_app/systemsettings/add/").status_code == 403
    assert superuser_client.post(CHANGE_URL.replace("change", "delete")).status_code == 403
    html = superuser_client.get(CHANGE_URL).content.decode()
    assert "deletelink" not in html
    assert SystemSettings.objects.count() == 1


def test_switching_maintenance_on_is_saved_logged_and_written_through(
    superuser_client: Client, superuser: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = superuser_client.post(
            CHANGE_URL,
            settings_form(
                maintenance_mode="on",
                maintenance_message="Back at 10:00",
                maintenance_until_0="2026-12-04",
                maintenance_until_1="10:00:00",
            ),
        )
    assert response.status_code == 302
    row = SystemSettings.objects.get()
    assert (row.maintenance_mode, row.maintenance_message) == (True, "Back at 10:00")
    assert row.maintenance_until is not None
    entry = LogEntry.objects.get(object_id="1")
    assert (entry.action_flag, entry.user_id) == (CHANGE, superuser.pk)
    assert "Maintenance mode" in entry.get_change_message()
    cached = cache.get(CACHE_KEY)
    assert cached["maintenance_mode"] is True
    assert cached["maintenance_message"] == "Back at 10:00"


def test_hold_ttl_and_default_max_are_saved(superuser_client: Client) -> None:
    response = superuser_client.post(
        CHANGE_URL, settings_form(hold_ttl_seconds="120", default_max_per_booking="4")
    )
    assert response.status_code == 302
    row = SystemSettings.objects.get()
    assert (row.hold_ttl_seconds, row.default_max_per_booking) == (120, 4)


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"hold_ttl_seconds": "5"}, "hold_ttl_seconds", "greater than or equal to 10"),
        ({"hold_ttl_seconds": "90000"}, "hold_ttl_seconds", "less than or equal to 86400"),
        ({"hold_ttl_seconds": ""}, "hold_ttl_seconds", "This field is required."),
        ({"default_max_per_booking": "0"}, "default_max_per_booking", "greater than or equal"),
        ({"maintenance_until_0": "soon", "maintenance_until_1": "x"}, "maintenance_until", ""),
    ],
)
def test_invalid_values_are_form_messages(
    superuser_client: Client, overrides: dict[str, str], field: str, message: str
) -> None:
    response = superuser_client.post(CHANGE_URL, settings_form(**overrides))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert field in errors
    assert message in str(errors[field])
    assert SystemSettings.objects.get().hold_ttl_seconds == 600
    assert not LogEntry.objects.exists()


def test_clerk_group_exists_with_its_permissions() -> None:
    group = Group.objects.get(name=BOOKING_CLERK_GROUP)
    codenames = set(group.permissions.values_list("codename", flat=True))
    assert {"view_reservation", "cancel_reservation", "view_resource"} <= codenames
    assert not codenames & {
        "change_reservation",
        "confirm_reservation",
        "change_resource",
        "add_resource",
        "change_systemsettings",
        "view_systemsettings",
        "add_apiclient",
    }


def test_clerk_gets_403_on_settings(clerk_client: Client) -> None:
    assert clerk_client.get("/admin/settings_app/systemsettings/").status_code == 403
    assert clerk_client.get(CHANGE_URL).status_code == 403
    response = clerk_client.post(CHANGE_URL, settings_form(maintenance_mode="on"))
    assert response.status_code == 403
    assert SystemSettings.objects.get().maintenance_mode is False


def test_anonymous_is_sent_to_login(client: Client) -> None:
    response = client.get(CHANGE_URL)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
