"""Admin login is protected against brute force (django-axes, counted in PostgreSQL)."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.test import Client

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/?next=/admin/"


def attempt(client: Client, password: str, address: str = "10.0.0.1") -> Any:
    return client.post(LOGIN, {"username": "boss", "password": password}, REMOTE_ADDR=address)


def test_repeated_failures_lock_out_even_the_right_password(superuser: Any) -> None:
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = attempt(client, "wrong")
        assert response.status_code == 200  # the login form again, with its error
    assert attempt(client, "wrong").status_code == 429
    assert attempt(client, "s3cret-pass").status_code == 429
    assert "_auth_user_id" not in client.session


def test_lockout_is_per_address_and_username(superuser: Any) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT):
        attempt(Client(), "wrong", address="10.0.0.1")
    response = attempt(Client(), "s3cret-pass", address="10.0.0.2")
    assert response.status_code == 302


def test_success_below_the_limit_resets_the_count(superuser: Any) -> None:
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        attempt(client, "wrong")
    assert attempt(client, "s3cret-pass").status_code == 302
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert attempt(Client(), "wrong").status_code == 200
