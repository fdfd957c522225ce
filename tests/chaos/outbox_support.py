"""Test doubles for notification delivery: a real HTTP receiver on 127.0.0.1 and workers.

Used by the outbox, worker, webhook and chaos tests.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from django.conf import settings

from tests.conftest import subprocess_database_url

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def wait_for(condition: Callable[[], Any], *, timeout: float = 20.0, what: str = "") -> Any:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.02)


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    """Counts every POST; answers `status` after `delay` seconds.

    `hold_request` (1-based) makes that request wait, unanswered, until `release` is set.
    """

    status: int = 200
    delay: float = 0.0
    hold_request: int | None = None
    deliveries: list[Delivery] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    holding: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    receiver.deliveries.append(Delivery(self.path, dict(self.headers), body))
                    number = len(receiver.deliveries)
                if receiver.delay:
                    time.sleep(receiver.delay)
                if number == receiver.hold_request:
                    receiver.holding.set()
                    receiver.release.wait(30)
                try:
                    self.send_response(receiver.status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the sender is gone (killed): nothing to answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def count(self) -> int:
        with self._lock:
            return len(self.deliveries)

    def event_counts(self) -> Counter[str]:
        with self._lock:
            return Counter(d.event["id"] for d in self.deliveries)

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def worker_env(**overrides: object) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "reservo.settings",
        "DATABASE_URL": subprocess_database_url(),
        "RESERVO_CACHE_PREFIX": settings.CACHES["default"]["KEY_PREFIX"],
        "RESERVO_EMAIL_BACKEND": "django.core.mail.backends.dummy.EmailBackend",
        "RESERVO_WORKER_POLL_SECONDS": "0.05",
        "RESERVO_LOG_LEVEL": "WARNING",
        # The receivers listen on loopback (a self-hosted receiver, as far as webhooks go).
        "RESERVO_WEBHOOK_ALLOW_PRIVATE": "1",
    }
    env.update({key: str(value) for key, value in overrides.items()})
    return env


@contextmanager
def worker_process(**env: object) -> Iterator[subprocess.Popen[bytes]]:
    """`manage.py run_worker` in a real process; killed at the end if still running.

    Its output goes to a temporary file, shown if the test fails.
    """
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "run_worker"],
            cwd=BASE_DIR,
            env=worker_env(**env),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            yield process
        except BaseException:
            output.seek(0)
            sys.stderr.write(output.read().decode(errors="replace")[-5000:])
            raise
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
            process.wait(10)


def due_outbox_rows(
    receiver: WebhookReceiver, *, reservations: int, endpoints: int, emails: bool
) -> int:
    """`reservations` cancellations of one API client with `endpoints` webhook endpoints
    (and an email each when `emails`), told through the outbox: rows due now. Returns how
    many rows there are."""
    from bookings.models import OutboxMessage, Reservation, ReservationStatus, WebhookEndpoint
    from bookings.notifications import outbox_enqueue
    from tests.factories import ApiClientFactory, ResourceFactory

    client = ApiClientFactory()
    for index in range(endpoints):
        WebhookEndpoint.objects.create(
            api_client=client, url=f"{receiver.url}/{index}", secret="whsec_test"
        )
    resource = ResourceFactory(capacity=reservations)
    cancelled = Reservation.objects.bulk_create(
        Reservation(
            reference=f"RSV-O{index:07d}",
            resource=resource,
            quantity=1,
            status=ReservationStatus.CANCELLED,
            cancelled_at=resource.starts_at,
            customer_email=f"c{index}@example.com" if emails else "",
            api_client=client,
            manage_token_hash="0" * 64,
        )
        for index in range(reservations)
    )
    outbox_enqueue(cancelled, resource=resource)
    return OutboxMessage.objects.count()
