"""Several workers over the same outbox: every row delivered exactly once.

Real threads, each with its own PostgreSQL connection, against a real HTTP receiver and
the locmem mail backend. The negative control claims without locks or leases and must
deliver some rows twice, so the test can fail.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
from django.core import mail

from bookings import worker as worker_module
from bookings.models import (
    DeliveryAttempt,
    OutboxMessage,
)
from bookings.worker import outbox_deliver_due
from tests.chaos.outbox_support import WebhookReceiver, due_outbox_rows
from tests.conftest import run_concurrently

# The receiver listens on loopback, where webhooks go only with RESERVO_WEBHOOK_ALLOW_PRIVATE.
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.usefixtures("webhooks_to_loopback"),
]

RESERVATIONS = 100
ENDPOINTS = 4  # 100 x 4 webhooks + 100 emails = 500 due rows

# Claims every due row, like the worker, but without SKIP LOCKED and without a lease.
_UNLOCKED_CLAIM_SQL = """
SELECT id, event_id, event_type, channel, target, payload, attempts + 1, created_at
  FROM bookings_outboxmessage
 WHERE status = 'pending' AND next_attempt_at <= now()
 ORDER BY next_attempt_at, id
 LIMIT %(batch)s
"""


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    # A little latency per request, as a real receiver has, so that workers interleave.
    with WebhookReceiver(delay=0.002) as running:
        yield running


def run_workers(count: int) -> list[int]:
    def work(index: int) -> int:
        delivered = 0
        while claimed := outbox_deliver_due(worker=f"w{index}", batch_size=10):
            delivered += claimed
        return delivered

    results = run_concurrently(count, work, timeout=120)
    assert not [r for r in results if isinstance(r, BaseException)], results
    return results


@pytest.mark.parametrize("workers", [2, 4])
def test_parallel_workers_deliver_each_row_exactly_once(
    receiver: WebhookReceiver, workers: int
) -> None:
    total = due_outbox_rows(receiver, reservations=RESERVATIONS, endpoints=ENDPOINTS, emails=True)
    assert total == RESERVATIONS * (ENDPOINTS + 1) == 500
    claimed = run_workers(workers)

    assert sum(claimed) == total
    assert sum(1 for c in claimed if c) >= 2, claimed  # the work really was shared
    assert OutboxMessage.objects.filter(status=OutboxMessage.Status.DELIVERED).count() == total
    webhook_ids = set(
        str(e)
        for e in OutboxMessage.objects.filter(channel="webhook").values_list("event_id", flat=True)
    )
    counts = receiver.event_counts()
    assert set(counts) == webhook_ids
    assert set(counts.values()) == {1}
    message_ids = Counter(m.extra_headers["Message-ID"] for m in mail.outbox)
    assert len(message_ids) == RESERVATIONS
    assert set(message_ids.values()) == {1}
    assert DeliveryAttempt.objects.count() == total


def test_negative_control_unlocked_claims_deliver_twice(
    receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker_module, "_CLAIM_SQL", _UNLOCKED_CLAIM_SQL)
    total = due_outbox_rows(receiver, reservations=RESERVATIONS, endpoints=ENDPOINTS, emails=True)
    assert total == RESERVATIONS * (ENDPOINTS + 1) == 500
    run_workers(4)
    assert OutboxMessage.objects.filter(status=OutboxMessage.Status.DELIVERED).count() == total
    counts = receiver.event_counts()
    emails = Counter(m.extra_headers["Message-ID"] for m in mail.outbox)
    duplicates = sum(n - 1 for n in counts.values()) + sum(n - 1 for n in emails.values())
    assert duplicates > 0, "without SKIP LOCKED and a lease, rows must be delivered twice"
