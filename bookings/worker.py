"""The background worker: delivers the outbox and runs the periodic jobs.

Claiming: one statement picks due rows with FOR UPDATE SKIP LOCKED, pushes their
`next_attempt_at` one lease ahead and stamps them with this batch's claim token, and
commits. Delivery then happens outside any transaction, and each row is marked done
(or failed) afterwards. Several workers never pick the same row while its lease runs;
a worker that dies mid-batch leaves its rows to be picked again once the lease ends, so a
receiver sees a row at most once more, with the same event id.

The loop claims only as many rows as its delivery pool (bookings.delivery_pool) has free
lanes for, and never the rows of an endpoint it is delivering to already; the pool's
threads deliver them. Each periodic job (hold expiry above all) runs on a thread of its
own, so that no delivery delays it.

Watchdog: the loop, each delivery thread and each periodic job's thread beat a `Heartbeat`
before every step (a delivery, a batch of a periodic job, a poll). A `Watchdog` thread ends
the process with status `WATCHDOG_EXIT_STATUS` when a busy thread did not beat for its
bound, logging what that thread was doing
and where it is stuck, so that the supervisor starts a fresh worker; the rows the stuck one
had claimed are delivered again once their lease ends. While the loop beats, the watchdog
touches the heartbeat file, if any, for a liveness probe to check.
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path

from django.conf import settings
from django.db import (
    OperationalError,
    close_old_connections,
    connection,
    connections,
)

from bookings.api.idempotency import idempotency_records_purge
from bookings.delivery_pool import DeliveryPool
from bookings.models import OutboxMessage, WebhookEndpoint
from bookings.notifications import (
    DeliveryFailed,
    OutboundMessage,
    email_deliver,
    webhook_circuit_failed,
    webhook_circuit_open_until,
    webhook_circuit_succeeded,
    webhook_deliver,
)
from bookings.services import reservations_expire_due
from bookings.sessions import sessions_purge_expired
from bookings.webhook_secrets import WebhookSecretUnreadable
from reservo.errors import ReservoError

logger = logging.getLogger(__name__)

# EX_SOFTWARE: the supervisor restarts the worker; an operator reads "stuck" in its log.
WATCHDOG_EXIT_STATUS = 70

# What a step of the loop tells its heartbeat: what it is about to do.
Progress = Callable[[str], None]


def _no_progress(doing: str) -> None:
    pass


_CLAIM_SQL = """
WITH due AS (
    SELECT id FROM bookings_outboxmessage
     WHERE status = 'pending' AND next_attempt_at <= now()
       AND NOT (channel = 'webhook' AND target = ANY(%(busy_targets)s::text[]))
       AND id <> ALL(%(busy_ids)s::bigint[])
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

# Not sent (the endpoint's circuit is open): due again when it may be probed, and no attempt
# used up.
_DEFERRED_SQL = """
UPDATE bookings_outboxmessage
   SET next_attempt_at = GREATEST(%(until)s, now()),
       attempts = attempts - 1,
       last_error = %(error)s,
       claim_token = NULL
 WHERE id = %(id)s AND claim_token = %(claim)s AND status = 'pending'
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
    *,
    batch_size: int,
    lease_seconds: float,
    busy_targets: Sequence[str] = (),
    busy_ids: Sequence[int] = (),
) -> tuple[uuid.UUID, list[OutboundMessage]]:
    """Claim up to `batch_size` due rows for one lease; the claim commits at once.

    Rows for the webhook endpoints in `busy_targets` are left for later, and so are the rows
    in `busy_ids` (still being delivered here, past their lease).
    """
    claim = uuid.uuid4()
    with connection.cursor() as cursor:
        cursor.execute(
            _CLAIM_SQL,
            {
                "batch": batch_size,
                "lease": lease_seconds,
                "claim": claim,
                "busy_targets": list(busy_targets),
                "busy_ids": list(busy_ids),
            },
        )
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
    # Not sent, and not an attempt: due again at this time.
    deferred_until: datetime | None = None


def _deliver_webhook(message: OutboundMessage, endpoints: dict[int, WebhookEndpoint]) -> _Outcome:
    endpoint = endpoints.get(int(message.target))
    if endpoint is None:
        raise DeliveryFailed("The webhook endpoint was deleted.", permanent=True)
    if not endpoint.active:
        raise DeliveryFailed(
            f"The webhook endpoint is disabled. {endpoint.disabled_reason}".strip(),
            permanent=True,
        )
    try:
        secret = endpoint.secret
    except WebhookSecretUnreadable as exc:
        raise DeliveryFailed(str(exc)) from exc
    open_until = webhook_circuit_open_until(endpoint)
    if open_until is not None:
        return _Outcome(
            succeeded=False,
            deferred_until=open_until,
            error=(
                f"Not sent: the endpoint failed {endpoint.consecutive_failures} times in a "
                f"row; its circuit is open until {open_until.isoformat()}."
            ),
        )
    try:
        status = webhook_deliver(message, url=endpoint.url, secret=secret)
    except DeliveryFailed as exc:
        webhook_circuit_failed(endpoint)
        if exc.response_status == 410:
            # The receiver says the endpoint is gone for good: stop sending to it.
            WebhookEndpoint.objects.filter(pk=endpoint.pk, active=True).update(
                active=False, disabled_reason="The receiver answered 410 Gone."
            )
            endpoint.active = False
            exc.permanent = True
        raise
    webhook_circuit_succeeded(endpoint)
    return _Outcome(succeeded=True, response_status=status)


def _deliver(message: OutboundMessage, endpoints: dict[int, WebhookEndpoint]) -> _Outcome:
    try:
        if message.channel == OutboxMessage.Channel.EMAIL:
            email_deliver(message)
            return _Outcome(succeeded=True)
        return _deliver_webhook(message, endpoints)
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
        if outcome.deferred_until is not None:
            cursor.execute(
                _DEFERRED_SQL,
                {
                    "id": message.id,
                    "claim": claim,
                    "until": outcome.deferred_until,
                    "error": outcome.error,
                },
            )
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
    progress: Progress = _no_progress,
) -> int:
    """Claim one batch of due rows and deliver it; returns how many rows were claimed.
    `progress` is told before each delivery."""
    claim, messages = outbox_claim(
        batch_size=batch_size or settings.RESERVO_OUTBOX_BATCH_SIZE,
        lease_seconds=lease_seconds or settings.RESERVO_OUTBOX_LEASE_SECONDS,
    )
    if not messages:
        return 0
    outbox_deliver(claim, messages, worker=worker, progress=progress)
    return len(messages)


def outbox_deliver(
    claim: uuid.UUID,
    messages: list[OutboundMessage],
    *,
    worker: str,
    progress: Progress = _no_progress,
) -> None:
    """Deliver claimed rows one after the other, recording each outcome as it comes;
    `progress` is told before each delivery."""
    endpoint_ids = [int(m.target) for m in messages if m.channel == OutboxMessage.Channel.WEBHOOK]
    endpoints = WebhookEndpoint.objects.in_bulk(endpoint_ids) if endpoint_ids else {}
    for message in messages:
        progress(f"delivering outbox message {message.id} ({message.channel})")
        started = time.monotonic()
        outcome = _deliver(message, endpoints)
        duration_ms = int((time.monotonic() - started) * 1000)
        _record_outcome(message, claim, outcome, duration_ms, worker)


def outbox_purge_delivered(*, batch: int = 5000, progress: Progress = _no_progress) -> int:
    """Delete delivered rows (and their log) older than the retention; dead ones stay."""
    total = 0
    while True:
        progress("purging delivered outbox messages")
        with connection.cursor() as cursor:
            cursor.execute(
                _PURGE_DELIVERED_SQL,
                {"days": settings.RESERVO_OUTBOX_RETENTION_DAYS, "batch": batch},
            )
            deleted = cursor.rowcount
        total += deleted
        if deleted < batch:
            return total


def holds_expire_due(*, progress: Progress = _no_progress) -> int:
    total = 0
    while True:
        progress("expiring due holds")
        expired = reservations_expire_due()
        if not expired:
            return total
        total += expired


class Heartbeat:
    """When each busy thread of the worker last made progress, and what it was about to do.

    The loop, the delivery threads and the periodic jobs' threads each beat before every
    step. A thread that waits for work with no bound on the wait (a delivery thread between
    lanes, a periodic job between runs) rests until its next beat. `last()` reports on the
    busy thread that beat longest ago, and sets `thread_id` to it.
    """

    def __init__(self) -> None:
        self._beats: dict[int, tuple[float, str]] = {}
        self.thread_id: int | None = None

    def beat(self, doing: str) -> None:
        self._beats[threading.get_ident()] = (time.monotonic(), doing)  # atomic under the GIL

    def rest(self) -> None:
        self._beats.pop(threading.get_ident(), None)

    def last(self) -> tuple[float, str]:
        """Seconds since the stalest busy thread's last beat, and what it was about to do."""
        beats = dict(self._beats)
        if not beats:
            return 0.0, "resting"
        self.thread_id, (at, doing) = min(beats.items(), key=lambda item: item[1][0])
        return time.monotonic() - at, doing


class Watchdog:
    """A daemon thread that ends the process when `heartbeat` has not beaten for `bound`
    seconds, and otherwise touches `heartbeat_file` (if given) about once a second.

    The loop it watches may be stuck anywhere (a call that never returns holds no lock the
    watchdog needs), so it exits with `os._exit`: nothing in the stuck thread is waited for.
    """

    def __init__(
        self,
        heartbeat: Heartbeat,
        *,
        bound: float,
        name: str,
        heartbeat_file: Path | None = None,
        exit_process: Callable[[int], object] = os._exit,
    ) -> None:
        self.heartbeat = heartbeat
        self.bound = bound
        self.name = name
        self.heartbeat_file = heartbeat_file
        self._exit_process = exit_process
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="worker-watchdog", daemon=True)

    def start(self) -> Watchdog:
        self._touch()
        self._thread.start()
        logger.info(
            "worker %s watchdog: exits with status %d if the loop makes no progress for %g s",
            self.name,
            WATCHDOG_EXIT_STATUS,
            self.bound,
        )
        return self

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(5)

    def _watch(self) -> None:
        interval = min(1.0, self.bound / 4)
        while not self._stopped.wait(interval):
            age, doing = self.heartbeat.last()
            if age > self.bound:
                self._expire(age, doing)
                return
            self._touch()

    def _touch(self) -> None:
        if self.heartbeat_file is None:
            return
        try:
            self.heartbeat_file.touch()
        except OSError as exc:
            logger.warning("worker %s: cannot touch %s: %s", self.name, self.heartbeat_file, exc)

    def _expire(self, age: float, doing: str) -> None:
        frame = sys._current_frames().get(self.heartbeat.thread_id or 0)
        where = "".join(traceback.format_stack(frame)) if frame is not None else "(unknown)\n"
        logger.critical(
            "worker %s stuck for %.1f s (bound %g s) while %s; exiting with status %d so "
            "that it is restarted (the rows it claimed are delivered again after their "
            "lease). The loop is at:\n%s",
            self.name,
            age,
            self.bound,
            doing,
            WATCHDOG_EXIT_STATUS,
            where.rstrip(),
        )
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        self._exit_process(WATCHDOG_EXIT_STATUS)


class Worker:
    """The worker loop: deliver due rows, expire holds every few seconds, purge hourly.

    The loop claims what its delivery pool has room for; each periodic job has a thread of
    its own. `stop()` (called on SIGTERM) lets the deliveries already claimed finish, then
    `run()` returns. Every step beats `heartbeat`, for a `Watchdog` to see.
    """

    def __init__(self, *, name: str | None = None) -> None:
        self.name = name or worker_name()
        self.heartbeat = Heartbeat()
        self._stopping = threading.Event()
        beat = self.heartbeat.beat
        self._periodic: list[tuple[str, Callable[[], int], float]] = [
            (
                "expire holds",
                lambda: holds_expire_due(progress=beat),
                settings.RESERVO_WORKER_EXPIRE_EVERY_SECONDS,
            ),
            (
                "purge outbox",
                lambda: outbox_purge_delivered(progress=beat),
                settings.RESERVO_WORKER_PURGE_EVERY_SECONDS,
            ),
            (
                "purge idempotency records",
                idempotency_records_purge,
                settings.RESERVO_WORKER_PURGE_EVERY_SECONDS,
            ),
            (
                "purge expired sessions",
                sessions_purge_expired,
                settings.RESERVO_WORKER_PURGE_EVERY_SECONDS,
            ),
        ]
        self._next_run = [0.0] * len(self._periodic)
        self._pool: DeliveryPool | None = None

    def stop(self) -> None:
        self._stopping.set()
        if self._pool is not None:
            self._pool.wake()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def run_periodic(self) -> None:
        """Run the periodic jobs that are due, here and now."""
        now = time.monotonic()
        for index in range(len(self._periodic)):
            if now >= self._next_run[index]:
                self._run_periodic_job(index)

    def _run_periodic_job(self, index: int) -> None:
        what, job, every = self._periodic[index]
        self._next_run[index] = time.monotonic() + every
        self.heartbeat.beat(f"running the periodic job {what!r}")
        try:
            done = job()
        except (OperationalError, ReservoError) as exc:
            # Database unreachable or busy (lock bound): the next run catches up.
            logger.warning("periodic job %r skipped: %s", what, exc)
            return
        except Exception:
            logger.exception("periodic job %r failed; next run in %.0f s", what, every)
            return
        if done:
            logger.info("%s: %d", what, done)

    def _run_periodic_job_forever(self, index: int) -> None:
        """One periodic job on a thread of its own: no delivery, no other job delays it."""
        every = self._periodic[index][2]
        try:
            while not self.stopping:
                close_old_connections()
                self._run_periodic_job(index)
                self.heartbeat.rest()
                if every > (connection.settings_dict["CONN_MAX_AGE"] or 0):
                    connections.close_all()  # not kept open, idle, until an hourly run
                self._stopping.wait(max(0.0, self._next_run[index] - time.monotonic()))
        finally:
            self.heartbeat.rest()
            connections.close_all()

    def _claim_for(self, pool: DeliveryPool) -> int:
        """Claim what the pool has free lanes for, and hand it over; how many rows."""
        room = pool.room()
        if not room:
            return 0
        claim, messages = outbox_claim(
            batch_size=min(room, settings.RESERVO_OUTBOX_BATCH_SIZE),
            lease_seconds=settings.RESERVO_OUTBOX_LEASE_SECONDS,
            busy_targets=pool.busy_webhook_targets(),
            busy_ids=pool.busy_message_ids(),
        )
        if messages:
            pool.submit(claim, messages)
        return len(messages)

    def run(self) -> None:
        logger.info("worker %s started", self.name)
        periodic = [
            threading.Thread(
                target=self._run_periodic_job_forever, args=(index,), name=f"worker-{what}"
            )
            for index, (what, _job, _every) in enumerate(self._periodic)
        ]
        for thread in periodic:
            thread.start()
        pool = self._pool = DeliveryPool(
            size=settings.RESERVO_WEBHOOK_CONCURRENCY,
            deliver=partial(outbox_deliver, worker=self.name, progress=self.heartbeat.beat),
            rest=self.heartbeat.rest,
        )
        try:
            while not self.stopping:
                self.heartbeat.beat("checking its database connection")
                close_old_connections()
                self.heartbeat.beat("claiming due outbox messages")
                try:
                    claimed = self._claim_for(pool)
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
                    self.heartbeat.beat("waiting for due outbox messages")
                    pool.wait(settings.RESERVO_WORKER_POLL_SECONDS)
        finally:
            self.heartbeat.beat("finishing the deliveries it claimed")
            pool.close()
            for thread in periodic:
                thread.join()
            self.heartbeat.rest()
            connections.close_all()
            logger.info("worker %s stopped", self.name)
