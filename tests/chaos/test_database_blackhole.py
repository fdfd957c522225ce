"""A blackholed database (packets dropped, sockets left open, as behind a partition or a dead
host): an API booking gets a 503 `unavailable` within tcp_user_timeout + connect_timeout,
not a hang that ends in a dropped connection, and the same Idempotency-Key books once the
database is back. Negative control: without tcp_user_timeout the request is still waiting
long past that bound (the server, which never hears of it, cannot cancel it with its
statement_timeout; keepalives do not probe a connection with unacknowledged data).

Gunicorn serves the app in a private network namespace whose loopback drops the packets;
see tests/chaos/db_blackhole.py.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

from bookings.api_keys import api_client_create
from bookings.models import Reservation
from tests.chaos.db_blackhole import BASE_DIR, PROXY_PORT, unix_relay
from tests.factories import ResourceFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

TCP_USER_TIMEOUT_MS = 1000
CONNECT_TIMEOUT_S = 2  # libpq's least
# A connection gone silent between two requests: the health check's statement is never
# acknowledged (tcp_user_timeout), then the new connection is never accepted (connect_timeout).
BOUND_S = TCP_USER_TIMEOUT_MS / 1000 + CONNECT_TIMEOUT_S
MARGIN_S = 1.5
START_S = 90  # gunicorn starting on a loaded machine, and its first request


def blackhole_unsupported() -> str | None:
    """Why this machine cannot drop packets in a network namespace, or None if it can."""
    tools = [tool for tool in ("unshare", "ip", "tc") if shutil.which(tool) is None]
    if tools:
        return f"{', '.join(tools)} not installed"
    probe = subprocess.run(
        [
            "unshare",
            "--net",
            "sh",
            "-ec",
            "ip link add bh0 type veth peer name bh1; tc qdisc add dev lo ingress; "
            "tc filter add dev lo parent ffff: protocol ip u32 match ip dport 1 0xffff "
            "action mirred egress redirect dev bh0",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode:
        return (
            "dropping packets needs a network namespace of its own, veth and tc's u32 and "
            f"mirred (root, or CAP_NET_ADMIN and CAP_SYS_ADMIN): {probe.stderr.strip()}"
        )
    return None


@pytest.fixture(scope="module")
def blackhole_supported() -> None:
    reason = blackhole_unsupported()
    if reason:
        pytest.skip(reason)


class Harness:
    """The harness process and the JSON lines it prints, in order."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.reader = threading.Thread(target=self._read, args=(process.stdout,), daemon=True)
        self.reader.start()

    def _read(self, stdout: IO[str]) -> None:
        with stdout:
            for line in stdout:
                self.events.put(json.loads(line))

    def next(self, event: str, timeout: float) -> dict[str, Any] | None:
        """The next line, which must be `event`; None if none comes within `timeout` s."""
        try:
            line = self.events.get(timeout=timeout)
        except queue.Empty:
            return None
        assert line["event"] == event, line
        return line


@contextmanager
def harness(resource_id: int, key: str, *, tcp_user_timeout_ms: int) -> Iterator[Harness]:
    params = connection.get_connection_params()
    folder = tempfile.mkdtemp(prefix="reservo-blackhole-")
    upstream = os.path.join(folder, "db.sock")
    relay = unix_relay(
        upstream, host=params.get("host") or "localhost", port=int(params.get("port") or 5432)
    ).start()
    auth = quote(params.get("user") or "")
    if params.get("password"):
        auth += ":" + quote(params["password"])
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{auth}@127.0.0.1:{PROXY_PORT}/{quote(params['dbname'])}",
        "REDIS_URL": settings.REDIS_URL,
        "RESERVO_CACHE_PREFIX": settings.CACHES["default"]["KEY_PREFIX"],
        "RESERVO_DB_TCP_USER_TIMEOUT_MS": str(tcp_user_timeout_ms),
        "RESERVO_DB_CONNECT_TIMEOUT_S": str(CONNECT_TIMEOUT_S),
        "RESERVO_LOG_LEVEL": "WARNING",
    }
    command = ["unshare", "--net", "--", sys.executable, "-m", "tests.chaos.db_blackhole"]
    command += ["--upstream", upstream, "--resource", str(resource_id), "--key", key]
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(
            command,
            cwd=BASE_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=output,
            text=True,
            start_new_session=True,
        )
        running = Harness(process)
        try:
            yield running
        except BaseException:
            output.seek(0)
            sys.stderr.write(output.read().decode(errors="replace")[-5000:])
            raise
        finally:
            if process.poll() is None:
                # The harness, its gunicorn and the namespace, which ends with them.
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
            running.reader.join(10)
            relay.stop()
            shutil.rmtree(folder, ignore_errors=True)


def warmed_then_blackholed(running: Harness) -> None:
    warm = running.next("warm", START_S)
    assert warm is not None and warm.get("status") == 200, warm
    assert running.next("blackhole", 10) is not None


def test_a_blackholed_database_is_a_503_within_the_bound(blackhole_supported: None) -> None:
    resource = ResourceFactory(capacity=5)
    _client, key = api_client_create(name="blackhole", scopes=["book"])
    with harness(resource.pk, key, tcp_user_timeout_ms=TCP_USER_TIMEOUT_MS) as running:
        warmed_then_blackholed(running)
        answer = running.next("answer", BOUND_S + MARGIN_S + 10)
        assert answer is not None, "no answer at all"
        assert answer.get("status") == 503, answer
        assert answer["headers"]["Content-Type"] == "application/problem+json"
        assert json.loads(answer["body"])["code"] == "unavailable"
        assert int(answer["headers"]["Retry-After"]) >= 1
        # Ended by the bounds, not by something sooner, and within them.
        assert TCP_USER_TIMEOUT_MS / 1000 * 0.9 <= answer["elapsed"] < BOUND_S + MARGIN_S, answer
        # The database back, the same key books: a 503 is not recorded against it.
        retry = running.next("retry", 60)
        assert retry is not None and retry.get("status") == 201, retry
    assert Reservation.objects.filter(resource=resource).count() == 1
    resource.refresh_from_db()
    assert resource.confirmed == 1


def test_without_tcp_user_timeout_the_request_hangs_past_the_bound(
    blackhole_supported: None,
) -> None:
    resource = ResourceFactory(capacity=5)
    _client, key = api_client_create(name="blackhole", scopes=["book"])
    with harness(resource.pk, key, tcp_user_timeout_ms=0) as running:
        warmed_then_blackholed(running)
        assert running.next("answer", BOUND_S + 2 * MARGIN_S) is None, "it was answered"
        assert running.process.poll() is None
    assert not Reservation.objects.filter(resource=resource).exists()
