"""Behind PgBouncer in transaction mode, bookings stay exact: every bound is SET LOCAL,
the isolation level rides on BEGIN, and no server-side cursor outlives a transaction."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from bookings.models import Reservation
from tests.conftest import free_port
from tests.factories import ResourceFactory

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.skipif(not Path(PGBOUNCER).exists(), reason="pgbouncer is not installed"),
]


@pytest.fixture
def pgbouncer_url() -> Iterator[str]:
    params = connection.get_connection_params()
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="reservo-pgbouncer-"))
    workdir.chmod(0o777)
    (workdir / "users.txt").write_text(f'"{params["user"]}" ""\n')
    (workdir / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"{params['dbname']} = host={params.get('host') or '127.0.0.1'} "
        f"port={params.get('port') or 5432} dbname={params['dbname']} user={params['user']}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {workdir / 'users.txt'}\n"
        "pool_mode = transaction\ndefault_pool_size = 8\nmax_client_conn = 200\n"
        f"logfile = {workdir / 'pgbouncer.log'}\npidfile = {workdir / 'pgbouncer.pid'}\n"
    )
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
