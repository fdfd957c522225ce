"""The demo and its published staff login stay on the embedded servers."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection


@pytest.mark.parametrize("variable", ["DATABASE_URL", "REDIS_URL"])
def test_the_demo_refuses_external_servers(variable: str) -> None:
    environment = {**os.environ, variable: "postgres://reservo:secret@db.example.com/reservo"}
    result = subprocess.run(
        [sys.executable, "-m", "reservo.demo"],
        cwd=settings.BASE_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert f"{variable} is set" in result.stderr
    assert "published staff login" in result.stderr
    assert "Starting" not in result.stdout  # nothing was started


@pytest.mark.django_db
def test_the_demo_staff_user_is_refused_on_another_database(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(connection.settings_dict, "HOST", "db.example.com")
    with pytest.raises(CommandError, match="only created on the embedded database"):
        call_command("ensure_demo_staff", "staff", "reservo-demo")
    assert not get_user_model().objects.filter(username="staff").exists()


@pytest.mark.django_db
def test_the_demo_staff_user_is_made_on_the_embedded_database() -> None:
    if os.environ.get("DATABASE_URL"):
        pytest.skip("the suite runs on an external database")
    call_command("ensure_demo_staff", "staff", "reservo-demo")
    call_command("ensure_demo_staff", "staff", "reservo-demo")  # once
    assert get_user_model().objects.get(username="staff").is_superuser
