"""The background worker: delivers the outbox and runs the periodic jobs.

Claiming: one statement picks due rows with FOR UPDATE SKIP LOCKED, pushes their
`next_attempt_at` one lease ahead and stamps them with this batch's claim token, and
commits. Delivery then happens outside any transaction, and each row is marked done
(or failed) afterwards. Several workers never pick the same row while its lease runs;
a worker that dies mid-batch leaves its rows to be picked again once the lease ends, so a
receiver sees a row at most once more, with the same event id.
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import (
    OperationalError,
    close_old_connections,
    connection,
    connections,
)

from bookings.api.idempotency import idempotency_records_purge
from bookings.models import OutboxMessage, WebhookEndpoint
from bookings.notifications import (
    DeliveryFailed,
    OutboundMessage,
    email_deliver,
    webhook_deliver,
)
from bookings.services import reservations_expire_due
from reservo.errors import ReservoError

logger = logging.getLogger(__name__)

_CLAIM_SQL = """
WITH due AS (
    SELECT id FROM bookings_outboxmessage
     WHERE status = 'pending' AND next_attempt_at <= now()
     ORDER BY next_attempt_at, id
     LIMIT %(batch)s
     FOR UPDATE SKIP LOCKED
)
UPDATE bookings_outboxmessage o
   SET next_attempt_at = now() + make_interval(secs => %(lease)s),
       attempts = o.attempts + 1,
       claim_token = %(claim)s
  FROM due
 WHERE o.id = due.id
RETURNING o.id, o.event_id, o.event_type, o.channel, o.target, o.payload, o.attempts,
          o.created_at
"""

# The delivery happened, whoever holds the row now: record it as delivered. The manage
# token leaves the database with the email that carried it.
_DELIVERED_SQL = """
WITH done AS (
    UPDATE bookings_outboxmessage
       SET status = 'delivered', delivered_at = now(), last_error = '', claim_token = NULL,
           payload = payload - 'manage_token'
     WHERE id = %(id)s AND status <> 'delivered'
)
INSERT INTO bookings_deliveryattempt
       (message_id, attempt, duration_ms, succeeded, response_status, error, worker)
VALUES (%(id)s, %(attempt)s, %(duration_ms)s, true, %(response_status)s, '', %(worker)s)
"""

# A failure only reschedules the row if this worker still owns it (its lease did not run
# out and no other worker picked it up since).
_FAILED_SQL = """
WITH failed AS (
    UPDATE bookings_outboxmessage
       SET status = CASE WHEN %(permanent)s OR attempts >= %(max_attempts)s
                         THEN 'dead' ELSE 'pending' END,
           next_attempt_at = now() + make_interval(secs => %(delay)s),
           last_error = %(error)s,
           claim_token = NULL
     WHERE id = %(id)s AND claim_token = %(claim)s AND status = 'pending'
)
INSERT INTO bookings_deliveryattempt
       (message_id, attempt, duration_ms, succeeded, response_status, error, worker)
VALUES (%(id)s, %(attempt)s, %(duration_ms)s, false, %(response_status)s, %(error)s,
        %(worker)s)
"""

_PURGE_DELIVERED_SQL = """
WITH old AS (
    SELECT id FROM bookings_outboxmessage
     WHERE status = 'delivered' AND delivered_at < now() - make_interval(days => %(days)s)
     ORDER BY id
     LIMIT %(batch)s
), log AS (
    DELETE FROM bookings_deliveryattempt WHERE message_id IN (SELECT id FROM old)
)
DELETE FROM bookings_outboxmessage WHERE id IN (SELECT id FROM old)
"""


def retry_delay(attempts: int) -> float:
    """Exponential backoff with jitter: base * 2^(n-1), capped, then between half and all."""
    base = settings.RESERVO_OUTBOX_BACKOFF_BASE_SECONDS
    delay = min(settings.RESERVO_OUTBOX_BACKOFF_MAX_SECONDS, base * 2 ** max(attempts - 1, 0))
    return random.uniform(delay / 2, delay)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def outbox_claim(
    *, batch_size: int, lease_seconds: float
) -> tuple[uuid.UUID, list[OutboundMessage]]:
    """Claim up to `batch_size` due rows for one lease; the claim commits at once."""
    claim = uuid.uuid4()
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM_SQL, {"batch": batch_size, "lease": lease_seconds, "claim": claim})
        rows = cursor.fetchall()
    messages = [
        OutboundMessage(
            id=row[0],
            event_id=row[1],
            event_type=row[2],
            channel=row[3],
            target=row[4],
            payload=json.loads(row[5]) if isinstance(row[5], str | bytes) else row[5],
            attempts=row[6],
            created_at=row[7],
        )
        for row in sorted(rows)
    ]
    return claim, messages


@dataclass
class _Outcome:
    succeeded: bool
    response_status: int | None = None
    error: str = ""
    permanent: bool = False


def _deliver_webhook(message: OutboundMessage, endpoints: dict[int, WebhookEndpoint]) -> int:
    endpoint = endpoints.get(int(message.target))
    if endpoint is None:
        raise DeliveryFailed("The webhook endpoint was deleted.", permanent=True)
    if not endpoint.active:
        raise DeliveryFailed(
            f"The webhook endpoint is disabled. {endpoint.disabled_reason}".strip(),
            permanent=True,
        )
    try:
        return webhook_deliver(message, url=endpoint.url, secret=endpoint.secret)
    except DeliveryFailed as exc:
        if exc.response_status == 410:
            # The receiver says the endpoint is gone for good: stop sending to it.
            WebhookEndpoint.objects.filter(pk=endpoint.pk, active=True).update(
                active=False, disabled_reason="The receiver answered 410 Gone."
            )
            endpoint.active = False
            exc.permanent = True
        raise


def _deliver(message: OutboundMessage, endpoints: dict[int, WebhookEndpoint]) -> _Outcome:
    try:
        if message.channel == OutboxMessage.Channel.EMAIL:
            email_deliver(message)
            return _Outcome(succeeded=True)
        status = _deliver_webhook(message, endpoints)
        return _Outcome(succeeded=True, response_status=status)
    except DeliveryFailed as exc:
        return _Outcome(
            succeeded=False,
            response_status=exc.response_status,
            error=str(exc)[:2000],
            permanent=exc.permanent,
        )
    except Exception as exc:
        # A bug or a broken template must not stop the worker: the row is retried and,
        # in the end, shown as dead with its error.
        logger.exception("delivering outbox message %s failed", message.id)
        return _Outcome(succeeded=False, error=f"{type(exc).__name__}: {exc}"[:2000])


def _record_outcome(
    message: OutboundMessage, claim: uuid.UUID, outcome: _Outcome, duration_ms: int, worker: str
) -> None:
    params = {
        "id": message.id,
        "attempt": message.attempts,
        "duration_ms": duration_ms,
        "response_status": outcome.response_status,
        "worker": worker[:100],
    }
    with connection.cursor() as cursor:
        if outcome.succeeded:
            cursor.execute(_DELIVERED_SQL, params)
            return
        cursor.execute(
            _FAILED_SQL,
            {
                **params,
                "claim": claim,
                "error": outcome.error,
                "permanent": outcome.permanent,
                "max_attempts": settings.RESERVO_OUTBOX_MAX_ATTEMPTS,
                "delay": retry_delay(message.attempts),
            },
        )
    logger.warning(
        "outbox message %s (%s to %s:%s) attempt %d failed: %s",
        message.id,
        message.event_type,
        message.channel,
        message.target,
        message.attempts,
        outcome.error,
    )


def outbox_deliver_due(
    *,
    batch_size: int | None = None,
    lease_seconds: float | None = None,
    worker: str = "",
) -> int:
    """Claim one batch of due rows and deliver it; returns how many rows were claimed."""
    claim, messages = outbox_claim(
        batch_size=batch_size or settings.RESERVO_OUTBOX_BATCH_SIZE,
        lease_seconds=lease_seconds or settings.RESERVO_OUTBOX_LEASE_SECONDS,
    )
    if not messages:
        return 0
    endpoint_ids = [int(m.target) for m in messages if m.channel == OutboxMessage.Channel.WEBHOOK]
    endpoints = WebhookEndpoint.objects.in_bulk(endpoint_ids) if endpoint_ids else {}
    for message in messages:
        started = time.monotonic()
        outcome = _deliver(message, endpoints)
        duration_ms = int((time.monotonic() - started) * 1000)
        _record_outcome(message, claim, outcome, duration_ms, worker)
    return len(messages)


def outbox_purge_delivered(*, batch: int = 5000) -> int:
    """Delete delivered rows (and their log) older than the retention; dead ones stay."""
    total = 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(
                _PURGE_DELIVERED_SQL,
                {"days": settings.RESERVO_OUTBOX_RETENTION_DAYS, "batch": batch},
            )
            deleted = cursor.rowcount
        total += deleted
        if deleted < batch:
            return total


def holds_expire_due() -> int:
    total = 0
    while expired := reservations_expire_due():
        total += expired
    return total


class Worker:
    """The worker loop: deliver due rows, expire holds every few seconds, purge hourly.

    `stop()` (called on SIGTERM) lets the current batch finish, then the loop returns.
    """

    def __init__(self, *, name: str | None = None) -> None:
        self.name = name or worker_name()
        self._stopping = threading.Event()
        self._periodic: list[tuple[str, Callable[[], int], float]] = [
            ("expire holds", holds_expire_due, settings.RESERVO_WORKER_EXPIRE_EVERY_SECONDS),
            ("purge outbox", outbox_purge_delivered, settings.RESERVO_WORKER_PURGE_EVERY_SECONDS),
            (
                "purge idempotency records",
                idempotency_records_purge,
                settings.RESERVO_WORKER_PURGE_EVERY_SECONDS,
            ),
        ]
        self._next_run = [0.0] * len(self._periodic)

    def stop(self) -> None:
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def run_periodic(self) -> None:
        now = time.monotonic()
        for index, (what, job, every) in enumerate(self._periodic):
            if now < self._next_run[index]:
                continue
            self._next_run[index] = now + every
            try:
                done = job()
            except (OperationalError, ReservoError) as exc:
                # Database unreachable or busy (lock bound): the next run catches up.
                logger.warning("periodic job %r skipped: %s", what, exc)
                continue
            except Exception:
                logger.exception("periodic job %r failed; next run in %.0f s", what, every)
                continue
            if done:
                logger.info("%s: %d", what, done)

    def run(self) -> None:
        logger.info("worker %s started", self.name)
        try:
            while not self.stopping:
                close_old_connections()
                self.run_periodic()
                try:
                    claimed = outbox_deliver_due(worker=self.name)
                except OperationalError as exc:
                    # Unreachable database: claimed rows come back after their lease.
                    logger.warning("outbox delivery paused: database unavailable (%s)", exc)
                    connection.close()
                    claimed = 0
                except Exception:
                    logger.exception("outbox delivery failed; retrying shortly")
                    connection.close()
                    claimed = 0
                if not claimed:
                    self._stopping.wait(settings.RESERVO_WORKER_POLL_SECONDS)
        finally:
            connections.close_all()
            logger.info("worker %s stopped", self.name)
