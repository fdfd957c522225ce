"""Production refuses to start without its secrets and addresses; local runs do not need
them (the demo, the suite, the embedded servers). The settings module is run afresh under
each environment, in this process (it connects to nothing when both URLs are given)."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from reservo import embedded

SETTINGS_FILE = Path(settings.BASE_DIR) / "reservo" / "settings.py"
EXTERNAL = {
    "DATABASE_URL": "postgres://reservo:secret@db.example.com:5432/reservo",
    "REDIS_URL": "redis://cache.example.com:6379/0",
}
PRODUCTION = {
    **EXTERNAL,
    "SECRET_KEY": "production-" + "k" * 50,
    "RESERVO_PUBLIC_URL": "https://tickets.example.com",
    "RESERVO_EMAIL_URL": "smtp+tls://reservo:secret@smtp.example.com:587",
}
# Everything these tests set, cleared first so that the suite's own environment (its
# PYTEST_VERSION, a DATABASE_URL) does not leak in.
VARIABLES = [
    "PYTEST_VERSION",
    "DEBUG",
    "SECRET_KEY",
    "DATABASE_URL",
    "REDIS_URL",
    "RESERVO_PUBLIC_URL",
    "RESERVO_EMAIL_URL",
    "RESERVO_EMAIL_BACKEND",
    "RESERVO_BEHIND_PROXY",
    "SECURE_SSL_REDIRECT",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_HSTS_SECONDS",
    "HOST",
    "PORT",
]


def settings_under(monkeypatch: pytest.MonkeyPatch, **environment: str) -> dict[str, Any]:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(SETTINGS_FILE))


def test_production_refuses_to_start_without_secret_key(monkeypatch: pytest.MonkeyPatch) -> None:
    without_key = {k: v for k, v in PRODUCTION.items() if k != "SECRET_KEY"}
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY must be set"):
        settings_under(monkeypatch, **without_key)


def test_production_starts_with_its_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    values = settings_under(monkeypatch, **PRODUCTION)
    assert values["SECRET_KEY"] == PRODUCTION["SECRET_KEY"]
    assert not values["RESERVO_GENERATED_SECRET_KEY"]
    assert not values["RESERVO_LOCAL_RUN"]
    assert values["RESERVO_PUBLIC_URL"] == "https://tickets.example.com"
    assert values["EMAIL_BACKEND"] == "django.core.mail.backends.smtp.EmailBackend"


@pytest.mark.parametrize(
    "local",
    [
        {"DATABASE_URL": "", "REDIS_URL": EXTERNAL["REDIS_URL"]},  # the embedded default
        {"DATABASE_URL": "embedded", "REDIS_URL": EXTERNAL["REDIS_URL"]},  # its socket
        {**EXTERNAL, "DEBUG": "1"},
        {**EXTERNAL, "PYTEST_VERSION": "9"},  # the suite and the servers it starts
    ],
    ids=["embedded-default", "embedded-socket", "debug", "suite"],
)
def test_local_runs_keep_the_generated_key(
    monkeypatch: pytest.MonkeyPatch, local: dict[str, str]
) -> None:
    if local.get("DATABASE_URL") == "":
        # Settings start the embedded server when DATABASE_URL is empty: it runs already,
        # unless the suite itself runs on external servers.
        if os.environ.get("DATABASE_URL"):
            pytest.skip("the suite runs on an external database")
        local = {k: v for k, v in local.items() if k != "DATABASE_URL"}
    elif local.get("DATABASE_URL") == "embedded":
        local = {**local, "DATABASE_URL": embedded.postgres_url()}
    values = settings_under(monkeypatch, **local)
    assert values["RESERVO_LOCAL_RUN"]
    assert values["RESERVO_GENERATED_SECRET_KEY"]
    assert values["SECRET_KEY"] == embedded.local_secret_key()
    assert values["EMAIL_BACKEND"] == values["CONSOLE_EMAIL_BACKEND"]


@pytest.mark.parametrize("url", [None, "", "http://tickets.example.com", "tickets.example.com"])
def test_production_needs_an_https_public_url(
    monkeypatch: pytest.MonkeyPatch, url: str | None
) -> None:
    environment = {k: v for k, v in PRODUCTION.items() if k != "RESERVO_PUBLIC_URL"}
    if url is not None:
        environment["RESERVO_PUBLIC_URL"] = url
    with pytest.raises(ImproperlyConfigured, match="RESERVO_PUBLIC_URL must be set"):
        settings_under(monkeypatch, **environment)


def test_a_local_public_url_follows_where_it_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    values = settings_under(monkeypatch, **EXTERNAL, DEBUG="1", PORT="8123")
    assert values["RESERVO_PUBLIC_URL"] == "http://127.0.0.1:8123"
    values = settings_under(monkeypatch, **EXTERNAL, DEBUG="1", HOST="0.0.0.0", PORT="9000")  # noqa: S104
    assert values["RESERVO_PUBLIC_URL"] == "http://127.0.0.1:9000"


def test_production_needs_a_mail_server_and_never_the_console(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    without_mail = {k: v for k, v in PRODUCTION.items() if k != "RESERVO_EMAIL_URL"}
    with pytest.raises(ImproperlyConfigured, match="RESERVO_EMAIL_URL must be set"):
        settings_under(monkeypatch, **without_mail)
    with pytest.raises(ImproperlyConfigured, match="console email backend is for the demo"):
        settings_under(monkeypatch, **without_mail, RESERVO_EMAIL_URL="consolemail://")
    values = settings_under(monkeypatch, **without_mail, RESERVO_EMAIL_URL="dummymail://")
    assert values["EMAIL_BACKEND"] == "django.core.mail.backends.dummy.EmailBackend"


def test_behind_the_proxy_cookies_are_secure_and_hsts_is_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    values = settings_under(monkeypatch, **PRODUCTION, RESERVO_BEHIND_PROXY="1")
    assert values["SECURE_PROXY_SSL_HEADER"] == ("HTTP_X_FORWARDED_PROTO", "https")
    assert values["SESSION_COOKIE_SECURE"] and values["CSRF_COOKIE_SECURE"]
    assert values["SESSION_COOKIE_NAME"] == "__Host-sessionid"
    assert values["CSRF_COOKIE_NAME"] == "__Host-csrftoken"
    assert values["SECURE_HSTS_SECONDS"] == 365 * 24 * 3600
    # Each still follows the environment.
    values = settings_under(
        monkeypatch, **PRODUCTION, RESERVO_BEHIND_PROXY="1", SECURE_HSTS_SECONDS="600"
    )
    assert values["SECURE_HSTS_SECONDS"] == 600
    # Without a proxy (plain HTTP on a local run), neither.
    values = settings_under(monkeypatch, **EXTERNAL, DEBUG="1")
    assert not values["SESSION_COOKIE_SECURE"] and not values["SECURE_HSTS_SECONDS"]


def test_deploy_check_fails_on_a_generated_secret_key() -> None:
    """`manage.py check --deploy` (as .ci/run runs it) on a local run without SECRET_KEY."""
    environment = {
        k: v for k, v in os.environ.items() if k not in VARIABLES or k == "PYTEST_VERSION"
    }
    environment.update(
        DATABASE_URL=embedded.postgres_url(),  # the embedded server: a local run
        REDIS_URL=EXTERNAL["REDIS_URL"],
        RESERVO_PUBLIC_URL="https://tickets.example.com",
        RESERVO_EMAIL_URL="dummymail://",
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=settings.BASE_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "reservo.E001" in result.stderr
    assert "SECRET_KEY is not set" in result.stderr
    assert "reservo.E002" not in result.stderr and "reservo.E003" not in result.stderr
