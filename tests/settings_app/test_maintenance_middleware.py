"""Maintenance mode refuses booking writes (pages and API) and nothing else."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import OperationalError, ProgrammingError
from django.test import Client
from django.utils import timezone

from settings_app.models import SystemSettings
from tests.settings_app.admin_form import CHANGE_URL, settings_form

pytestmark = pytest.mark.django_db

BOOKING_WRITES = [
    ("post", "/api/v1/reservations/"),
    ("post", "/api/v1/reservations/6f1c/confirm/"),
    ("post", "/api/v1/reservations/6f1c/cancel/"),
    ("patch", "/api/v1/resources/7/"),
    ("put", "/api/v1/resources/7/"),
    ("delete", "/api/v1/reservations/6f1c/"),
]
PAGE_WRITES = [
    ("post", "/"),
    ("post", "/book/friday-meetup/"),
    ("post", "/reservations/RSV-ABCDEFGH/cancel/"),
]


def maintenance_on(message: str = "", until: Any = None) -> None:
    SystemSettings.objects.update(
        maintenance_mode=True, maintenance_message=message, maintenance_until=until
    )


@pytest.mark.parametrize(("method", "path"), BOOKING_WRITES)
def test_api_writes_get_a_maintenance_problem(client: Client, method: str, path: str) -> None:
    maintenance_on("Upgrading the database")
    response = getattr(client, method)(path, data={}, content_type="application/json")
    assert response.status_code == 503
    assert response["Content-Type"] == "application/problem+json"
    assert response["Retry-After"] == "60"
    body = response.json()
    assert body["code"] == "maintenance"
    assert body["status"] == 503
    assert body["type"] == "/problems/maintenance"
    assert body["detail"] == "Upgrading the database"


@pytest.mark.parametrize(("method", "path"), PAGE_WRITES)
def test_page_writes_get_the_maintenance_page(client: Client, method: str, path: str) -> None:
    maintenance_on("Back after the <b>update</b>")
    response = getattr(client, method)(path, data={"quantity": "1"})
    assert response.status_code == 503
    assert response["Content-Type"].startswith("text/html")
    assert response["Retry-After"] == "60"
    assert [t.name for t in response.templates][:2] == ["maintenance.html", "base.html"]
    html = response.content.decode()
    assert "Down for maintenance" in html
    assert "Back after the &lt;b&gt;update&lt;/b&gt;" in html  # staff text is escaped


def test_default_message_when_staff_gave_none(client: Client) -> None:
    maintenance_on("")
    body = client.post("/api/v1/reservations/", {}, content_type="application/json").json()
    assert "paused for maintenance" in body["detail"]


def test_planned_end_sets_retry_after_and_is_shown(client: Client) -> None:
    maintenance_on("Short break", until=timezone.now() + timedelta(minutes=10))
    api = client.post("/api/v1/reservations/", {}, content_type="application/json")
    assert 590 <= int(api["Retry-After"]) <= 600
    assert "maintenance_until" in api.json()
    page = client.post("/book/x/", {})
    assert 590 <= int(page["Retry-After"]) <= 600
    assert "We plan to be back by" in page.content.decode()


def test_planned_end_in_the_past_falls_back_to_default_retry_after(client: Client) -> None:
    maintenance_on("Late", until=timezone.now() - timedelta(minutes=10))
    response = client.post("/api/v1/reservations/", {}, content_type="application/json")
    assert response["Retry-After"] == "60"


@pytest.mark.parametrize("path", ["/", "/api/v1/resources/", "/healthz", "/readyz"])
def test_reads_keep_working(client: Client, path: str) -> None:
    maintenance_on()
    response = client.get(path)
    assert response.status_code != 503 or (
        path == "/readyz" and "maintenance" not in str(response.content)
    )
    assert b"maintenance" not in response.content.lower()


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_probes_are_exempt_for_any_method(client: Client, path: str) -> None:
    maintenance_on()
    response = client.post(path)
    assert response.status_code != 503


def test_admin_keeps_working(superuser_client: Client) -> None:
    maintenance_on()
    response = superuser_client.post(CHANGE_URL, settings_form())
    assert response.status_code == 302
    assert SystemSettings.objects.get().maintenance_mode is False


def test_writes_pass_when_maintenance_is_off(client: Client) -> None:
    response = client.post("/api/v1/reservations/", {}, content_type="application/json")
    assert response.status_code != 503


def test_admin_login_works_during_maintenance(client: Client, superuser: Any) -> None:
    maintenance_on()
    response = client.post(
        "/admin/login/?next=/admin/", {"username": "boss", "password": "s3cret-pass"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/admin/"


def _database_unreachable(*args: Any, **kwargs: Any) -> Any:
    raise OperationalError("connection timeout expired")


@pytest.mark.parametrize("path", ["/api/v1/reservations/", "/r/friday-meetup/"])
def test_database_unreachable_for_the_check_is_a_503_not_a_500(
    client: Client, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    monkeypatch.setattr(
        "settings_app.middleware.system_settings", _database_unreachable, raising=True
    )
    response = client.post(path, {}, content_type="application/json")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    if path.startswith("/api/"):
        assert response.json()["code"] == "unavailable"
    else:
        assert response["Content-Type"].startswith("text/html")
        assert "Traceback" not in response.content.decode()


def test_database_bug_during_the_check_is_not_hidden(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ProgrammingError("relation does not exist")

    monkeypatch.setattr("settings_app.middleware.system_settings", broken, raising=True)
    client.raise_request_exception = True
    with pytest.raises(ProgrammingError):
        client.post("/api/v1/reservations/", {}, content_type="application/json")
