"""Transitions of one reservation (confirm, cancel) and the sweep that expires due holds.

A transition is one round trip: the function `reservo_transition`
(bookings/migrations/0012) locks the resource and the reservation, expires a hold past its
expiry, checks and writes the change, its history and outbox rows. This module turns its
outcome into the reservation or the domain's error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db.models.functions import Now
from django.utils.translation import gettext as _

from bookings.locking import in_booking_transaction, local_timeouts
from bookings.models import Reservation, ReservationStatus
from bookings.services.common import (
    EMAILED_ARRAY,
    SETTINGS_DEFAULTS,
    SYSTEM,
    Actor,
    OutcomeRecorder,
    _expire_due_holds,
    _lock_resource,
    _on_commit_invalidate,
    maintenance_error,
    manage_token_hash,
    outcome_execute,
    reservation_from_outcome,
)
from reservo.errors import HoldExpired, InvalidState, NotFound

TRANSITION_SQL = """
    SELECT * FROM reservo_transition(
        %(reservation_id)s, %(to_status)s, %(customer_name)s, %(customer_email)s,
        %(manage_token)s, %(manage_token_hash)s, %(actor)s, %(expiry_actor)s,
        %(bound_by_maintenance)s, %(emailed)s::text[], %(settings_defaults)s::jsonb,
        %(lock_timeout)s, %(statement_timeout)s)
"""
# Answered with a 5xx: a request may try again with the same Idempotency-Key and succeed.
OUTCOMES_NOT_RECORDED = ("maintenance",)
# The outcomes that changed the resource's availability: its cached copy is invalidated
# after the commit.
OUTCOMES_CHANGING = ("changed", "hold_expired")


def _transition(
    reservation_id: int,
    to_status: ReservationStatus,
    actor: Actor,
    recorder: OutcomeRecorder | None,
    *,
    customer_name: str | None = None,
    customer_email: str | None = None,
    manage_token: str | None = None,
) -> Reservation:
    """Lock, re-read and change one reservation, in one statement (`reservo_transition`).
    A hold found past its expiry is expired (and that is committed, freeing its places)
    and the transition's refusal raised instead."""
    lock_timeout, statement_timeout = local_timeouts()
    params = {
        "reservation_id": reservation_id,
        "to_status": to_status.value,
        "customer_name": customer_name,
        "customer_email": customer_email,
        "manage_token": manage_token,
        "manage_token_hash": manage_token_hash(manage_token) if manage_token is not None else None,
        "actor": str(actor),
        "expiry_actor": str(SYSTEM),
        "bound_by_maintenance": actor.bound_by_maintenance,
        "emailed": EMAILED_ARRAY,
        "settings_defaults": SETTINGS_DEFAULTS,
        "lock_timeout": lock_timeout,
        "statement_timeout": statement_timeout,
    }

    def transition() -> dict[str, Any]:
        outcome = outcome_execute(
            TRANSITION_SQL, params, recorder, unrecorded=OUTCOMES_NOT_RECORDED
        )
        if outcome["outcome"] in OUTCOMES_CHANGING:
            _on_commit_invalidate(outcome["resource_id"])
        return outcome

    # A refusal is an outcome, not an exception inside the transaction: nothing to undo.
    outcome = in_booking_transaction(transition, savepoint=False, set_timeouts=False)
    return transitioned_from(outcome, to_status)


def transitioned_from(outcome: Mapping[str, Any], to_status: str) -> Reservation:
    """The reservation a transition's outcome (a row of `reservo_transition`, or that row
    as JSON) left; or the refusal it stands for, raised."""
    code = outcome["outcome"]
    if code == "not_found":
        raise NotFound(_("No such reservation."))
    if code == "maintenance":
        raise maintenance_error(outcome["maintenance_message"])
    reservation = reservation_from_outcome(outcome)
    if code == "hold_expired":
        if to_status == ReservationStatus.CONFIRMED:
            raise HoldExpired(_("This hold expired; the places were released."))
        raise InvalidState(
            _("This hold had already expired."), current_status=ReservationStatus.EXPIRED
        )
    if code == "invalid_state":
        message = (
            _("This reservation is %(status)s; only a hold can be confirmed.")
            if to_status == ReservationStatus.CONFIRMED
            else _("This reservation is already %(status)s.")
        )
        status_name = reservation.get_status_display().lower()
        raise InvalidState(message % {"status": status_name}, current_status=reservation.status)
    assert code == "changed", f"unknown transition outcome {code!r}"
    return reservation


def reservation_confirm(
    *,
    reservation_id: int,
    actor: Actor,
    customer_name: str | None = None,
    customer_email: str | None = None,
    manage_token: str | None = None,
    recorder: OutcomeRecorder | None = None,
) -> Reservation:
    """Turn a hold into a booking. A hold past its expiry is expired instead, never confirmed.

    `manage_token`, when the caller knows it (the customer's own session), is put in the
    confirmation email's link; a token that does not match the reservation is ignored.
    With `recorder`, the statement also writes the record of its outcome, and commits.
    """
    return _transition(
        reservation_id,
        ReservationStatus.CONFIRMED,
        actor,
        recorder,
        customer_name=customer_name,
        customer_email=customer_email,
        manage_token=manage_token,
    )


def reservation_cancel(
    *, reservation_id: int, actor: Actor, recorder: OutcomeRecorder | None = None
) -> Reservation:
    """Cancel a held or confirmed reservation; its places are released exactly once."""
    return _transition(reservation_id, ReservationStatus.CANCELLED, actor, recorder)


def reservations_expire_due(*, actor: Actor = SYSTEM, resource_batch: int = 100) -> int:
    """The sweep: expire every hold past its expiry, one resource per transaction."""
    resource_ids = list(
        Reservation.objects.filter(status=ReservationStatus.HELD, hold_expires_at__lte=Now())
        .order_by()
        .values_list("resource_id", flat=True)
        .distinct()[:resource_batch]
    )
    expired = 0
    for resource_id in resource_ids:

        def sweep(resource_id: int = resource_id) -> int:
            _lock_resource(resource_id, actor)
            return len(_expire_due_holds(resource_id, actor))

        expired += in_booking_transaction(sweep)
    return expired
