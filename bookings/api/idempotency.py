"""Idempotent unsafe requests: one effect per (API client, Idempotency-Key).

The first response is stored in the same transaction as the effect it reports, so a
crash leaves either both or neither. Duplicates are serialised by a transaction-scoped
advisory lock on (client, key): a duplicate waits for the first to commit and then
replays its response; if the wait passes the lock timeout it gets 409
`idempotency_in_progress`. A request first claims its key in the same query as its first
statement (that claim raises, before the statement runs, if the lock is taken or the key
has a record); only then does it take the full claim, which waits and replays. Every
response below 500 is recorded (a 4xx is an answer to that request too); 5xx responses
(busy, unavailable, maintenance, bugs) are not, so a retry with the same key can succeed.

A record holds either the rendered answer, inserted with the COMMIT once the request has
answered, or, for an effect made by one statement that returns its outcome (a booking, a
confirmation, a cancellation), that outcome and the request's language, written by the
effect's own statement (`OutcomeRecord`): then the row lock the effect takes ends with
that one round trip, and the answer is rendered from the outcome, the first time and on
every replay alike.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models.functions import Now
from django.utils import translation
from django.utils.translation import gettext as _
from psycopg.pq import TransactionStatus

from bookings.locking import (
    array_literal,
    caused_by,
    execute_then_commit,
    local_timeouts,
    retrying_conflicts,
)
from bookings.models import ApiClient, IdempotencyRecord
from reservo.db.base import send_before_next_statement
from reservo.errors import (
    SQLSTATE_LOCK_NOT_AVAILABLE,
    SQLSTATE_QUERY_CANCELED,
    IdempotencyInProgress,
    IdempotencyKeyReused,
    ReservoError,
    ValidationFailed,
    constraint_of,
    sqlstate_of,
)

IDEMPOTENCY_HEADER = "Idempotency-Key"
KEY_PATTERN = re.compile(r"^[\x20-\x7e]{1,255}$")
RETENTION = timedelta(hours=24)
UNIQUE_CONSTRAINT = "idempotency_key_unique"
# Raised by reservo_idempotency_claim_first (bookings/migrations/0009).
SQLSTATE_CLAIMED_ALREADY = "RV001"


@dataclass(frozen=True)
class IdempotentRequest:
    client: ApiClient
    key: str
    method: str
    path: str
    request_hash: str


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: Any
    replayed: bool


# Renders the answer to a request from the outcome its effect recorded: (status, body).
Renderer = Callable[[dict[str, Any]], tuple[int, Any]]

RECORD_WITH_OUTCOME = """
    WITH effect AS ({effect}),
    record AS (
        INSERT INTO bookings_idempotencyrecord (api_client_id, key, method, path,
                                                request_hash, response_status, response_body)
        SELECT %(idempotency_client)s, %(idempotency_key)s, %(idempotency_method)s,
               %(idempotency_path)s, %(idempotency_hash)s, NULL,
               jsonb_build_object('outcome', to_jsonb(effect),
                                  'language', %(idempotency_language)s::text)
          FROM effect
         WHERE effect.outcome <> ALL (%(idempotency_unrecorded)s::text[])
    )
    SELECT * FROM effect
"""


@dataclass
class OutcomeRecord:
    """The record of an idempotent request, written by the statement of its effect.

    `execute` runs that statement (one that returns a row with an `outcome` column) with
    the record's insert, in one query, and with the transaction's COMMIT when the request
    owns the transaction. An outcome in `unrecorded` (one answered with a 5xx) leaves no
    record. A response body of `{"outcome": ..., "language": ...}` with no status is such
    a record: its answer is rendered from the outcome, in that language.
    """

    request: IdempotentRequest
    commit: bool
    written: bool = field(default=False, init=False)
    committed: bool = field(default=False, init=False)

    def execute(
        self, sql: str, params: Mapping[str, Any], *, unrecorded: Collection[str]
    ) -> dict[str, Any]:
        row = execute_then_commit(
            RECORD_WITH_OUTCOME.format(effect=sql),
            {
                **params,
                "idempotency_client": self.request.client.pk,
                "idempotency_key": self.request.key,
                "idempotency_method": self.request.method,
                "idempotency_path": self.request.path,
                "idempotency_hash": self.request.request_hash,
                "idempotency_language": translation.get_language() or "",
                "idempotency_unrecorded": array_literal(unrecorded),
            },
            commit=self.commit,
        )
        assert row is not None  # the effect's statement returns one row
        self.written = row["outcome"] not in unrecorded
        raw = connection.connection
        self.committed = raw is not None and raw.info.transaction_status == TransactionStatus.IDLE
        return row


def idempotency_key_validate(key: str) -> str:
    if not KEY_PATTERN.match(key):
        raise ValidationFailed(
            {IDEMPOTENCY_HEADER: [_("Use 1 to 255 printable ASCII characters.")]}
        )
    return key


def request_hash(body: bytes) -> str:
    """A hash of the request body; JSON bodies are canonicalised first, so key order and
    whitespace do not make the same request look different."""
    try:
        canonical = json.dumps(
            json.loads(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()
    except ValueError:
        canonical = body
    return hashlib.sha256(canonical).hexdigest()


class _Unrecorded(Exception):
    """A 5xx response: leave the transaction and record nothing."""

    def __init__(self, response: StoredResponse) -> None:
        self.response = response


def _recorded_meanwhile(error: BaseException) -> bool:
    """Under REPEATABLE READ/SERIALIZABLE, the first request's record committed after our
    snapshot: a fresh transaction will find it and replay it."""
    return isinstance(error, IntegrityError) and constraint_of(error) == UNIQUE_CONSTRAINT


def _claim(request: IdempotentRequest) -> tuple[Any, ...] | None:
    """Timeouts, the advisory lock on (client, key), then the key's record if any: one
    round trip (bookings/migrations/0004)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT * FROM reservo_idempotency_claim(%s, %s, %s, %s)",
                [request.client.pk, request.key, *local_timeouts()],
            )
            return cursor.fetchone()
    except DatabaseError as exc:
        if sqlstate_of(exc) in (SQLSTATE_LOCK_NOT_AVAILABLE, SQLSTATE_QUERY_CANCELED):
            raise IdempotencyInProgress(
                _("A request with this Idempotency-Key is still running. Retry shortly.")
            ) from exc
        raise


def _attempt(
    request: IdempotentRequest,
    execute: Callable[[OutcomeRecord], tuple[int, Any]],
    render: Renderer,
    *,
    claim_first: bool,
) -> StoredResponse:
    with transaction.atomic():
        owned = len(connection.atomic_blocks) == 1
        if claim_first:
            # With the request's first statement: no round trip of its own. A duplicate
            # never gets past it, and comes back with the full claim.
            send_before_next_statement(
                "SELECT reservo_idempotency_claim_first(%s, %s)", [request.client.pk, request.key]
            )
            record = None
        else:
            record = _claim(request)
        if record is not None:
            method, path, body_hash, status, body = record
            if (method, path, body_hash) != (request.method, request.path, request.request_hash):
                raise IdempotencyKeyReused(
                    _("This Idempotency-Key was used for a different request.")
                )
            if status is None:  # an OutcomeRecord
                stored = json.loads(body)
                with translation.override(stored["language"] or None):
                    status, answer = render(stored["outcome"])
                return StoredResponse(status, answer, replayed=True)
            return StoredResponse(status, json.loads(body), replayed=True)
        outcome_record = OutcomeRecord(request, commit=owned)
        try:
            status, body = execute(outcome_record)
            response = StoredResponse(status, body, replayed=False)
            if status >= 500:
                raise _Unrecorded(response)
        except Exception as error:
            if not outcome_record.committed:
                raise
            # The effect's statement committed: the block must end as a commit does, so
            # that the effect's after-commit work (cache invalidation) runs; then this
            # error goes up.
            failure = error
        else:
            if outcome_record.written:
                return response
            # The rendered text (a JSON string) keeps the body's key order, so a replay is
            # byte-identical. Written out, and sent with the COMMIT: for a resource write, this
            # insert is the last statement while the resource row is locked.
            execute_then_commit(
                "INSERT INTO bookings_idempotencyrecord (api_client_id, key, method, path, "
                "request_hash, response_status, response_body) "
                "VALUES (%s, %s, %s, %s, %s, %s, to_jsonb(%s::text))",
                [
                    request.client.pk,
                    request.key,
                    request.method,
                    request.path,
                    request.request_hash,
                    status,
                    json.dumps(body, ensure_ascii=False),
                ],
            )
            return response
    raise failure


def idempotent_execute(
    request: IdempotentRequest,
    execute: Callable[[OutcomeRecord], tuple[int, Any]],
    render: Renderer,
) -> StoredResponse:
    """Run `execute` (returning status and JSON body) at most once for this client and
    key, or replay what it returned the first time.

    `execute` runs inside this transaction (the services it calls are nested in it, and
    cannot retry on their own), so serialization failures and deadlocks are retried here,
    from the top. The record goes with the COMMIT (`execute_then_commit`), unless the
    effect's statement wrote it through the `OutcomeRecord` it is given; the answers to
    such a record come from `render`, given the recorded outcome.
    """

    def attempt() -> StoredResponse:
        try:
            return _attempt(request, execute, render, claim_first=True)
        except (DatabaseError, ReservoError) as error:
            if not caused_by(error, [SQLSTATE_CLAIMED_ALREADY]):
                raise
        return _attempt(request, execute, render, claim_first=False)

    try:
        return retrying_conflicts(attempt, also=_recorded_meanwhile)
    except _Unrecorded as unrecorded:
        return unrecorded.response
    except IntegrityError as exc:
        if _recorded_meanwhile(exc):
            raise IdempotencyInProgress() from exc
        raise


def idempotency_records_purge(*, older_than: timedelta = RETENTION) -> int:
    """Delete records older than `older_than` (never less than the 24 hours promised)."""
    older_than = max(older_than, RETENTION)
    deleted, _by_model = IdempotencyRecord.objects.filter(
        created_at__lt=Now() - older_than
    ).delete()
    return deleted
