"""Behind PgBouncer in transaction mode, started from the shipped deploy/pgbouncer.ini:
bookings stay exact (every booking bound is SET LOCAL, the isolation level rides on BEGIN,
no server-side cursor outlives a transaction), and every wait stays bounded. Booking
transactions carry their own lock and statement bounds; every other transaction gets the
statement and idle-in-transaction bounds from the role's defaults (`manage.py
set_role_timeouts`), which PgBouncer cannot strip; PgBouncer bounds the wait for a server
connection and, as a backstop, an idle transaction. A client past a bound gets a 503
problem within the bound plus one second."""

from __future__ import annotations

import configparser
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.core.cache import cache
from django.core.management import CommandError, call_command, get_commands
from django.db import connection
from django.test import override_settings

from bookings.api_keys import api_client_create
from bookings.models import Reservation
from reservo.errors import Unavailable, database_error_to_domain
from reservo.management.commands import set_role_timeouts
from tests.chaos.entry_points import nothing_leaked
from tests.chaos.fault_injection import on_insert_into, on_read_of, sessions_sleeping, sleeping
from tests.conftest import free_port, outside_connection, resource_row_locked, wait_until
from tests.factories import ResourceFactory
from tests.settings_app.instances import Instance, Response, app_instance

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
SAMPLE_INI = Path(settings.BASE_DIR) / "deploy" / "pgbouncer.ini"
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.skipif(not Path(PGBOUNCER).exists(), reason="pgbouncer is not installed"),
]

# The bounds under test, short so that the suite stays quick (milliseconds).
LOCK_BOUND_MS = 1000
STATEMENT_BOUND_MS = 1000
ROLE_STATEMENT_BOUND_MS = 1500
ROLE_IDLE_BOUND_MS = 1500
MARGIN_S = 1.0
STUCK_S = 60


def sample_config() -> configparser.ConfigParser:
    config = configparser.ConfigParser(interpolation=None)
    config.optionxform = str  # type: ignore[assignment,method-assign]
    assert config.read(SAMPLE_INI), f"{SAMPLE_INI} is missing"
    return config


@contextmanager
def running_pgbouncer(**overrides: str) -> Iterator[str]:
    """PgBouncer on a loopback port, set up by the shipped sample with this suite's
    database, address and authentication, and `overrides` of its [pgbouncer] settings.
    Yields a DATABASE_URL through it."""
    params = connection.get_connection_params()
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="reservo-pgbouncer-"))
    workdir.chmod(0o777)
    (workdir / "users.txt").write_text(f'"{params["user"]}" ""\n')
    config = sample_config()
    config["databases"] = {
        params["dbname"]: f"host={params.get('host') or '127.0.0.1'} "
        f"port={params.get('port') or 5432} dbname={params['dbname']} user={params['user']}"
    }
    config["pgbouncer"].update(
        {
            "listen_addr": "127.0.0.1",
            "listen_port": str(port),
            "unix_socket_dir": "",
            "auth_type": "trust",
            "auth_file": str(workdir / "users.txt"),
            "logfile": str(workdir / "pgbouncer.log"),
            "pidfile": str(workdir / "pgbouncer.pid"),
            "default_pool_size": "8",
            "max_client_conn": "200",
            **overrides,
        }
    )
    with (workdir / "pgbouncer.ini").open("w") as ini:
        config.write(ini)
    for path in workdir.iterdir():
        path.chmod(0o666)
    as_root = ["-u", "reservo_pg"] if os.geteuid() == 0 else []
    process = subprocess.Popen([PGBOUNCER, *as_root, str(workdir / "pgbouncer.ini")])
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail("pgbouncer did not start: " + _log(workdir))
                time.sleep(0.05)
        yield f"postgres://{params['user']}@127.0.0.1:{port}/{params['dbname']}"
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


def _log(workdir: Path) -> str:
    log = workdir / "pgbouncer.log"
    return log.read_text() if log.exists() else "(no log)"


@pytest.fixture
def pgbouncer_url() -> Iterator[str]:
    with running_pgbouncer() as url:
        yield url


def reset_role_timeouts() -> None:
    role, database = set_role_timeouts.role_and_database(None)
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        for name in set_role_timeouts.role_timeouts():
            cursor.execute(f"ALTER ROLE {quote(role)} IN DATABASE {quote(database)} RESET {name}")


@pytest.fixture
def role_bounds() -> Iterator[None]:
    """The app's role has its own statement and idle-in-transaction bounds in the test
    database, applied as a deployment applies them: `manage.py set_role_timeouts`."""
    with override_settings(
        RESERVO_STATEMENT_TIMEOUT_MS=ROLE_STATEMENT_BOUND_MS,
        RESERVO_IDLE_IN_TRANSACTION_TIMEOUT_MS=ROLE_IDLE_BOUND_MS,
    ):
        call_command(set_role_timeouts.Command(), stdout=io.StringIO())
    try:
        yield
    finally:
        reset_role_timeouts()


@contextmanager
def app_behind(url: str) -> Iterator[Instance]:
    """The app (gunicorn, as `make serve` runs it) with DATABASE_URL through PgBouncer."""
    with app_instance(
        DATABASE_URL=url,
        RESERVO_PGBOUNCER="1",
        RESERVO_LOCK_TIMEOUT_MS=str(LOCK_BOUND_MS),
        RESERVO_STATEMENT_TIMEOUT_MS=str(STATEMENT_BOUND_MS),
        # One worker, warmed up by the caller: the timed request pays no first import.
        RESERVO_WEB_WORKERS="1",
    ) as instance:
        yield instance


def session_setting(url: str, name: str) -> str:
    """A setting as a new session through PgBouncer has it (in its base unit)."""
    with psycopg.connect(url, autocommit=True) as through:
        row = through.execute("SELECT setting FROM pg_settings WHERE name = %s", [name]).fetchone()
    assert row is not None
    return str(row[0])


class ApiCaller:
    """A `book` API client of an app instance, timing each call."""

    def __init__(self, instance: Instance, resource: Any) -> None:
        _client, key = api_client_create(name="behind-pgbouncer", scopes=["book"])
        self.http = instance.http()
        self.headers = {"Authorization": f"Api-Key {key}"}
        # The booking and reading paths, once each, before any timed call (a refused
        # booking: nothing is written).
        assert self.read(resource)[0].status == 200
        refused, _elapsed = self.timed(
            "POST", "/api/v1/reservations/", {"resource": resource.pk, "quantity": 0}
        )
        assert refused.status == 400, refused.body
        cache.delete_pattern("*")  # type: ignore[attr-defined]  # the read was cached

    def book(self, resource: Any) -> tuple[Response, float]:
        body = {"resource": resource.pk, "quantity": 1}
        return self.timed("POST", "/api/v1/reservations/", body)

    def read(self, resource: Any) -> tuple[Response, float]:
        return self.timed("GET", f"/api/v1/resources/{resource.pk}/")

    def timed(self, method: str, path: str, body: Any = None) -> tuple[Response, float]:
        started = time.monotonic()
        response = self.http.request(
            method, path, json_body=body, headers=self.headers, timeout=STUCK_S
        )
        return response, time.monotonic() - started


def problem_503(response: Response, code: str) -> None:
    assert response.status == 503, (response.status, response.body[:2000])
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert response.json()["code"] == code, response.json()
    assert int(response.headers["Retry-After"]) >= 1
    nothing_leaked(response.body)


def within_bound(elapsed: float, bound_ms: int) -> None:
    assert bound_ms / 1000 * 0.9 <= elapsed < bound_ms / 1000 + MARGIN_S, elapsed


# Bookings stay exact --------------------------------------------------------------------


@pytest.mark.parametrize("isolation", ["read_committed", "serializable"])
def test_last_unit_race_through_pgbouncer_transaction_pooling(
    pgbouncer_url: str, isolation: str
) -> None:
    resource = ResourceFactory(capacity=1)
    env = {
        **os.environ,
        "DATABASE_URL": pgbouncer_url,
        "RESERVO_PGBOUNCER": "1",
        "RESERVO_ISOLATION_LEVEL": isolation,
        "REDIS_URL": settings.REDIS_URL,
    }
    probe = subprocess.run(
        [sys.executable, "-m", "tests.concurrency.pgbouncer_probe", str(resource.pk), "30"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=settings.BASE_DIR,
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    outcomes = json.loads(probe.stdout.strip().splitlines()[-1])
    assert outcomes == {"ok": 1, "sold_out": 29}
    assert Reservation.objects.filter(resource=resource).count() == 1
    resource.refresh_from_db()
    assert resource.confirmed == 1


# Every wait bounded -----------------------------------------------------------------------


def test_the_sample_backstops_sit_above_the_postgresql_bounds() -> None:
    """PostgreSQL's bounds end a statement or an idle transaction first, with a clean error;
    PgBouncer's only catch what PostgreSQL cannot see (a lost server, a lost network)."""
    sample = sample_config()["pgbouncer"]
    assert sample["pool_mode"] == "transaction"
    assert float(sample["query_timeout"]) * 1000 > settings.RESERVO_STATEMENT_TIMEOUT_MS
    assert (
        float(sample["idle_transaction_timeout"]) * 1000
        > settings.RESERVO_IDLE_IN_TRANSACTION_TIMEOUT_MS
    )
    # A request waiting for a server connection (at most twice: Django's health check of a
    # reused connection, then its query) is refused well before gunicorn's own request
    # timeout would kill the worker.
    assert 0 < 2 * float(sample["query_wait_timeout"]) < 30


def check_role_timeouts() -> None:
    """`manage.py set_role_timeouts --check`: raises CommandError (exit 1) on drift."""
    call_command(set_role_timeouts.Command(), check=True, stdout=io.StringIO())


def test_role_defaults_bound_the_sessions_that_pgbouncer_opens() -> None:
    with running_pgbouncer() as url:
        # Negative control: behind PgBouncer, nothing else bounds a session.
        assert session_setting(url, "statement_timeout") == "0"
        assert session_setting(url, "idle_in_transaction_session_timeout") == "0"
    with pytest.raises(CommandError) as missing:
        check_role_timeouts()
    assert missing.value.returncode == 1
    try:
        call_command(set_role_timeouts.Command(), stdout=io.StringIO())
        check_role_timeouts()
        with running_pgbouncer() as url:
            assert session_setting(url, "statement_timeout") == str(
                settings.RESERVO_STATEMENT_TIMEOUT_MS
            )
            assert session_setting(url, "idle_in_transaction_session_timeout") == str(
                settings.RESERVO_IDLE_IN_TRANSACTION_TIMEOUT_MS
            )
        # Settings changed since the role was bounded: the check says so.
        with (
            override_settings(
                RESERVO_STATEMENT_TIMEOUT_MS=settings.RESERVO_STATEMENT_TIMEOUT_MS + 1
            ),
            pytest.raises(CommandError),
        ):
            check_role_timeouts()
    finally:
        reset_role_timeouts()


def test_the_statements_can_be_printed_for_a_dba_instead() -> None:
    printed = io.StringIO()
    call_command(set_role_timeouts.Command(), sql=True, stdout=printed)
    role, database = set_role_timeouts.role_and_database(None)
    assert printed.getvalue().splitlines() == [
        f'ALTER ROLE "{role}" IN DATABASE "{database}" SET statement_timeout = '
        f"{settings.RESERVO_STATEMENT_TIMEOUT_MS};",
        f'ALTER ROLE "{role}" IN DATABASE "{database}" SET idle_in_transaction_session_timeout = '
        f"{settings.RESERVO_IDLE_IN_TRANSACTION_TIMEOUT_MS};",
    ]
    assert set(set_role_timeouts.current_role_timeouts(role, database).values()) == {""}


def test_the_command_is_a_manage_py_command() -> None:
    assert get_commands().get("set_role_timeouts") == "reservo"


def test_a_booking_waiting_on_a_held_lock_behind_pgbouncer_is_busy_within_the_bound(
    pgbouncer_url: str,
) -> None:
    resource = ResourceFactory(capacity=5)
    with app_behind(pgbouncer_url) as instance:
        api = ApiCaller(instance, resource)
        with resource_row_locked(resource.pk):
            response, elapsed = api.book(resource)
        within_bound(elapsed, LOCK_BOUND_MS)
        problem_503(response, "busy")
        assert not Reservation.objects.exists()
        assert api.book(resource)[0].status == 201


def test_a_booking_statement_behind_pgbouncer_is_cancelled_within_the_bound(
    pgbouncer_url: str,
) -> None:
    resource = ResourceFactory(capacity=5)
    with app_behind(pgbouncer_url) as instance:
        api = ApiCaller(instance, resource)
        with on_insert_into("bookings_reservation", sleeping(STUCK_S)) as calls:
            response, elapsed = api.book(resource)
            assert calls() >= 1
            assert sessions_sleeping() == 0
        within_bound(elapsed, STATEMENT_BOUND_MS)
        problem_503(response, "busy")
        assert not Reservation.objects.exists()
        assert api.book(resource)[0].status == 201


def test_a_read_behind_pgbouncer_is_cancelled_within_the_role_bound(role_bounds: None) -> None:
    resource = ResourceFactory(capacity=5)
    with running_pgbouncer() as url, app_behind(url) as instance:
        api = ApiCaller(instance, resource)
        with on_read_of("resources_resource", sleeping(STUCK_S)) as calls:
            response, elapsed = api.read(resource)
            assert calls() >= 1
            assert sessions_sleeping() == 0
        within_bound(elapsed, ROLE_STATEMENT_BOUND_MS)
        problem_503(response, "busy")
        assert api.read(resource)[0].status == 200


@pytest.mark.parametrize("bounded_by", ["postgresql", "pgbouncer"])
def test_a_transaction_left_idle_behind_pgbouncer_is_ended_within_the_bound(
    bounded_by: str, request: pytest.FixtureRequest
) -> None:
    if bounded_by == "postgresql":
        request.getfixturevalue("role_bounds")
        overrides: dict[str, str] = {}
        bound_ms = ROLE_IDLE_BOUND_MS
    else:
        overrides = {"idle_transaction_timeout": "2"}
        bound_ms = 2000
    resource = ResourceFactory(capacity=5)
    with running_pgbouncer(**overrides) as url, psycopg.connect(url) as stuck:
        # A client that took the resource's lock and then stopped talking.
        stuck.execute("SELECT 1 FROM resources_resource WHERE id = %s FOR UPDATE", [resource.pk])
        idle_since = time.monotonic()
        wait_until(
            lambda: lock_is_free(resource.pk), bound_ms / 1000 + MARGIN_S, "the lock was kept"
        )
        within_bound(time.monotonic() - idle_since, bound_ms)
        with pytest.raises(psycopg.Error) as ended:
            stuck.execute("SELECT 1")
    assert isinstance(database_error_to_domain(ended.value), Unavailable)


def lock_is_free(resource_id: int) -> bool:
    with outside_connection() as other:
        try:
            other.execute(
                "SELECT 1 FROM resources_resource WHERE id = %s FOR UPDATE NOWAIT", [resource_id]
            )
        except psycopg.errors.LockNotAvailable:
            return False
        return True


def test_waiting_for_a_server_connection_behind_pgbouncer_is_bounded() -> None:
    resource = ResourceFactory(capacity=5)
    wait_bound_s = 1
    with (
        running_pgbouncer(default_pool_size="1", query_wait_timeout=str(wait_bound_s)) as url,
        app_behind(url) as instance,
    ):
        api = ApiCaller(instance, resource)
        with psycopg.connect(url) as holder:
            # The pool's only server connection, held by a transaction in progress.
            holder.execute("SELECT 1")
            response, elapsed = api.read(resource)
            holder.rollback()
        # The worker's connection is a reused one: Django's health check (SELECT 1) waits
        # for a server connection first, is refused and reconnects; the read then waits
        # once more. Two waits, each bounded.
        within_bound(elapsed, 2 * wait_bound_s * 1000)
        problem_503(response, "unavailable")
        assert api.read(resource)[0].status == 200
