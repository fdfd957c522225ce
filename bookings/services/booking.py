"""Booking places by quantity or by seats, as a hold or confirmed at once: all or nothing.

The rules run in PostgreSQL, in the function `reservo_book` (bookings/migrations/0004): one
round trip locks the resource, expires its due holds, checks and writes the reservation,
its seats, history and outbox rows. This module validates the request, turns the
function's outcome into the domain's errors and messages, and retries conflicts.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from django.utils.translation import gettext as _

from bookings.locking import (
    array_literal,
    in_booking_transaction,
    local_timeouts,
)
from bookings.models import ApiClient, Reservation, ReservationSeat
from bookings.services.common import (
    EMAILED_ARRAY,
    REFERENCE_ATTEMPTS,
    SETTINGS_DEFAULTS,
    Actor,
    Booking,
    OutcomeRecorder,
    ReferenceTaken,
    _new_reference,
    _on_commit_invalidate,
    maintenance_error,
    manage_token_hash,
    outcome_execute,
    reservation_from_outcome,
)
from reservo.errors import (
    LimitExceeded,
    NotFound,
    ReservoError,
    ResourceNotBookable,
    SeatsUnavailable,
    SoldOut,
    ValidationFailed,
)
from resources.selectors import resource_available_now

BOOK_SQL = """
    SELECT * FROM reservo_book(
        %(resource_id)s, %(quantity)s, %(seat_ids)s::bigint[], %(hold)s, %(references)s::text[],
        %(customer_name)s, %(customer_email)s, %(api_client_id)s, %(manage_token)s,
        %(manage_token_hash)s, %(actor)s, %(bound_by_maintenance)s, %(emailed)s::text[],
        %(settings_defaults)s::jsonb, %(lock_timeout)s, %(statement_timeout)s)
"""
# Outcomes answered with a 5xx (maintenance; every candidate reference taken): a request
# may try again with the same Idempotency-Key and succeed, so they are never recorded.
OUTCOMES_NOT_RECORDED = ("maintenance", "reference_taken")


def _validate_request(quantity: int | None, seat_ids: Sequence[int] | None) -> None:
    if seat_ids is not None and quantity is not None:
        raise ValidationFailed({"seats": [_("Give either seats or a quantity, not both.")]})
    if seat_ids is None and quantity is None:
        raise ValidationFailed({"quantity": [_("Give a quantity or a list of seats.")]})
    if seat_ids is not None:
        if not seat_ids:
            raise ValidationFailed({"seats": [_("Choose at least one seat.")]})
        if len(set(seat_ids)) != len(seat_ids):
            raise ValidationFailed({"seats": [_("A seat is listed twice.")]})
    elif quantity is not None and quantity < 1:
        raise ValidationFailed({"quantity": [_("Book at least one place.")]})


def book_params(
    *,
    resource_id: int,
    actor: Actor,
    quantity: int,
    seats: Sequence[int] | None = None,
    hold: bool = False,
    customer_name: str = "",
    customer_email: str = "",
    api_client_id: int | None = None,
) -> dict[str, Any]:
    """The arguments of BOOK_SQL for one booking, its new management token among them."""
    token = secrets.token_urlsafe(24)
    lock_timeout, statement_timeout = local_timeouts()
    return {
        "resource_id": resource_id,
        "quantity": quantity,
        "seat_ids": array_literal(seats) if seats is not None else None,
        "hold": hold,
        "references": array_literal([_new_reference() for _ in range(REFERENCE_ATTEMPTS)]),
        "customer_name": customer_name,
        "customer_email": customer_email,
        "api_client_id": api_client_id,
        "manage_token": token,
        "manage_token_hash": manage_token_hash(token),
        "actor": str(actor),
        "bound_by_maintenance": actor.bound_by_maintenance,
        "emailed": EMAILED_ARRAY,
        "settings_defaults": SETTINGS_DEFAULTS,
        "lock_timeout": lock_timeout,
        "statement_timeout": statement_timeout,
    }


def reservation_book(
    *,
    resource_id: int,
    actor: Actor,
    quantity: int | None = None,
    seat_ids: Sequence[int] | None = None,
    hold: bool = False,
    customer_name: str = "",
    customer_email: str = "",
    api_client: ApiClient | None = None,
    recorder: OutcomeRecorder | None = None,
) -> Booking:
    """Book places by quantity or by seats, as a hold or confirmed at once. All or nothing.

    With `recorder`, the booking's statement also writes the record of its outcome, and
    commits; the answer can then be rendered again from that outcome (`booked_from`)."""
    _validate_request(quantity, seat_ids)
    seats, wanted = _places(quantity, seat_ids)
    params = book_params(
        resource_id=resource_id,
        actor=actor,
        quantity=wanted,
        seats=seats,
        hold=hold,
        customer_name=customer_name,
        customer_email=customer_email,
        api_client_id=api_client.pk if api_client is not None else None,
    )
    token, token_hash = params["manage_token"], params["manage_token_hash"]

    def book() -> dict[str, Any]:
        outcome = outcome_execute(BOOK_SQL, params, recorder, unrecorded=OUTCOMES_NOT_RECORDED)
        if outcome["outcome"] == "booked" or outcome["expired"]:
            _on_commit_invalidate(resource_id)
        return outcome

    constraint_errors: dict[str, Callable[[], ReservoError]] = {
        # The database's own refusal, should a check in reservo_book ever be wrong.
        "resource_counters_within_capacity": lambda: _sold_out(
            None, resource_available_now(resource_id)
        ),
        "reservation_seat_active_unique": lambda: SeatsUnavailable(
            _("Some of these seats were just taken."),
            seats=_taken_seats(seats or []),
        ),
    }
    # A refusal is an outcome, not an exception inside the transaction: it writes nothing
    # that would need a savepoint to undo, so an idempotent request can record it.
    outcome = in_booking_transaction(
        book, constraint_errors=constraint_errors, savepoint=False, set_timeouts=False
    )
    reservation = booked_from(
        outcome,
        resource_id=resource_id,
        quantity=quantity,
        seat_ids=seat_ids,
        customer_name=customer_name,
        customer_email=customer_email,
        api_client=api_client,
    )
    reservation.manage_token_hash = token_hash
    return Booking(reservation=reservation, manage_token=token)


def booked_from(
    outcome: Mapping[str, Any],
    *,
    resource_id: int,
    quantity: int | None = None,
    seat_ids: Sequence[int] | None = None,
    customer_name: str = "",
    customer_email: str = "",
    api_client: ApiClient | None = None,
) -> Reservation:
    """The reservation a booking's outcome (a row of `reservo_book`, or that row as JSON)
    made, for the request that asked for it; or the refusal it stands for, raised."""
    seats, wanted = _places(quantity, seat_ids)
    if outcome["outcome"] != "booked":
        raise _refusal(outcome, seats)
    reservation = reservation_from_outcome(
        outcome,
        resource_id=resource_id,
        quantity=wanted,
        customer_name=customer_name,
        customer_email=customer_email,
        api_client=api_client,
    )
    reservation.seat_ids = seats or []  # type: ignore[attr-defined]
    return reservation


def _places(quantity: int | None, seat_ids: Sequence[int] | None) -> tuple[list[int] | None, int]:
    """The seats a booking request names, in order, and the number of places it wants."""
    seats = sorted(seat_ids) if seat_ids is not None else None
    wanted = len(seats) if seats is not None else quantity
    assert wanted is not None  # a booking names seats or a quantity (_validate_request)
    return seats, wanted


def _refusal(outcome: Mapping[str, Any], seats: Sequence[int] | None) -> ReservoError:
    code = outcome["outcome"]
    name = outcome["resource_name"]
    if code == "not_found":
        return NotFound(_("No such resource."))
    if code == "maintenance":
        return maintenance_error(outcome["maintenance_message"])
    if code == "not_bookable":
        return ResourceNotBookable(_("'%(name)s' is not open for booking.") % {"name": name})
    if code == "wrong_kind":
        if seats is not None:
            return ValidationFailed({"seats": [_("This resource has no seats; book a quantity.")]})
        return ValidationFailed({"quantity": [_("This resource is seated; choose seats.")]})
    if code == "limit_exceeded":
        limit = outcome["max_places"]
        return LimitExceeded(
            _("At most %(limit)d places per booking.") % {"limit": limit}, limit=limit
        )
    if code == "unknown_seats":
        return ValidationFailed(
            {
                "seats": [
                    _("Unknown seats for this resource: %(ids)s.") % {"ids": outcome["seat_ids"]}
                ]
            }
        )
    if code == "seats_taken":
        return SeatsUnavailable(
            _("Seats already taken: %(labels)s.") % {"labels": ", ".join(outcome["seat_labels"])},
            seats=list(outcome["seat_ids"]),
        )
    if code == "sold_out":
        return _sold_out(name, outcome["available"])
    if code == "reference_taken":
        return ReferenceTaken()
    raise AssertionError(f"unknown booking outcome {code!r}")


def _sold_out(resource_name: str | None, available: int) -> SoldOut:
    available = max(available, 0)
    if resource_name is not None and available:
        detail = _("Only %(n)d places left on '%(name)s'.") % {
            "n": available,
            "name": resource_name,
        }
    elif available:
        detail = _("Only %(n)d places left.") % {"n": available}
    else:
        detail = _("Sold out.")
    return SoldOut(detail, available=available)


def _taken_seats(seat_ids: Sequence[int]) -> list[int]:
    return sorted(
        ReservationSeat.objects.filter(seat_id__in=seat_ids, active=True).values_list(
            "seat_id", flat=True
        )
    )
