"""The worker's watchdog: a loop stuck in a delivery is ended within the bound (a real
`manage.py run_worker` process, stuck on a mail server that accepts the connection and never
says a word) and a fresh worker delivers what it had claimed; a worker that keeps making
progress, however slowly, or has nothing to do, is left alone."""

from __future__ import annotations

import io
import logging
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connections

from bookings import worker as worker_module
from bookings.models import OutboxMessage
from bookings.notifications import OutboundMessage
from bookings.services import reservation_book
from bookings.worker import WATCHDOG_EXIT_STATUS, Watchdog, Worker
from tests.chaos.outbox_support import BASE_DIR, wait_for, worker_env
from tests.conftest import CUSTOMER
from tests.factories import ResourceFactory

pytestmark = pytest.mark.django_db(transaction=True)

BOUND_S = 3.0
# What the watchdog is allowed past its bound: its own check interval (a second at most),
# then the exit.
MARGIN_S = 1.5
# Long enough that only the watchdog can end the stalled delivery within the test.
MAIL_TIMEOUT_S = 120


def emails_due(count: int) -> list[OutboxMessage]:
    resource = ResourceFactory(capacity=count)
    for index in range(count):
        reservation_book(
            resource_id=resource.pk,
            quantity=1,
            actor=CUSTOMER,
            customer_email=f"c{index}@example.com",
        )
    rows = list(OutboxMessage.objects.filter(channel=OutboxMessage.Channel.EMAIL))
    assert len(rows) == count
    return rows


@pytest.fixture
def silent_mail_server() -> Iterator[socket.socket]:
    """A mail server that takes connections and never answers (not even its greeting)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server


def run_worker(*args: str, **env: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "manage.py", "run_worker", *args],
        cwd=BASE_DIR,
        env=worker_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def stuck_worker(server: socket.socket, *args: str) -> subprocess.Popen[bytes]:
    host, port = server.getsockname()
    return run_worker(
        *args,
        RESERVO_EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        RESERVO_EMAIL_HOST=host,
        RESERVO_EMAIL_PORT=port,
        RESERVO_EMAIL_TIMEOUT_S=MAIL_TIMEOUT_S,
        RESERVO_OUTBOX_LEASE_SECONDS=1,
    )


def stop(process: subprocess.Popen[bytes]) -> bytes:
    if process.poll() is None:
        process.kill()
    output, _ = process.communicate(timeout=10)
    return output


def test_a_worker_stuck_in_a_delivery_exits_within_the_bound_and_is_replaced(
    silent_mail_server: socket.socket,
) -> None:
    [row] = emails_due(1)
    process = stuck_worker(silent_mail_server, "--watchdog-seconds", str(BOUND_S))
    try:
        silent_mail_server.settimeout(60)
        connection_from_worker, _ = silent_mail_server.accept()  # the delivery has begun
        stalled_at = time.monotonic()
        with connection_from_worker:
            status = process.wait(BOUND_S + MARGIN_S + 10)
            elapsed = time.monotonic() - stalled_at
    finally:
        output = stop(process).decode(errors="replace")
    assert status == WATCHDOG_EXIT_STATUS, output
    assert elapsed < BOUND_S + MARGIN_S, (elapsed, output)
    # What an operator reads: stuck, on which message, and where in the code.
    assert "stuck for" in output, output
    assert f"delivering outbox message {row.pk} (email" in output, output
    assert "email_deliver" in output and "smtplib" in output, output

    # The claimed row comes back after its lease; a fresh worker (the supervisor's restart)
    # delivers it.
    replacement = run_worker()
    try:
        wait_for(
            lambda: OutboxMessage.objects.filter(pk=row.pk, status="delivered").exists(),
            timeout=30,
            what="the replacement worker to deliver the row",
        )
    finally:
        stop(replacement)
    row.refresh_from_db()
    assert row.attempts == 2


def test_negative_control_without_a_watchdog_bound_the_worker_stays_stuck(
    silent_mail_server: socket.socket,
) -> None:
    [row] = emails_due(1)
    process = stuck_worker(silent_mail_server, "--watchdog-seconds", "3600")
    try:
        silent_mail_server.settimeout(60)
        connection_from_worker, _ = silent_mail_server.accept()
        with connection_from_worker, pytest.raises(subprocess.TimeoutExpired):
            process.wait(BOUND_S + MARGIN_S)
    finally:
        stop(process)
    row.refresh_from_db()
    assert row.status == OutboxMessage.Status.PENDING  # never delivered, never given up


@pytest.fixture
def exits(settings) -> list[int]:  # type: ignore[no-untyped-def]
    """The statuses the watchdog of an in-process worker would have exited with."""
    settings.RESERVO_WORKER_POLL_SECONDS = 0.05
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    return []


@contextmanager
def watched_worker(
    bound: float, exits: list[int], heartbeat_file: Path | None = None
) -> Iterator[Worker]:
    """A worker loop in a thread, under a watchdog whose exits are recorded, not taken."""
    worker = Worker(name="watched")
    watchdog = Watchdog(
        worker.heartbeat,
        bound=bound,
        name=worker.name,
        heartbeat_file=heartbeat_file,
        exit_process=exits.append,
    ).start()

    def loop() -> None:
        try:
            worker.run()
        finally:
            connections.close_all()

    thread = threading.Thread(target=loop)
    thread.start()
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(10)
        watchdog.stop()
    assert not thread.is_alive()


def test_a_slow_worker_that_keeps_delivering_or_waits_idle_is_left_alone(
    exits: list[int], monkeypatch: pytest.MonkeyPatch, settings, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    bound = 1.5
    settings.RESERVO_WEBHOOK_CONCURRENCY = 1  # one delivery thread: the deliveries in a row
    deliver = worker_module.email_deliver

    def slow(message: OutboundMessage) -> None:
        time.sleep(bound / 3)  # each well under the bound, the five together over it
        deliver(message)

    monkeypatch.setattr(worker_module, "email_deliver", slow)
    rows = emails_due(5)
    beat_file = tmp_path / "heartbeat"
    with watched_worker(bound, exits, beat_file):
        started = time.monotonic()
        wait_for(
            lambda: OutboxMessage.objects.filter(status="delivered").count() == len(rows),
            timeout=30,
            what="every row to be delivered",
        )
        assert time.monotonic() - started > bound
        assert exits == []
        # Then idle for longer than the bound: the loop's polls keep it alive.
        time.sleep(2 * bound)
        assert exits == []
        assert time.time() - beat_file.stat().st_mtime < 1.5  # touched while it is healthy
    assert exits == []


def test_the_watchdog_names_the_stalled_step(
    exits: list[int], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    released = threading.Event()

    def stalled(message: OutboundMessage) -> None:
        released.wait(30)

    monkeypatch.setattr(worker_module, "email_deliver", stalled)
    [row] = emails_due(1)
    with (
        caplog.at_level(logging.CRITICAL, logger="bookings.worker"),
        watched_worker(1.0, exits),
    ):
        try:
            wait_for(lambda: exits, timeout=10, what="the watchdog to fire")
        finally:
            released.set()
    assert exits == [WATCHDOG_EXIT_STATUS]
    [record] = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert f"delivering outbox message {row.pk}" in record.getMessage()
    assert "in stalled" in record.getMessage()  # the stuck frame itself


def test_the_bound_must_exceed_the_poll_interval(settings) -> None:  # type: ignore[no-untyped-def]
    settings.RESERVO_WORKER_POLL_SECONDS = 5
    with pytest.raises(CommandError, match="must exceed the poll interval"):
        call_command("run_worker", "--watchdog-seconds", "5")


def test_the_default_bound_is_the_outbox_lease(settings, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    settings.RESERVO_OUTBOX_LEASE_SECONDS = 42
    bounds: list[float] = []

    def start(watchdog: Watchdog) -> Watchdog:
        bounds.append(watchdog.bound)
        return watchdog

    monkeypatch.setattr(Watchdog, "start", start)
    monkeypatch.setattr(Worker, "run", lambda worker: None)
    monkeypatch.setattr(signal, "signal", lambda *args: None)  # keep pytest's handlers
    call_command("run_worker", stdout=io.StringIO())
    assert bounds == [42]
