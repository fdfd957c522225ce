"""Staff users for the admin tests: a superuser and a booking clerk."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from settings_app.permissions import booking_clerk_group_ensure

PASSWORD = "s3cret-pass"


@pytest.fixture
def superuser(db: Any) -> Any:
    return get_user_model().objects.create_superuser("boss", "boss@example.com", PASSWORD)


@pytest.fixture
def clerk(db: Any) -> Any:
    user = get_user_model().objects.create_user("clerk", "clerk@example.com", PASSWORD)
    user.is_staff = True
    user.save()
    # The group comes from a migration; ensured again in case a flush emptied the tables.
    user.groups.add(booking_clerk_group_ensure())
    return user


@pytest.fixture
def superuser_client(superuser: Any) -> Client:
    client = Client()
    client.force_login(superuser)
    return client


@pytest.fixture
def clerk_client(clerk: Any) -> Client:
    client = Client()
    client.force_login(clerk)
    return client
