"""The one error hierarchy: domain errors with a code, an HTTP status and extras.

Every entry point renders these the same way (problem+json for the API, a friendly page
for HTML). Database errors are mapped here by SQLSTATE and constraint name, never by
message text, so a client never sees SQL or a constraint name.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import psycopg
from django.db import DatabaseError, InterfaceError, InternalError, OperationalError
from django.http import JsonResponse
from django.utils.translation import gettext_lazy as _


class ReservoError(Exception):
    code: ClassVar[str] = "server_error"
    http_status: ClassVar[int] = 500
    title: ClassVar[Any] = _("Server error")
    retry_after: ClassVar[int | None] = None

    def __init__(self, detail: str | None = None, **extras: Any) -> None:
        self.detail = str(detail) if detail is not None else str(self.title)
        self.extras = extras
        super().__init__(self.detail)

    @property
    def type_uri(self) -> str:
        return "/problems/" + self.code.replace("_", "-")

    def as_problem(self) -> dict[str, Any]:
        # The standard members come last so that no extra can shadow them.
        return {
            **self.extras,
            "type": self.type_uri,
            "title": str(self.title),
            "status": self.http_status,
            "detail": self.detail,
            "code": self.code,
        }


class ValidationFailed(ReservoError):
    code = "validation_error"
    http_status = 400
    title = _("Invalid request")

    def __init__(self, errors: dict[str, list[str]], detail: str | None = None) -> None:
        first = next(iter(errors.values()), [""])
        super().__init__(detail or (first[0] if first else None), errors=errors)
        self.errors = errors


class NotAuthenticated(ReservoError):
    code = "not_authenticated"
    http_status = 401
    title = _("Not authenticated")


class PermissionDenied(ReservoError):
    code = "permission_denied"
    http_status = 403
    title = _("Permission denied")


class NotFound(ReservoError):
    code = "not_found"
    http_status = 404
    title = _("Not found")


class MethodNotAllowed(ReservoError):
    code = "method_not_allowed"
    http_status = 405
    title = _("Method not allowed")


class SoldOut(ReservoError):
    code = "sold_out"
    http_status = 409
    title = _("Sold out")


class SeatsUnavailable(ReservoError):
    code = "seats_unavailable"
    http_status = 409
    title = _("Seats unavailable")


class HoldExpired(ReservoError):
    code = "hold_expired"
    http_status = 409
    title = _("Hold expired")


class InvalidState(ReservoError):
    """Extra member `current_status`: the reservation's status (RFC 9457 keeps `status`
    for the HTTP status code)."""

    code = "invalid_state"
    http_status = 409
    title = _("Invalid state")


class ResourceNotBookable(ReservoError):
    code = "resource_not_bookable"
    http_status = 409
    title = _("Not bookable")


class SalesClosed(ReservoError):
    code = "sales_closed"
    http_status = 409
    title = _("Sales closed")


class CapacityBelowBooked(ReservoError):
    code = "capacity_below_booked"
    http_status = 409
    title = _("Capacity below booked")


class LimitExceeded(ReservoError):
    code = "limit_exceeded"
    http_status = 409
    title = _("Limit exceeded")


class AlreadyCheckedIn(ReservoError):
    """Extra members `checked_in_at` (ISO 8601) and `checked_in_by`: the first check-in."""

    code = "already_checked_in"
    http_status = 409
    title = _("Already checked in")


class InvalidCode(ReservoError):
    """A check-in code that is malformed or not signed by this installation."""

    code = "invalid_code"
    http_status = 400
    title = _("Invalid code")


class IdempotencyKeyReused(ReservoError):
    code = "idempotency_key_reused"
    http_status = 422
    title = _("Idempotency key reused")


class IdempotencyInProgress(ReservoError):
    code = "idempotency_in_progress"
    http_status = 409
    title = _("Request in progress")
    retry_after = 1


class RateLimited(ReservoError):
    code = "rate_limited"
    http_status = 429
    title = _("Too many requests")
    retry_after = 1


class Maintenance(ReservoError):
    code = "maintenance"
    http_status = 503
    title = _("Down for maintenance")
    retry_after = 60


class Busy(ReservoError):
    code = "busy"
    http_status = 503
    title = _("Busy")
    retry_after = 1


class Unavailable(ReservoError):
    code = "unavailable"
    http_status = 503
    title = _("Service unavailable")
    retry_after = 5


class ServerError(ReservoError):
    """A bug. The body says nothing internal; the request id lets staff find the log."""


# SQLSTATE classes and codes (PostgreSQL appendix A).
SQLSTATE_SERIALIZATION_FAILURE = "40001"
SQLSTATE_DEADLOCK = "40P01"
SQLSTATE_LOCK_NOT_AVAILABLE = "55P03"
SQLSTATE_QUERY_CANCELED = "57014"
SQLSTATE_CHECK_VIOLATION = "23514"
SQLSTATE_UNIQUE_VIOLATION = "23505"
SQLSTATE_INSUFFICIENT_PRIVILEGE = "42501"
SQLSTATE_READ_ONLY_TRANSACTION = "25006"
SQLSTATE_IDLE_IN_TRANSACTION_TIMEOUT = "25P03"
SQLSTATE_ADMIN_SHUTDOWN = "57P01"
SQLSTATE_CRASH_SHUTDOWN = "57P02"
SQLSTATE_CANNOT_CONNECT_NOW = "57P03"
SQLSTATE_DATABASE_DROPPED = "57P04"
SQLSTATE_IDLE_SESSION_TIMEOUT = "57P05"
SQLSTATE_CONNECTION_CLASS = "08"  # connection exceptions, PgBouncer's own errors included
SQLSTATE_INSUFFICIENT_RESOURCES_CLASS = "53"  # disk full, out of memory, too many connections
SQLSTATE_SYSTEM_ERROR_CLASS = "58"  # I/O errors and other failures outside PostgreSQL
RETRYABLE_SQLSTATES = frozenset({SQLSTATE_SERIALIZATION_FAILURE, SQLSTATE_DEADLOCK})

# The database is there but a bound was reached (a lock wait, a statement, conflicting
# transactions past their retries): 503 `busy`, retry shortly.
BUSY_SQLSTATES = frozenset(
    {SQLSTATE_LOCK_NOT_AVAILABLE, SQLSTATE_QUERY_CANCELED, *RETRYABLE_SQLSTATES}
)
# The database cannot serve the request now (unreachable, shutting down, out of resources,
# read-only after a failover to a standby, the session ended): 503 `unavailable`.
UNAVAILABLE_SQLSTATE_CLASSES = (
    SQLSTATE_CONNECTION_CLASS,
    SQLSTATE_INSUFFICIENT_RESOURCES_CLASS,
    SQLSTATE_SYSTEM_ERROR_CLASS,
)
UNAVAILABLE_SQLSTATES = frozenset(
    {
        SQLSTATE_READ_ONLY_TRANSACTION,
        SQLSTATE_IDLE_IN_TRANSACTION_TIMEOUT,
        SQLSTATE_ADMIN_SHUTDOWN,
        SQLSTATE_CRASH_SHUTDOWN,
        SQLSTATE_CANNOT_CONNECT_NOW,
        SQLSTATE_DATABASE_DROPPED,
        SQLSTATE_IDLE_SESSION_TIMEOUT,
    }
)
# How far down a chain of `raise ... from ...` a SQLSTATE is looked for.
CAUSE_DEPTH = 8


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, then what it was raised from, and so on."""
    error: BaseException | None = exc
    for _depth in range(CAUSE_DEPTH):
        if error is None:
            return
        yield error
        error = error.__cause__


def sqlstate_of(exc: BaseException) -> str | None:
    """The SQLSTATE of the first error with one in `exc`'s chain of causes (Django's
    database errors are raised from the driver's, which carry it)."""
    for error in _causes(exc):
        sqlstate = getattr(error, "sqlstate", None)
        if sqlstate:
            return str(sqlstate)
    return None


def constraint_of(exc: BaseException) -> str | None:
    for error in _causes(exc):
        name = getattr(getattr(error, "diag", None), "constraint_name", None)
        if name:
            return str(name)
    return None


def is_database_failure(exc: BaseException) -> bool:
    """An error raised by the database or its driver (not a domain error raised from one)."""
    return isinstance(exc, DatabaseError | psycopg.Error)


def database_error_to_domain(exc: BaseException) -> ReservoError | None:
    """The domain error a database failure stands for, or None if it is a bug.

    Decided by SQLSTATE alone, never by message text. An error without one is the driver's
    own: a lost or refused connection, unless it is one of Django's programming errors.
    """
    sqlstate = sqlstate_of(exc)
    if sqlstate in BUSY_SQLSTATES:
        return Busy(str(_("Too many people are booking right now. Please try again.")))
    if sqlstate is None:
        unreachable = isinstance(
            exc,
            InterfaceError
            | InternalError
            | OperationalError
            | psycopg.InterfaceError
            | psycopg.InternalError
            | psycopg.OperationalError,
        )
    else:
        unreachable = sqlstate in UNAVAILABLE_SQLSTATES or sqlstate.startswith(
            UNAVAILABLE_SQLSTATE_CLASSES
        )
    if unreachable:
        return Unavailable(str(_("Reservo is briefly unavailable. Please try again in a moment.")))
    return None


def problem_response(error: ReservoError, **members: Any) -> JsonResponse:
    """An RFC 9457 problem+json response for a domain error (with Retry-After where it has one)."""
    response = JsonResponse(
        {**error.as_problem(), **members},
        status=error.http_status,
        content_type="application/problem+json",
        json_dumps_params={"ensure_ascii": False},
    )
    if error.retry_after is not None:
        response["Retry-After"] = str(error.retry_after)
    return response
