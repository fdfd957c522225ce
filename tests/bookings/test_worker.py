"""The worker: delivery of outbox rows, retries with backoff, dead rows, periodic jobs."""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection, connections
from django.utils import timezone

from bookings import worker as worker_module
from bookings.models import (
    DeliveryAttempt,
    OutboxMessage,
    Reservation,
    ReservationStatus,
    WebhookEndpoint,
)
from bookings.notifications import EVENT_ID_HEADER, webhook_signature
from bookings.services import (
    manage_token_hash,
    reservation_book,
    reservation_cancel,
    reservation_confirm,
)
from bookings.worker import Worker, outbox_deliver_due, outbox_purge_delivered, retry_delay
from reservo.errors import Busy
from tests.chaos.outbox_support import WebhookReceiver, wait_for
from tests.conftest import CUSTOMER
from tests.factories import ApiClientFactory, ResourceFactory

# The receivers listen on loopback, where webhooks go only with RESERVO_WEBHOOK_ALLOW_PRIVATE.
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("webhooks_to_loopback"),
]

EMAIL = "ada@example.com"


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as running:
        yield running


@pytest.fixture
def endpoint(receiver: WebhookReceiver) -> WebhookEndpoint:
    return WebhookEndpoint.objects.create(
        api_client=ApiClientFactory(), url=receiver.url, secret="whsec_test"
    )


@pytest.fixture
def fast_retries(settings):  # type: ignore[no-untyped-def]
    settings.RESERVO_OUTBOX_BACKOFF_BASE_SECONDS = 0.05
    settings.RESERVO_OUTBOX_BACKOFF_MAX_SECONDS = 0.2
    settings.RESERVO_OUTBOX_MAX_ATTEMPTS = 3
    return settings


@pytest.fixture
def staff_client(admin_client, settings, tmp_path):  # type: ignore[no-untyped-def]
    # collectstatic has not run for the suite: serve the admin from an empty static root.
    settings.STATIC_ROOT = tmp_path
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    return admin_client


def book(endpoint: WebhookEndpoint, **kwargs: object) -> Reservation:
    resource = ResourceFactory(capacity=10, name="Friday meetup")
    params: dict[str, object] = {
        "resource_id": resource.pk,
        "quantity": 2,
        "actor": CUSTOMER,
        "customer_name": "Ada",
        "customer_email": EMAIL,
        "api_client": endpoint.api_client,
        **kwargs,
    }
    return reservation_book(**params).reservation  # type: ignore[arg-type]


def deliver_all() -> int:
    total = 0
    while claimed := outbox_deliver_due(worker="test"):
        total += claimed
    return total


class TestDelivery:
    def test_email_and_signed_webhook_are_delivered_once(
        self, receiver: WebhookReceiver, endpoint: WebhookEndpoint
    ) -> None:
        reservation = book(endpoint)
        assert deliver_all() == 2
        assert deliver_all() == 0

        email_row = OutboxMessage.objects.get(channel="email")
        webhook_row = OutboxMessage.objects.get(channel="webhook")
        assert {email_row.status, webhook_row.status} == {OutboxMessage.Status.DELIVERED}
        assert email_row.delivered_at is not None
        assert "manage_token" not in email_row.payload  # gone with the email that carried it

        [email] = mail.outbox
        assert email.to == [EMAIL]
        assert reservation.reference in email.subject
        assert email.extra_headers["Message-ID"].startswith(f"<{email_row.event_id}@")
        body = str(email.body)
        assert "Friday meetup" in body
        assert reservation.reference in body
        [(html, mimetype)] = email.alternatives  # type: ignore[attr-defined]
        assert mimetype == "text/html"
        assert reservation.reference in str(html)
        token = re.search(rf"/b/{reservation.reference}/\?token=(\S+)", body)
        assert token is not None, body
        assert manage_token_hash(token.group(1)) == reservation.manage_token_hash

        [delivery] = receiver.deliveries
        event = delivery.event
        assert event["id"] == str(webhook_row.event_id)
        assert event["type"] == "reservation.confirmed"
        assert event["occurred_at"]
        assert event["reservation"]["id"] == str(reservation.public_id)
        assert event["reservation"]["status"] == "confirmed"
        assert delivery.headers["Idempotency-Key"] == event["id"]
        assert delivery.headers[EVENT_ID_HEADER] == event["id"]
        assert delivery.headers["Content-Type"] == "application/json"
        timestamp = int(delivery.headers["Reservo-Signature"].split(",")[0].removeprefix("t="))
        assert delivery.headers["Reservo-Signature"] == webhook_signature(
            "whsec_test", timestamp, delivery.body
        )

        log = DeliveryAttempt.objects.get(message=webhook_row)
        assert (log.succeeded, log.response_status, log.attempt) == (True, 200, 1)

    def test_cancellation_email_and_webhook(
        self, receiver: WebhookReceiver, endpoint: WebhookEndpoint
    ) -> None:
        reservation = book(endpoint)
        deliver_all()
        reservation_cancel(reservation_id=reservation.pk, actor=CUSTOMER)
        assert deliver_all() == 2
        assert [d.event["type"] for d in receiver.deliveries] == [
            "reservation.confirmed",
            "reservation.cancelled",
        ]
        assert "cancelled" in mail.outbox[-1].subject.lower()

    def test_hold_email_carries_the_link_and_the_confirmation_refers_to_it(
        self, endpoint: WebhookEndpoint
    ) -> None:
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(active=False)
        hold = book(endpoint, hold=True)
        reservation_confirm(reservation_id=hold.pk, actor=CUSTOMER)
        assert deliver_all() == 2
        held, confirmed = mail.outbox
        assert "held" in held.subject.lower()
        link = re.search(rf"/b/{hold.reference}/\?token=(\S+)", str(held.body))
        assert link is not None, held.body
        assert manage_token_hash(link.group(1)) == hold.manage_token_hash
        assert "confirmed" in confirmed.subject.lower()
        assert "token=" not in str(confirmed.body)  # confirmed by the API: token unknown
        assert "link you received" in str(confirmed.body)
        assert held.extra_headers["Message-ID"] != confirmed.extra_headers["Message-ID"]

    def test_confirmation_by_the_customer_session_carries_the_link(
        self, endpoint: WebhookEndpoint
    ) -> None:
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(active=False)
        resource = ResourceFactory(capacity=5)
        booking = reservation_book(resource_id=resource.pk, quantity=1, hold=True, actor=CUSTOMER)
        other = reservation_book(resource_id=resource.pk, quantity=1, hold=True, actor=CUSTOMER)
        reservation_confirm(
            reservation_id=booking.reservation.pk,
            actor=CUSTOMER,
            customer_email=EMAIL,
            manage_token=booking.manage_token,
        )
        # A token that is not this reservation's is never put in a link.
        reservation_confirm(
            reservation_id=other.reservation.pk,
            actor=CUSTOMER,
            customer_email="bob@example.com",
            manage_token=booking.manage_token,
        )
        assert deliver_all() == 2
        ada, bob = sorted(mail.outbox, key=lambda m: m.to[0])
        assert f"/b/{booking.reservation.reference}/?token={booking.manage_token}" in str(ada.body)
        assert "token=" not in str(bob.body)
        assert not OutboxMessage.objects.filter(payload__has_key="manage_token").exists()


class TestPurge:
    def test_old_delivered_rows_and_their_log_are_purged(
        self, receiver: WebhookReceiver, endpoint: WebhookEndpoint
    ) -> None:
        book(endpoint, customer_email="")
        deliver_all()
        receiver.status = 500
        book(endpoint, customer_email="")
        deliver_all()
        delivered_row = OutboxMessage.objects.get(status="delivered")
        OutboxMessage.objects.update(delivered_at=timezone.now() - timedelta(days=8))
        assert outbox_purge_delivered() == 1
        assert not OutboxMessage.objects.filter(pk=delivered_row.pk).exists()
        assert not DeliveryAttempt.objects.filter(message_id=delivered_row.pk).exists()
        assert OutboxMessage.objects.filter(status="pending").count() == 1  # kept
        assert outbox_purge_delivered() == 0


class TestRetries:
    def test_backoff_grows_exponentially_with_jitter(self, settings) -> None:  # type: ignore[no-untyped-def]
        settings.RESERVO_OUTBOX_BACKOFF_BASE_SECONDS = 10
        settings.RESERVO_OUTBOX_BACKOFF_MAX_SECONDS = 300
        for attempts, full in [(1, 10), (2, 20), (3, 40), (5, 160), (6, 300), (20, 300)]:
            delays = {retry_delay(attempts) for _ in range(50)}
            assert all(full / 2 <= d <= full for d in delays)
            assert len(delays) > 1  # jittered

    def test_receiver_down_retries_then_dead_then_retry_now(
        self, receiver: WebhookReceiver, endpoint: WebhookEndpoint, fast_retries, staff_client
    ) -> None:  # type: ignore[no-untyped-def]
        # A backoff long enough that the check below runs within it on a slow machine
        # (at 0.05 s, jittered down to 0.025 s, a loaded machine sometimes ran past it).
        fast_retries.RESERVO_OUTBOX_BACKOFF_BASE_SECONDS = 0.4
        fast_retries.RESERVO_OUTBOX_BACKOFF_MAX_SECONDS = 0.8
        receiver.status = 503
        book(endpoint, customer_email="")
        message = OutboxMessage.objects.get()

        assert outbox_deliver_due(worker="test") == 1
        message.refresh_from_db()
        assert (message.status, message.attempts, message.last_error) == ("pending", 1, "HTTP 503")
        assert outbox_deliver_due(worker="test") == 0  # not due before its backoff

        def dead() -> bool:
            outbox_deliver_due(worker="test")
            message.refresh_from_db()
            return message.status == OutboxMessage.Status.DEAD

        wait_for(dead, timeout=10, what="the row to be given up")
        assert message.attempts == 3
        assert receiver.count() == 3
        log = list(DeliveryAttempt.objects.filter(message=message).order_by("id"))
        assert [(a.attempt, a.succeeded, a.response_status) for a in log] == [
            (1, False, 503),
            (2, False, 503),
            (3, False, 503),
        ]
        # The gaps between attempts follow the backoff (at least half the base, then more).
        gaps = [
            (b.attempted_at - a.attempted_at).total_seconds() for a, b in itertools.pairwise(log)
        ]
        assert gaps[0] >= 0.2 and gaps[1] >= 0.4

        # Staff see it in the admin and retry it once the receiver is back.
        page = staff_client.get("/admin/bookings/outboxmessage/?status__exact=dead")
        assert page.status_code == 200
        assert f"/admin/bookings/outboxmessage/{message.pk}/change/" in page.content.decode()
        receiver.status = 200
        response = staff_client.post(
            "/admin/bookings/outboxmessage/",
            {"action": "retry_now", "_selected_action": [message.pk]},
        )
        assert response.status_code == 302
        assert deliver_all() == 1
        message.refresh_from_db()
        assert message.status == OutboxMessage.Status.DELIVERED
        assert receiver.count() == 4
        assert len(set(receiver.event_counts())) == 1  # the same event id every time

    def test_gone_receiver_disables_the_endpoint(
        self, receiver: WebhookReceiver, endpoint: WebhookEndpoint
    ) -> None:
        receiver.status = 410
        reservation = book(endpoint, customer_email="")
        assert deliver_all() == 1
        message = OutboxMessage.objects.get()
        assert message.status == OutboxMessage.Status.DEAD
        assert message.attempts == 1
        endpoint.refresh_from_db()
        assert endpoint.active is False
        assert "410" in endpoint.disabled_reason
        reservation_cancel(reservation_id=reservation.pk, actor=CUSTOMER)
        assert OutboxMessage.objects.count() == 1  # nothing more for a disabled endpoint

    def test_unreachable_receiver_is_a_retryable_failure(
        self, endpoint: WebhookEndpoint, fast_retries
    ) -> None:  # type: ignore[no-untyped-def]
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(url="http://127.0.0.1:9/closed")
        book(endpoint, customer_email="")
        assert deliver_all() == 1
        message = OutboxMessage.objects.get()
        assert message.status == OutboxMessage.Status.PENDING
        assert message.last_error
        assert DeliveryAttempt.objects.get().response_status is None

    def test_a_failing_email_backend_is_retried(self, endpoint: WebhookEndpoint, settings) -> None:  # type: ignore[no-untyped-def]
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(active=False)
        book(endpoint)
        assert deliver_all() == 1
        message = OutboxMessage.objects.get()
        assert (message.channel, message.status, message.attempts) == ("email", "pending", 1)
        assert message.last_error


class TestWorkerLoop:
    def test_worker_expires_due_holds_and_tells_once(
        self, receiver: WebhookReceiver, endpoint: WebhookEndpoint, settings
    ) -> None:  # type: ignore[no-untyped-def]
        settings.RESERVO_WORKER_EXPIRE_EVERY_SECONDS = 0.05
        settings.RESERVO_WORKER_POLL_SECONDS = 0.02
        resource = ResourceFactory(capacity=3)
        hold = reservation_book(
            resource_id=resource.pk,
            quantity=3,
            hold=True,
            actor=CUSTOMER,
            customer_email=EMAIL,
            api_client=endpoint.api_client,
        ).reservation
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE bookings_reservation SET hold_expires_at = now() - interval '1 second' "
                "WHERE id = %s",
                [hold.pk],
            )
        worker = Worker(name="test-worker")
        thread = threading.Thread(target=worker.run)
        thread.start()
        try:
            wait_for(
                lambda: (
                    OutboxMessage.objects.filter(
                        event_type="reservation.expired", status="delivered"
                    ).count()
                    == 2
                ),
                what="the expiry to be told",
            )
            # Another round of the loop tells nothing more.
            wait_for(lambda: outbox_deliver_due(worker="test") == 0)
        finally:
            worker.stop()
            thread.join(10)
            connections.close_all()
        assert not thread.is_alive()
        hold.refresh_from_db()
        assert hold.status == ReservationStatus.EXPIRED
        resource.refresh_from_db()
        assert (resource.held, resource.confirmed) == (0, 0)
        expired_webhooks = [
            d for d in receiver.deliveries if d.event["type"] == "reservation.expired"
        ]
        assert len(expired_webhooks) == 1
        subjects = [m.subject for m in mail.outbox]
        assert len(subjects) == 2, subjects  # the hold, then its expiry: each once
        assert "held" in subjects[0].lower()
        assert "expired" in subjects[1].lower()

    def test_a_failing_periodic_job_does_not_stop_the_worker(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        calls: list[str] = []

        def busy(**progress: object) -> int:
            calls.append("expire")
            raise Busy()

        def broken(**progress: object) -> int:
            calls.append("purge")
            raise RuntimeError("a bug")

        monkeypatch.setattr(worker_module, "holds_expire_due", busy)
        monkeypatch.setattr(worker_module, "outbox_purge_delivered", broken)
        worker = Worker(name="test-worker")
        worker.run_periodic()
        worker.run_periodic()  # not due again yet
        assert calls == ["expire", "purge"]
