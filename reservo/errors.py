"""The one error hierarchy: domain errors with a code, an HTTP status and extras.

Every entry point renders these the same way (problem+json for the API, a friendly page
for HTML). Database errors are mapped here by SQLSTATE and constraint name, never by
message text, so a client never sees SQL or a constraint name.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.db import DatabaseError, InterfaceError, OperationalError
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
SQLSTATE_IDLE_IN_TRANSACTION_TIMEOUT = "25P03"
SQLSTATE_CONNECTION_CLASS = "08"
SQLSTATE_OPERATOR_INTERVENTION = "57P"  # admin shutdown, crash shutdown, cannot connect now
RETRYABLE_SQLSTATES = frozenset({SQLSTATE_SERIALIZATION_FAILURE, SQLSTATE_DEADLOCK})


def sqlstate_of(exc: BaseException) -> str | None:
    cause = exc.__cause__ or exc
    return getattr(cause, "sqlstate", None)


def constraint_of(exc: BaseException) -> str | None:
    cause = exc.__cause__ or exc
    diag = getattr(cause, "diag", None)
    return getattr(diag, "constraint_name", None)


def database_error_to_domain(exc: DatabaseError) -> ReservoError | None:
    """The domain error a database failure stands for, or None if it is a bug."""
    sqlstate = sqlstate_of(exc) or ""
    if sqlstate in (SQLSTATE_LOCK_NOT_AVAILABLE, SQLSTATE_QUERY_CANCELED):
        return Busy(str(_("Too many people are booking right now. Please try again.")))
    if sqlstate in RETRYABLE_SQLSTATES:
        return Busy(str(_("Too many people are booking right now. Please try again.")))
    if isinstance(exc, InterfaceError | OperationalError) and (
        not sqlstate
        or sqlstate.startswith(SQLSTATE_CONNECTION_CLASS)
        or sqlstate.startswith(SQLSTATE_OPERATOR_INTERVENTION)
        or sqlstate == SQLSTATE_IDLE_IN_TRANSACTION_TIMEOUT
    ):
        return Unavailable(str(_("The booking service is briefly unavailable. Please retry.")))
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
