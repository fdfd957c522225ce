"""The booking clerk group comes from a reversible data migration."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command

from settings_app.permissions import BOOKING_CLERK_GROUP, booking_clerk_group_ensure

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def clerk_permissions() -> set[str]:
    group = Group.objects.filter(name=BOOKING_CLERK_GROUP).first()
    return set(group.permissions.values_list("codename", flat=True)) if group else set()


def test_clerk_group_migration_goes_back_and_forth() -> None:
    booking_clerk_group_ensure()  # as migrated (a flush by an earlier test empties it)
    assert "cancel_reservation" in clerk_permissions()
    call_command("migrate", "settings_app", "0002", verbosity=0)
    try:
        assert not Group.objects.filter(name=BOOKING_CLERK_GROUP).exists()
        assert not Permission.objects.filter(codename="cancel_reservation").exists()
    finally:
        call_command("migrate", verbosity=0)
    assert {"view_reservation", "cancel_reservation", "view_resource"} <= clerk_permissions()
