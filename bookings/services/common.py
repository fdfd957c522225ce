"""What every booking service shares: who acts, the resource lock (always first), history
and outbox rows, and the expiry of due holds."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from django.db import connection, transaction
from django.utils.translation import gettext as _

from bookings.locking import array_literal, execute_then_commit
from bookings.models import Reservation
from bookings.notifications import EMAILED
from reservo.errors import (
    Maintenance,
    NotFound,
    ReservoError,
)
from resources.models import Resource
from resources.selectors import availability_invalidate
from settings_app.models import SINGLETON_ID, SystemSettings

REFERENCE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O, 1/I: read over the phone
assert 256 % len(REFERENCE_ALPHABET) == 0  # _new_reference maps bytes without bias
REFERENCE_LENGTH = 8
REFERENCE_ATTEMPTS = 3


class ReferenceTaken(ReservoError):
    """A new reference collided with an existing one (about 1 in 10^12): book again."""


@dataclass(frozen=True)
class Actor:
    """Who asked for a change; recorded in history and deciding maintenance rules."""

    kind: Literal["customer", "api", "staff", "system"]
    name: str = ""

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}" if self.name else self.kind

    @property
    def bound_by_maintenance(self) -> bool:
        return self.kind in ("customer", "api")


SYSTEM = Actor("system")


@dataclass(frozen=True)
class Booking:
    reservation: Reservation
    # Shown once to the customer (their self-service link); only its hash is stored.
    manage_token: str


def manage_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_reference() -> str:
    # One read of the system's randomness, not one per character: 256 is a multiple of
    # the alphabet's 32 letters, so every letter stays equally likely.
    return "RSV-" + "".join(
        REFERENCE_ALPHABET[byte % len(REFERENCE_ALPHABET)]
        for byte in secrets.token_bytes(REFERENCE_LENGTH)
    )


def _settings_default(field: str) -> object:
    return SystemSettings._meta.get_field(field).get_default()  # type: ignore[union-attr]


# The resource row lock, the database clock and the settings the booking rules need, in one
# statement written out once (the hot path: no query building per booking). The settings
# row comes from a migration; its field defaults stand in should it be missing.
LOCK_RESOURCE_SQL = """
    SELECT r.*,
           statement_timestamp() AS db_now,
           COALESCE(s.maintenance_mode, %(maintenance_mode)s) AS maintenance_mode,
           COALESCE(s.maintenance_message, %(maintenance_message)s) AS maintenance_message,
           COALESCE(s.hold_ttl_seconds, %(hold_ttl_seconds)s) AS hold_ttl_seconds,
           COALESCE(s.default_max_per_booking, %(default_max_per_booking)s)
               AS default_max_per_booking
      FROM resources_resource r
      LEFT JOIN settings_app_systemsettings s ON s.id = %(settings_id)s
     WHERE r.id = %(resource_id)s
       FOR UPDATE OF r
"""
LOCK_RESOURCE_DEFAULTS = {
    field: _settings_default(field)
    for field in (
        "maintenance_mode",
        "maintenance_message",
        "hold_ttl_seconds",
        "default_max_per_booking",
    )
}
# The settings' stand-ins and the statuses that email the customer, as the booking
# functions take them.
SETTINGS_DEFAULTS = json.dumps(LOCK_RESOURCE_DEFAULTS)
EMAILED_ARRAY = array_literal(EMAILED)


def _lock_resource(resource_id: int, actor: Actor) -> Resource:
    """Lock the resource row (always the first lock) and read the settings in the same trip."""
    params = {**LOCK_RESOURCE_DEFAULTS, "settings_id": SINGLETON_ID, "resource_id": resource_id}
    resource = next(iter(Resource.objects.raw(LOCK_RESOURCE_SQL, params)), None)
    if resource is None:
        raise NotFound(_("No such resource."))
    if actor.bound_by_maintenance and resource.maintenance_mode:  # type: ignore[attr-defined]
        raise maintenance_error(resource.maintenance_message)  # type: ignore[attr-defined]
    return resource


def maintenance_error(message: str) -> Maintenance:
    return Maintenance(
        message or _("Bookings are paused for maintenance. Please come back shortly.")
    )


def _on_commit_invalidate(resource_id: int) -> None:
    transaction.on_commit(lambda: availability_invalidate(resource_id))


# Every reservation column a booking function's outcome may carry, under its own name.
OUTCOME_FIELDS = (
    "public_id",
    "reference",
    "resource_id",
    "quantity",
    "status",
    "hold_expires_at",
    "created_at",
    "confirmed_at",
    "cancelled_at",
    "expired_at",
    "customer_name",
    "customer_email",
)
OUTCOME_TIMESTAMPS = frozenset(
    ("hold_expires_at", "created_at", "confirmed_at", "cancelled_at", "expired_at")
)


class OutcomeRecorder(Protocol):
    """Runs a booking function's statement together with the record of its outcome, as the
    transaction's last statement (an idempotent API request: bookings.api.idempotency)."""

    def execute(
        self, sql: str, params: Mapping[str, Any], *, unrecorded: Collection[str]
    ) -> dict[str, Any]: ...


def outcome_execute(
    sql: str,
    params: Mapping[str, Any],
    recorder: OutcomeRecorder | None,
    *,
    unrecorded: Collection[str],
) -> dict[str, Any]:
    """Run a booking function's statement, which returns its outcome in one row, as the
    transaction's last: with the record of that outcome through `recorder` (unless it is
    `unrecorded`), or without, and with the COMMIT when the transaction is its own."""
    outcome = (
        recorder.execute(sql, params, unrecorded=unrecorded)
        if recorder is not None
        else execute_then_commit(sql, params)
    )
    assert outcome is not None  # the booking functions return one row
    return outcome


def reservation_from_outcome(outcome: Mapping[str, Any], **known: Any) -> Reservation:
    """The reservation a booking function's outcome row describes (or that row as JSON, its
    timestamps as text: a recorded outcome), with the `known` fields it does not carry.
    Its `seat_ids`, when the outcome has them, are its seats."""
    fields = {name: outcome[name] for name in OUTCOME_FIELDS if name in outcome}
    for name in OUTCOME_TIMESTAMPS.intersection(fields):
        if isinstance(fields[name], str):
            fields[name] = datetime.fromisoformat(fields[name])
    reservation = Reservation(id=outcome["reservation_id"], **fields, **known)
    reservation._state.adding = False
    if "seat_ids" in outcome:
        reservation.seat_ids = list(outcome["seat_ids"] or [])  # type: ignore[attr-defined]
    return reservation


def _expire_due_holds(resource_id: int, actor: Actor) -> list[tuple[int, int]]:
    """Expire the resource's holds past their expiry (database clock), with their history
    and outbox rows; returns (id, quantity)s.

    The caller holds the resource lock, and every transition locks the resource first,
    so no other transaction is changing these rows.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, quantity FROM reservo_expire_due_holds(%s, %s, %s::text[])",
            [resource_id, str(actor), EMAILED],
        )
        rows = cursor.fetchall()
    if rows:
        _on_commit_invalidate(resource_id)
    return rows
