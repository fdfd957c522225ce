"""Idempotent unsafe requests: one effect per (API client, Idempotency-Key).

The request's record is inserted under its unique key first, in the transaction that
does the work, and filled in with the response before that transaction commits: a crash
leaves both the effect and its record, or neither. A concurrent duplicate's insert waits
on the unique index until the first commits, then finds its record and replays it; if
the wait passes the lock timeout it gets 409 `idempotency_in_progress`. Every response
below 500 is recorded (a 4xx is an answer to that request too); a 5xx (busy,
unavailable, maintenance, a bug) rolls the transaction back with its record, so a retry
with the same key can succeed.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import DatabaseError, connection, transaction
from django.db.models.functions import Now
from django.utils.translation import gettext as _
from rest_framework.utils.encoders import JSONEncoder

from bookings.locking import retrying_conflicts, set_local_timeouts
from bookings.models import ApiClient, IdempotencyRecord
from reservo.errors import (
    SQLSTATE_LOCK_NOT_AVAILABLE,
    SQLSTATE_QUERY_CANCELED,
    IdempotencyInProgress,
    IdempotencyKeyReused,
    ValidationFailed,
    sqlstate_of,
)

IDEMPOTENCY_HEADER = "Idempotency-Key"
KEY_PATTERN = re.compile(r"^[\x20-\x7e]{1,255}$")
RETENTION = timedelta(hours=24)

# The ORM's insert has no ON CONFLICT DO NOTHING that returns the new row's id.
CLAIM_SQL = """
    INSERT INTO bookings_idempotencyrecord
           (api_client_id, key, method, path, request_hash, response_status, response_body,
            created_at)
    VALUES (%s, %s, %s, %s, %s, NULL, 'null', now())
    ON CONFLICT ON CONSTRAINT idempotency_key_unique DO NOTHING
    RETURNING id
"""


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


def _claim(request: IdempotentRequest) -> int | None:
    """Insert the request's record, waiting for a duplicate in flight; returns its id, or
    None when the key has a record already."""
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                CLAIM_SQL,
                [
                    request.client.pk,
                    request.key,
                    request.method,
                    request.path,
                    request.request_hash,
                ],
            )
            row = cursor.fetchone()
    except DatabaseError as exc:
        if sqlstate_of(exc) in (SQLSTATE_LOCK_NOT_AVAILABLE, SQLSTATE_QUERY_CANCELED):
            raise IdempotencyInProgress(
                _("A request with this Idempotency-Key is still running. Retry shortly.")
            ) from exc
        raise
    return row[0] if row is not None else None


def _replay(request: IdempotentRequest) -> StoredResponse:
    record = IdempotencyRecord.objects.filter(api_client=request.client, key=request.key).first()
    if record is None or record.response_status is None:
        # Purged (or still being written) since the claim found it: the client retries.
        raise IdempotencyInProgress(
            _("A request with this Idempotency-Key is still running. Retry shortly.")
        )
    if (record.method, record.path, record.request_hash) != (
        request.method,
        request.path,
        request.request_hash,
    ):
        raise IdempotencyKeyReused(_("This Idempotency-Key was used for a different request."))
    return StoredResponse(record.response_status, json.loads(record.response_body), replayed=True)


def idempotent_execute(
    request: IdempotentRequest, execute: Callable[[], tuple[int, Any]]
) -> StoredResponse:
    """Run `execute` (returning status and JSON body) at most once for this client and
    key, or replay what it returned the first time.

    `execute` runs inside this transaction (the services it calls are nested in it, and
    cannot retry on their own), so serialization failures and deadlocks are retried here,
    from the top.
    """

    def attempt() -> StoredResponse:
        with transaction.atomic():
            set_local_timeouts()
            record_id = _claim(request)
            if record_id is None:
                return _replay(request)
            status, body = execute()
            response = StoredResponse(status, body, replayed=False)
            if status >= 500:
                raise _Unrecorded(response)
            # The rendered text (a JSON string) keeps the body's key order, so a replay is
            # byte-identical.
            IdempotencyRecord.objects.filter(pk=record_id).update(
                response_status=status,
                response_body=json.dumps(body, cls=JSONEncoder, ensure_ascii=False),
            )
            return response

    try:
        return retrying_conflicts(attempt)
    except _Unrecorded as unrecorded:
        return unrecorded.response


def idempotency_records_purge(*, older_than: timedelta = RETENTION) -> int:
    """Delete records older than `older_than` (never less than the 24 hours promised)."""
    older_than = max(older_than, RETENTION)
    deleted, _by_model = IdempotencyRecord.objects.filter(
        created_at__lt=Now() - older_than
    ).delete()
    return deleted
