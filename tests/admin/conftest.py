"""Staff users for the admin tests (a superuser and a booking clerk), and static files
served from the app directories, as `manage.py collectstatic` has not run for the suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from settings_app.permissions import booking_clerk_group_ensure

PASSWORD = "s3cret-pass"


@pytest.fixture(autouse=True)
def _static_files_without_collectstatic(settings: Any, tmp_path_factory: Any) -> Iterator[None]:
    root: Path = tmp_path_factory.getbasetemp() / "static_root"
    root.mkdir(exist_ok=True)
    settings.STATIC_ROOT = root
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    yield


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
