"""Worker processes killed or stopped mid-batch: nothing lost, at most one redelivery.

Real `manage.py run_worker` processes against the test database and a real HTTP
receiver on 127.0.0.1.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from bookings.models import OutboxMessage
from tests.chaos.outbox_support import WebhookReceiver, due_outbox_rows, wait_for, worker_process

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

RESERVATIONS = 40
ENDPOINTS = 5  # 200 webhook rows


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(delay=0.005) as running:
        yield running


def delivered() -> int:
    return OutboxMessage.objects.filter(status=OutboxMessage.Status.DELIVERED).count()


def test_killed_worker_mid_delivery_redelivers_at_most_once(receiver: WebhookReceiver) -> None:
    total = due_outbox_rows(receiver, reservations=RESERVATIONS, endpoints=ENDPOINTS, emails=False)
    assert total == RESERVATIONS * ENDPOINTS
    # The 25th request stays unanswered: the worker is killed while delivering it. One
    # delivery at a time, so that it is the only one in flight then.
    receiver.hold_request = 25
    with worker_process(RESERVO_OUTBOX_LEASE_SECONDS=2, RESERVO_WEBHOOK_CONCURRENCY=1) as first:
        wait_for(receiver.holding.is_set, timeout=30, what="the worker to be mid-delivery")
        first.send_signal(signal.SIGKILL)
        assert first.wait(10) == -signal.SIGKILL
    in_flight = receiver.deliveries[24].event["id"]
    assert delivered() < total
    assert OutboxMessage.objects.filter(status="pending", claim_token__isnull=False).exists()

    with worker_process(RESERVO_OUTBOX_LEASE_SECONDS=2) as second:
        wait_for(lambda: delivered() == total, timeout=60, what="every row to be delivered")
        second.send_signal(signal.SIGTERM)
        assert second.wait(10) == 0

    counts = receiver.event_counts()
    expected = {str(e) for e in OutboxMessage.objects.values_list("event_id", flat=True)}
    assert set(counts) == expected  # nothing lost
    assert max(counts.values()) <= 2  # none more than twice
    assert counts[in_flight] == 2  # the one being delivered when the worker died
    assert sum(counts.values()) == total + 1
    for delivery in receiver.deliveries:
        # A redelivery is recognisable: same event id, in the body and the headers.
        assert delivery.headers["Idempotency-Key"] == delivery.event["id"]
        assert delivery.headers["Reservo-Event-Id"] == delivery.event["id"]
    duplicates = [d for d in receiver.deliveries if d.event["id"] == in_flight]
    assert duplicates[0].event == duplicates[1].event


def test_sigterm_finishes_what_it_claimed_then_exits(receiver: WebhookReceiver) -> None:
    total = due_outbox_rows(receiver, reservations=RESERVATIONS, endpoints=ENDPOINTS, emails=False)
    receiver.delay = 0.05  # deliveries are still in flight when SIGTERM comes
    with worker_process(RESERVO_OUTBOX_BATCH_SIZE=10) as process:
        wait_for(lambda: receiver.count() >= 13, timeout=30, what="deliveries to be under way")
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
    # What it had claimed was finished and marked; nothing was left claimed.
    done = delivered()
    assert 13 <= done < total
    assert receiver.count() == done
    assert not OutboxMessage.objects.filter(status="pending", claim_token__isnull=False).exists()
    assert set(receiver.event_counts().values()) == {1}
