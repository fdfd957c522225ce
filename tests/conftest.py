"""Shared fixtures. Every test runs on real PostgreSQL (embedded unless DATABASE_URL is set)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from django.conf import settings as django_settings
from django.core.cache import cache
from django.db import connection, connections, transaction
from django.test import override_settings

from bookings.services import Actor
from settings_app import selectors as settings_selectors
from settings_app.models import SystemSettings
from tests.factories import ResourceFactory, SeatedResourceFactory

CUSTOMER = Actor("customer")


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix: None) -> None:
    """Each run of the suite its own test database (unless RESERVO_TEST_DATABASE names
    one), so that two runs against one server never drop each other's."""
    if not os.environ.get("RESERVO_TEST_DATABASE"):
        django_settings.DATABASES["default"]["TEST"]["NAME"] = f"test_reservo_{os.getpid()}"


@pytest.fixture(autouse=True)
def _clear_cache(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Only this run's keys (RESERVO_CACHE_PREFIX): a FLUSHDB would wipe other runs sharing Redis.
    cache.delete_pattern("*")  # type: ignore[attr-defined]
    # And this process's copy of the settings, which outlives a test by up to half a second.
    monkeypatch.setattr(settings_selectors, "_remembered", None)
    yield
    cache.delete_pattern("*")  # type: ignore[attr-defined]


@pytest.fixture(scope="session", autouse=True)
def _static_files_without_collectstatic(tmp_path_factory: Any) -> Iterator[None]:
    """In this process, assets are served by name from the app folders, so the suite needs no
    collectstatic (servers started as subprocesses use the real settings)."""
    root = tmp_path_factory.getbasetemp() / "static_root"
    root.mkdir(exist_ok=True)
    storages = {
        **django_settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    with override_settings(STATIC_ROOT=root, STORAGES=storages):
        yield


@pytest.fixture(autouse=True)
def _system_settings_row(request: pytest.FixtureRequest) -> None:
    """The singleton row comes from a migration; transactional tests flush it, so restore it."""
    marker = request.node.get_closest_marker("django_db")
    if marker is None:
        return
    transactional = marker.kwargs.get("transaction", False)
    request.getfixturevalue("transactional_db" if transactional else "db")
    SystemSettings.objects.get_or_create(id=1)


def make_redis_unreachable(settings: Any) -> None:
    """Point the shared cache (pytest-django's `settings`) at a socket nobody listens on,
    for the rest of the test."""
    settings.CACHES = {
        "default": {
            **settings.CACHES["default"],
            "LOCATION": "unix:///nonexistent/reservo-dead-redis.sock?db=0",
        }
    }


def cache_errors() -> float:
    """Cache operations that failed so far (the metric `/metrics` exposes)."""
    from prometheus_client import REGISTRY

    value = REGISTRY.get_sample_value(
        "reservo_cache_operations_total", {"cache": "redis", "result": "error"}
    )
    return value or 0.0


@pytest.fixture
def customer() -> Actor:
    return CUSTOMER


@pytest.fixture
def resource_factory() -> type[ResourceFactory]:
    return ResourceFactory


@pytest.fixture
def seated_factory() -> type[SeatedResourceFactory]:
    return SeatedResourceFactory


MAX_THREADS = 50


def run_concurrently(count: int, work: Callable[[int], Any], *, timeout: float = 60) -> list[Any]:
    """Run work(0..count-1) on up to MAX_THREADS real threads released together by a barrier.

    Each thread has its own database connection (like an app's bounded pool) and takes
    the next index as soon as it is free. Returns, in index order, what each call
    returned or the exception it raised.
    """
    indexes = iter(range(count))
    take = threading.Lock()
    thread_count = min(count, MAX_THREADS)
    barrier = threading.Barrier(thread_count)
    results: list[Any] = [None] * count

    def run() -> None:
        try:
            barrier.wait()
            while True:
                with take:
                    index = next(indexes, None)
                if index is None:
                    return
                try:
                    results[index] = work(index)
                except BaseException as exc:  # collected, asserted by the test
                    results[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(thread_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(t.is_alive() for t in threads), "a concurrent call hung"
    return results


def start_gunicorn(env: dict[str, str], **popen: Any) -> subprocess.Popen[bytes]:
    """Serve the app as `make serve` does (gunicorn with reservo/gunicorn_conf.py) under
    `env`; the caller stops it."""
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    return subprocess.Popen(
        [gunicorn, "-c", "reservo/gunicorn_conf.py", "reservo.wsgi:application"],
        cwd=django_settings.BASE_DIR,
        env=env,
        **popen,
    )


def scalar(sql: str, params: list[Any] | None = None) -> Any:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        row = cursor.fetchone()
    return row[0] if row else None


def free_port() -> int:
    """A free TCP port on the loopback interface, for a server a test starts."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def subprocess_database_url() -> str:
    """The test database (set up by pytest-django) as a DATABASE_URL, for subprocesses."""
    params = connection.get_connection_params()
    auth = quote(params.get("user") or "")
    if params.get("password"):
        auth += ":" + quote(params["password"])
    host = params.get("host") or ""
    name = quote(params["dbname"])
    if not host or host.startswith("/"):
        return f"postgres://{auth}@/{name}?host={quote(host)}"
    return f"postgres://{auth}@{host}:{params.get('port') or 5432}/{name}"


def wait_until(condition: Callable[[], object], timeout: float, message: str) -> float:
    """Poll `condition` until it is true; fail with `message` after `timeout` seconds.
    Returns how long it took."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            pytest.fail(message)
        time.sleep(0.02)
    return time.monotonic() - start


@pytest.fixture(params=["read_committed", "serializable"])
def isolation_level(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run the test under each isolation level; every new connection gets it."""
    options = connections.settings["default"]["OPTIONS"]
    before = options["isolation_level"]
    options["isolation_level"] = django_settings.ISOLATION_LEVELS[request.param]
    connections.close_all()
    try:
        with transaction.atomic():
            assert scalar("SHOW transaction_isolation") == request.param.replace("_", " ")
        yield request.param
    finally:
        options["isolation_level"] = before
        connections.close_all()


def outside_connection() -> psycopg.Connection:
    """A connection that is not Django's: another app, a DBA's psql, a stuck migration."""
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    return psycopg.connect(**params)


@contextmanager
def resource_row_locked(resource_id: int) -> Iterator[psycopg.Connection]:
    """The resource's row locked by a connection that is not Django's until the block ends."""
    with outside_connection() as blocker:
        blocker.execute("SELECT id FROM resources_resource WHERE id = %s FOR UPDATE", [resource_id])
        try:
            yield blocker
        finally:
            blocker.rollback()


def outbox_email(reservation: Any, event_type: str) -> Any:
    """The email the worker would send for the reservation's outbox row of `event_type`,
    rendered without sending it."""
    from bookings.models import OutboxMessage

    row = OutboxMessage.objects.get(reservation=reservation, event_type=event_type, channel="email")
    return outbox_row_email(row)


def outbox_row_email(row: Any) -> Any:
    """The email the worker would send for this outbox row, rendered without sending it."""
    from bookings.notifications import OutboundMessage, email_message

    return email_message(
        OutboundMessage(
            id=row.pk,
            event_id=row.event_id,
            event_type=row.event_type,
            channel=row.channel,
            target=row.target,
            payload=row.payload,
            attempts=row.attempts,
            created_at=row.created_at,
        )
    )
