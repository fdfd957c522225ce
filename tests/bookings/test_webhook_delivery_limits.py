"""A slow or failing webhook endpoint costs the worker a bounded time and nothing else: each
delivery ends by its overall deadline, the other endpoints, the emails and hold expiry go on
meanwhile, and after repeated failures the endpoint's circuit opens.

The slow endpoint is a real HTTP server on 127.0.0.1 that answers one header byte a second,
well within any per-read timeout.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core import mail
from django.db import connection, connections
from django.db.models.functions import Now

from bookings import notifications
from bookings.models import (
    DeliveryAttempt,
    OutboxMessage,
    Reservation,
    ReservationStatus,
    WebhookEndpoint,
)
from bookings.notifications import webhook_circuit_open_until
from bookings.services import reservation_book
from bookings.worker import Worker, outbox_deliver_due
from tests.chaos.outbox_support import WebhookReceiver, wait_for, worker_process
from tests.conftest import CUSTOMER, run_concurrently
from tests.factories import ApiClientFactory, ResourceFactory

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("webhooks_to_loopback", "resolver", "connect_guard"),
]

DEADLINE_S = 2.5
# What a delivery may take past its deadline: recording it, a loaded machine.
MARGIN_S = 1.5


class DripReceiver:
    """Reads a request, then sends its answer one byte every `interval` seconds: a status
    line and a header long enough to last a minute and a half."""

    ANSWER = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"z" * 64 + b"\r\nContent-Length: 0\r\n\r\n"

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.accepted = threading.Event()
        self.connections = 0
        self.bytes_sent = 0
        # When each exchange started (the request read) and ended (the client hung up), by
        # the monotonic clock.
        self.started: list[float] = []
        self.ended: list[float] = []
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}/slow"

    def _accept(self) -> None:
        self.listener.settimeout(0.1)
        while not self._stopping.is_set():
            try:
                conn, _address = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
            thread = threading.Thread(target=self._drip, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _drip(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                request = b""
                while b"\r\n\r\n" not in request:
                    request += conn.recv(65536)
                self.started.append(time.monotonic())
                self.accepted.set()
                for byte in self.ANSWER:
                    if self._stopping.wait(self.interval):
                        return
                    conn.sendall(bytes([byte]))
                    with self._lock:
                        self.bytes_sent += 1
            except OSError:
                pass  # the client gave up: what the deadline is for
            finally:
                self.ended.append(time.monotonic())

    def __enter__(self) -> DripReceiver:
        thread = threading.Thread(target=self._accept, daemon=True)
        self._threads.append(thread)
        thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self.listener.close()
        for thread in self._threads:
            thread.join(10)


@pytest.fixture
def drip() -> Iterator[DripReceiver]:
    with DripReceiver() as receiver:
        yield receiver


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as running:
        yield running


@pytest.fixture
def deadline(settings: Any) -> float:
    settings.RESERVO_WEBHOOK_TIMEOUT_S = DEADLINE_S
    return DEADLINE_S


def book(client: Any, *, email: str = "", hold: bool = False) -> Reservation:
    return reservation_book(
        resource_id=ResourceFactory(capacity=5).pk,
        quantity=1,
        hold=hold,
        actor=CUSTOMER,
        customer_email=email,
        api_client=client,
    ).reservation


@pytest.fixture
def running_worker(settings: Any) -> Iterator[Callable[[], Worker]]:
    """Starts a worker loop on a thread (with a pool of 4), stopped at the end of the test."""
    settings.RESERVO_WORKER_POLL_SECONDS = 0.05
    settings.RESERVO_WEBHOOK_CONCURRENCY = 4
    started: list[tuple[Worker, threading.Thread]] = []

    def start() -> Worker:
        worker = Worker(name="test-worker")

        def loop() -> None:
            try:
                worker.run()
            finally:
                connections.close_all()

        thread = threading.Thread(target=loop)
        thread.start()
        started.append((worker, thread))
        return worker

    yield start
    for worker, thread in started:
        worker.stop()
        thread.join(settings.RESERVO_WEBHOOK_TIMEOUT_S + 10)
        assert not thread.is_alive()


def test_a_delivery_ends_by_its_overall_deadline(drip: DripReceiver, deadline: float) -> None:
    endpoint = WebhookEndpoint.objects.create(
        api_client=ApiClientFactory(), url=drip.url, secret="whsec_test"
    )
    book(endpoint.api_client)

    started = time.monotonic()
    assert outbox_deliver_due(worker="test") == 1
    elapsed = time.monotonic() - started

    assert deadline <= elapsed < deadline + MARGIN_S
    # It was answering all along, a byte at a time: no single read ever waited long.
    assert drip.bytes_sent >= 2
    message = OutboxMessage.objects.get()
    assert message.status == OutboxMessage.Status.PENDING
    assert message.last_error.startswith("Timed out")
    attempt = DeliveryAttempt.objects.get()
    assert not attempt.succeeded
    assert deadline * 1000 <= attempt.duration_ms < (deadline + MARGIN_S) * 1000


def test_others_are_delivered_and_holds_expire_while_a_slow_delivery_runs(
    drip: DripReceiver,
    receiver: WebhookReceiver,
    running_worker: Callable[[], Worker],
    settings: Any,
) -> None:
    # Ample time for the rest, even on a loaded machine, before the slow one ends.
    deadline = settings.RESERVO_WEBHOOK_TIMEOUT_S = 6.0
    settings.RESERVO_WORKER_EXPIRE_EVERY_SECONDS = 0.1
    slow_client, fast_client = ApiClientFactory(), ApiClientFactory()
    WebhookEndpoint.objects.create(api_client=slow_client, url=drip.url, secret="whsec_slow")
    WebhookEndpoint.objects.create(api_client=fast_client, url=receiver.url, secret="whsec_fast")
    book(slow_client)
    running_worker()
    assert drip.accepted.wait(10), "the slow delivery never started"
    slow_row = OutboxMessage.objects.get(target=str(slow_client.webhooks.get().pk))

    # Changes made while the slow delivery runs: a booking told by webhook and email, and a
    # hold that is past its expiry.
    told = book(fast_client, email="ada@example.com")
    hold = book(None, hold=True)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE bookings_reservation SET hold_expires_at = now() - interval '1 second' "
            "WHERE id = %s",
            [hold.pk],
        )

    def all_told() -> bool:
        return (
            receiver.count() == 1
            and len(mail.outbox) == 1
            and Reservation.objects.get(pk=hold.pk).status == ReservationStatus.EXPIRED
        )

    wait_for(all_told, timeout=deadline, what="the others to be told while the slow one runs")
    # All of it happened while the slow delivery was still in flight.
    assert not DeliveryAttempt.objects.filter(message=slow_row).exists()
    assert not drip.ended
    assert receiver.deliveries[0].event["reservation"]["id"] == str(told.public_id)

    # And the slow one ends by its deadline, as a failure to retry.
    wait_for(
        lambda: DeliveryAttempt.objects.filter(message=slow_row).exists(),
        timeout=deadline + MARGIN_S,
        what="the slow delivery to end",
    )
    slow_row.refresh_from_db()
    assert slow_row.last_error.startswith("Timed out")


def test_an_endpoint_never_takes_two_threads(
    drip: DripReceiver, deadline: float, running_worker: Callable[[], Worker]
) -> None:
    client = ApiClientFactory()
    WebhookEndpoint.objects.create(api_client=client, url=drip.url, secret="whsec_slow")
    book(client)
    running_worker()
    assert drip.accepted.wait(10)
    # Due while the first delivery runs, with three threads free: they wait for it.
    book(client)
    book(client)

    def first_delivery_ended() -> bool:
        # Sampled before the attempt is looked for: a second connection seen here was opened
        # after the first delivery had been recorded, or it is one too many.
        connections_seen = drip.connections
        ended = DeliveryAttempt.objects.exists()
        assert ended or connections_seen == 1
        return ended

    wait_for(first_delivery_ended, timeout=deadline + MARGIN_S, what="the first to end")


def test_sigterm_lets_the_slow_delivery_end_by_its_deadline_then_exits(
    drip: DripReceiver,
) -> None:
    client = ApiClientFactory()
    WebhookEndpoint.objects.create(api_client=client, url=drip.url, secret="whsec_slow")
    book(client)
    with worker_process(RESERVO_WEBHOOK_TIMEOUT_S=DEADLINE_S) as process:
        assert drip.accepted.wait(30)
        stopped_at = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(DEADLINE_S + 10) == 0
        assert time.monotonic() - stopped_at < DEADLINE_S + MARGIN_S + 1
    message = OutboxMessage.objects.get()
    assert (message.status, message.claim_token) == (OutboxMessage.Status.PENDING, None)
    assert message.last_error.startswith("Timed out")


@pytest.fixture
def circuit(settings: Any) -> Any:
    settings.RESERVO_WEBHOOK_CIRCUIT_FAILURES = 3
    settings.RESERVO_WEBHOOK_CIRCUIT_COOLOFF_S = 3600
    # Failed rows are due again almost at once: only the circuit holds them back.
    settings.RESERVO_OUTBOX_BACKOFF_BASE_SECONDS = 0.01
    settings.RESERVO_OUTBOX_BACKOFF_MAX_SECONDS = 0.02
    return settings


def cool_off_passes(endpoint: WebhookEndpoint, messages: Any) -> None:
    """As if the cool-off had run out: the circuit may be probed, and `messages`, put off
    until then, are due."""
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(circuit_open_until=Now())
    messages.update(next_attempt_at=Now())


def test_the_circuit_opens_after_repeated_failures_then_probes(
    receiver: WebhookReceiver, circuit: Any
) -> None:
    receiver.status = 503
    endpoint = WebhookEndpoint.objects.create(
        api_client=ApiClientFactory(), url=receiver.url, secret="whsec_test"
    )
    for _ in range(5):
        book(endpoint.api_client)

    # Three failures in a row open the circuit; the two others are put off, unsent.
    assert outbox_deliver_due(worker="test") == 5
    assert receiver.count() == 3
    endpoint.refresh_from_db()
    assert endpoint.consecutive_failures == 3
    assert endpoint.circuit_open_until is not None
    put_off = OutboxMessage.objects.filter(attempts=0)
    assert put_off.count() == 2
    for message in put_off:
        assert message.next_attempt_at == endpoint.circuit_open_until
        assert message.last_error.startswith("Not sent: the endpoint failed 3 times in a row")
        assert not DeliveryAttempt.objects.filter(message=message).exists()

    # While it is open, due rows are put off again without a connection or an attempt.
    wait_for(
        lambda: OutboxMessage.objects.filter(attempts=1, next_attempt_at__lte=Now()).count() == 3
    )
    assert outbox_deliver_due(worker="test") == 3
    assert receiver.count() == DeliveryAttempt.objects.count() == 3
    assert sorted(OutboxMessage.objects.values_list("attempts", flat=True)) == [0, 0, 1, 1, 1]

    # After the cool-off, one delivery probes; it fails, and the circuit opens again.
    cool_off_passes(endpoint, OutboxMessage.objects.all())
    assert outbox_deliver_due(worker="test") == 5
    assert receiver.count() == DeliveryAttempt.objects.count() == 4
    endpoint.refresh_from_db()
    assert endpoint.consecutive_failures == 4
    assert endpoint.circuit_open_until is not None

    # The next probe succeeds: the circuit closes, and the rows it had put off are due at
    # once, not after their cool-off.
    receiver.status = 200
    probe = OutboxMessage.objects.filter(attempts=0).order_by("id")[:1]
    cool_off_passes(endpoint, OutboxMessage.objects.filter(pk__in=probe))

    def all_delivered() -> bool:
        outbox_deliver_due(worker="test")
        return OutboxMessage.objects.filter(status="delivered").count() == 5

    wait_for(all_delivered, timeout=10, what="every row to be delivered")
    endpoint.refresh_from_db()
    assert (endpoint.consecutive_failures, endpoint.circuit_open_until) == (0, None)
    assert receiver.count() == 9
    assert len(receiver.event_counts()) == 5


def test_deliveries_that_time_out_open_the_circuit_too(
    drip: DripReceiver, deadline: float, settings: Any
) -> None:
    settings.RESERVO_WEBHOOK_CIRCUIT_FAILURES = 2
    client = ApiClientFactory()
    endpoint = WebhookEndpoint.objects.create(api_client=client, url=drip.url, secret="s")
    for _ in range(4):
        book(client)
    started = time.monotonic()
    assert outbox_deliver_due(worker="test") == 4
    # Two deadlines, then the two others put off at once, without a connection.
    assert time.monotonic() - started < 2 * deadline + MARGIN_S
    assert drip.connections == 2
    endpoint.refresh_from_db()
    assert endpoint.consecutive_failures == 2 and endpoint.circuit_open_until is not None
    assert OutboxMessage.objects.filter(last_error__startswith="Not sent").count() == 2


def test_a_success_resets_the_count(receiver: WebhookReceiver, settings: Any) -> None:
    settings.RESERVO_WEBHOOK_CIRCUIT_FAILURES = 3
    endpoint = WebhookEndpoint.objects.create(
        api_client=ApiClientFactory(), url=receiver.url, secret="whsec_test"
    )
    for status in (503, 503, 200, 503, 503):
        receiver.status = status
        book(endpoint.api_client)
        outbox_deliver_due(worker="test")
    endpoint.refresh_from_db()
    assert (endpoint.consecutive_failures, endpoint.circuit_open_until) == (2, None)


def test_retry_now_in_the_admin_lets_a_probe_through_at_once(
    receiver: WebhookReceiver, circuit: Any, admin_client: Any
) -> None:
    circuit.RESERVO_WEBHOOK_CIRCUIT_COOLOFF_S = 3600
    receiver.status = 503
    endpoint = WebhookEndpoint.objects.create(
        api_client=ApiClientFactory(), url=receiver.url, secret="whsec_test"
    )
    for _ in range(4):
        book(endpoint.api_client)
    outbox_deliver_due(worker="test")
    assert receiver.count() == 3

    receiver.status = 200
    response = admin_client.post(
        "/admin/bookings/outboxmessage/",
        {
            "action": "retry_now",
            "_selected_action": list(OutboxMessage.objects.values_list("pk", flat=True)),
        },
    )
    assert response.status_code == 302
    assert outbox_deliver_due(worker="test") == 4
    assert OutboxMessage.objects.filter(status="delivered").count() == 4
    endpoint.refresh_from_db()
    assert endpoint.consecutive_failures == 0


PROBERS = 8


def open_circuit(settings: Any) -> WebhookEndpoint:
    settings.RESERVO_WEBHOOK_CIRCUIT_FAILURES = 3
    endpoint = WebhookEndpoint.objects.create(
        api_client=ApiClientFactory(), url="http://127.0.0.1:9/", secret="whsec_test"
    )
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        consecutive_failures=3, circuit_open_until=Now()
    )
    endpoint.refresh_from_db()
    return endpoint


def probes(endpoint: WebhookEndpoint) -> int:
    def ask(index: int) -> bool:
        return webhook_circuit_open_until(WebhookEndpoint.objects.get(pk=endpoint.pk)) is None

    results = run_concurrently(PROBERS, ask)
    assert not [r for r in results if isinstance(r, BaseException)], results
    return sum(results)


def test_concurrent_workers_let_one_probe_through(settings: Any) -> None:
    assert probes(open_circuit(settings)) == 1


def test_negative_control_without_the_probe_guard_every_worker_probes(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    unguarded = notifications._CIRCUIT_PROBE_SQL.replace(
        "AND (circuit_open_until IS NULL OR circuit_open_until <= now())", ""
    )
    assert unguarded != notifications._CIRCUIT_PROBE_SQL
    monkeypatch.setattr(notifications, "_CIRCUIT_PROBE_SQL", unguarded)
    assert probes(open_circuit(settings)) > 1
