"""RFC 9457 problem details for every error under /api/, and the request id that ties a
500 to its log line.

Problems are rendered by the DRF exception handler (errors inside API views), the
middleware (unknown /api/ URLs and anything raised outside a view), and Django's 404 and
500 handlers (`api_error_response`, for what escapes a middleware); the OpenAPI schema
class documents them on every operation. A database failure is a 503 on each of these
paths, mapped by SQLSTATE (`reservo.errors.database_error_to_domain`).
"""

from __future__ import annotations

import logging
import math
import re
import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter
from rest_framework import exceptions, serializers
from rest_framework.response import Response

from reservo import error_pages, errors, metrics
from reservo.errors import ReservoError

logger = logging.getLogger("reservo.api")

PROBLEM_CONTENT_TYPE = "application/problem+json"
API_PREFIX = "/api/"
REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def _flatten_errors(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error detail as {"field" or "parent.field": [messages]}."""
    flat: dict[str, list[str]] = {}

    def add(key: str, messages: list[str]) -> None:
        flat.setdefault(key, []).extend(messages)

    if isinstance(detail, dict):
        for field, value in detail.items():
            key = f"{prefix}.{field}" if prefix else str(field)
            for sub_key, messages in _flatten_errors(value, key).items():
                add(sub_key, messages)
    elif isinstance(detail, list) and any(isinstance(item, dict | list) for item in detail):
        for index, item in enumerate(detail):
            key = f"{prefix}.{index}" if prefix else str(index)
            for sub_key, messages in _flatten_errors(item, key).items():
                add(sub_key, messages)
    elif isinstance(detail, list):
        add(prefix or "non_field_errors", [str(item) for item in detail])
    else:
        add(prefix or "non_field_errors", [str(detail)])
    return flat


def domain_error_for(exc: BaseException) -> ReservoError | None:
    """The domain error an exception stands for; None means a bug (a 500)."""
    if isinstance(exc, ReservoError):
        return exc
    if isinstance(exc, Http404):
        return errors.NotFound(_("Not found."))
    if isinstance(exc, exceptions.ValidationError):
        return errors.ValidationFailed(_flatten_errors(exc.detail))
    if isinstance(exc, exceptions.ParseError):
        return errors.ValidationFailed({"body": [str(exc.detail)]})
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        return errors.NotAuthenticated(str(exc.detail))
    if isinstance(exc, exceptions.PermissionDenied):
        return errors.PermissionDenied(str(exc.detail))
    if isinstance(exc, exceptions.NotFound):
        return errors.NotFound(str(exc.detail))
    if isinstance(exc, exceptions.MethodNotAllowed):
        return errors.MethodNotAllowed(str(exc.detail))
    if isinstance(exc, exceptions.Throttled):
        return errors.RateLimited(_("Too many requests. Please slow down."))
    if isinstance(exc, exceptions.APIException):
        return GenericApiError(exc)
    if isinstance(exc, RequestDataTooBig):
        return payload_too_large()
    if errors.is_database_failure(exc):
        return errors.database_error_to_domain(exc)
    return None


class GenericApiError(ReservoError):
    """Any other DRF error (415 unsupported media type, 406 not acceptable, ...)."""

    def __init__(self, exc: exceptions.APIException) -> None:
        super().__init__(str(exc.detail))
        self._status = exc.status_code
        self._code = exc.default_code

    @property
    def type_uri(self) -> str:
        return "/problems/" + self._code.replace("_", "-")

    def as_problem(self) -> dict[str, Any]:
        problem = super().as_problem()
        problem.update(status=self._status, code=self._code, title=self.detail)
        return problem


class PayloadTooLarge(ReservoError):
    """A request body over DATA_UPLOAD_MAX_MEMORY_SIZE."""

    code = "payload_too_large"
    http_status = 413
    title = gettext_lazy("Request too large")


def payload_too_large() -> PayloadTooLarge:
    return PayloadTooLarge(_("The request is larger than this site accepts."))


def body_over_limit(request: HttpRequest) -> bool:
    """The request declares a body over DATA_UPLOAD_MAX_MEMORY_SIZE (Django reads no more
    than the declared length, and Reservo takes no file uploads, which the limit would
    leave out)."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return False
    return limit is not None and length > limit


def problem_status(error: ReservoError) -> int:
    return int(error.as_problem()["status"])


def server_error(request_id: str | None) -> errors.ServerError:
    return errors.ServerError(
        _("Something went wrong on our side. Quote the request id if you contact us."),
        request_id=request_id or "",
    )


def problem_for(exc: BaseException, request: Any) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Body, status and headers of the problem an exception becomes (logs it if a bug)."""
    error = domain_error_for(exc)
    request_id = getattr(request, "request_id", None)
    if error is None:
        logger.error(
            "unhandled error in %s %s [request %s]",
            getattr(request, "method", "?"),
            getattr(request, "path", "?"),
            request_id,
            exc_info=exc,
        )
        error = server_error(request_id)
    elif error.code in (errors.Busy.code, errors.IdempotencyInProgress.code):
        metrics.lock_wait_exceeded(error.code)
    if isinstance(error, errors.Maintenance):
        # Expected while staff work: told at INFO, not as a failure.
        logger.info("maintenance: refused %s", getattr(request, "path", "?"))
    elif problem_status(error) >= 500 and not isinstance(error, errors.ServerError):
        logger.warning(
            "%s (SQLSTATE %s) on %s [request %s]",
            error.code,
            errors.sqlstate_of(exc) or "none",
            getattr(request, "path", "?"),
            request_id,
        )
    headers: dict[str, str] = {}
    if isinstance(exc, exceptions.Throttled):
        headers["Retry-After"] = str(max(1, math.ceil(getattr(exc, "wait", None) or 1)))
    elif error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        headers["WWW-Authenticate"] = "Api-Key"
    return error.as_problem(), problem_status(error), headers


def problem_drf_response(body: dict[str, Any], status: int, headers: dict[str, str]) -> Response:
    return Response(body, status=status, headers=headers, content_type=PROBLEM_CONTENT_TYPE)


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """REST_FRAMEWORK["EXCEPTION_HANDLER"]: every error as problem+json, never None."""
    request = context.get("request")
    body, status, headers = problem_for(exc, request)
    view = context.get("view")
    if isinstance(exc, exceptions.MethodNotAllowed) and view is not None:
        headers["Allow"] = ", ".join(view.allowed_methods)
    response = problem_drf_response(body, status, headers)
    if body["code"] == errors.Maintenance.code:
        response._has_been_logged = True  # type: ignore[attr-defined]  # logged at INFO
    return response


def problem_json_response(
    body: dict[str, Any], status: int, headers: dict[str, str]
) -> JsonResponse:
    response = JsonResponse(
        body,
        status=status,
        content_type=PROBLEM_CONTENT_TYPE,
        json_dumps_params={"ensure_ascii": False},
    )
    for name, value in headers.items():
        response[name] = value
    return response


class RequestIdMiddleware:
    """Gives every request an id (a sane incoming X-Request-ID is kept) and echoes it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        request_id = incoming if _REQUEST_ID_PATTERN.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id  # type: ignore[attr-defined]
        response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request_id
        return response


class ApiProblemMiddleware:
    """Under /api/: unknown URLs, 405s and errors raised outside a view become problems.
    Elsewhere, a database failure escaping a view becomes the friendly 503 page.
    Everywhere, a body over the size limit is a 413 before anything reads it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if body_over_limit(request):
            too_large = payload_too_large()
            if request.path.startswith(API_PREFIX):
                return problem_json_response(too_large.as_problem(), too_large.http_status, {})
            return error_pages.error_page(request, too_large)
        response = self.get_response(request)
        if not request.path.startswith(API_PREFIX) or response.status_code < 400:
            return response
        if response.get("Content-Type", "").startswith(PROBLEM_CONTENT_TYPE):
            return response
        if response.status_code == 404:
            error: ReservoError = errors.NotFound(_("No such URL."))
        elif response.status_code == 405:
            error = errors.MethodNotAllowed(_("This method is not allowed here."))
        elif response.status_code == 500:
            error = server_error(getattr(request, "request_id", None))
        else:
            return response
        problem = problem_json_response(error.as_problem(), error.http_status, {})
        if response.has_header("Allow"):
            problem["Allow"] = response["Allow"]
        return problem

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not request.path.startswith(API_PREFIX):
            # Pages and the admin: a database failure is the friendly 503 page (a bug goes
            # on to the 500 handler).
            return error_pages.database_failure_page(request, exception)
        body, status, headers = problem_for(exception, request)
        return problem_json_response(body, status, headers)


def api_error_response(request: HttpRequest, exc: BaseException | None) -> JsonResponse:
    """Django's 404 and 500 handlers under /api/: the problem `exc` stands for (a database
    failure is its 503), else a 500 that says nothing internal. Django logs the error."""
    error = domain_error_for(exc) if exc is not None else None
    if error is None:
        error = server_error(getattr(request, "request_id", None))
    headers = {"Retry-After": str(error.retry_after)} if error.retry_after is not None else {}
    return problem_json_response(error.as_problem(), problem_status(error), headers)


# OpenAPI -------------------------------------------------------------------------------


class ProblemSerializer(serializers.Serializer):
    """An RFC 9457 problem; `code` says which one, extras depend on it (see API.md)."""

    type = serializers.CharField()
    title = serializers.CharField()
    status = serializers.IntegerField()
    detail = serializers.CharField()
    code = serializers.CharField()
    # Declared fields are popped off the class, so `errors` does not shadow the property.
    errors = serializers.DictField(  # type: ignore[assignment]
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="validation_error: messages by field.",
    )
    available = serializers.IntegerField(required=False, help_text="sold_out: places left.")
    seats = serializers.ListField(
        child=serializers.IntegerField(),
        required=False,
        help_text="seats_unavailable: the seat ids that are taken.",
    )
    current_status = serializers.CharField(
        required=False, help_text="invalid_state: the reservation's status."
    )
    limit = serializers.IntegerField(required=False, help_text="limit_exceeded: the limit.")
    booked = serializers.IntegerField(
        required=False, help_text="capacity_below_booked: places held or booked."
    )
    request_id = serializers.CharField(required=False, help_text="server_error: quote it.")


IDEMPOTENCY_KEY_PARAMETER = OpenApiParameter(
    name="Idempotency-Key",
    type=str,
    location=OpenApiParameter.HEADER,
    required=False,
    pattern=r"^[!-~]([ -~]{0,253}[!-~])?$",
    description=(
        "1 to 255 printable characters. The same key with the same request replays the "
        "first response; with a different request it is refused (422)."
    ),
)
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SAFE_PROBLEM_STATUSES = (400, 401, 403, 404, 429, 500, 503)
UNSAFE_PROBLEM_STATUSES = (400, 401, 403, 404, 409, 413, 422, 429, 500, 503)


class ReservoAutoSchema(AutoSchema):
    """Documents, on every /api/v1/ operation, its problem responses and, on unsafe
    methods, the Idempotency-Key header."""

    def _is_contract_operation(self) -> bool:
        return self.path.startswith("/api/v1/")

    def get_override_parameters(self) -> list[Any]:
        parameters = list(super().get_override_parameters())
        if self._is_contract_operation() and self.method in UNSAFE_METHODS:
            parameters.append(IDEMPOTENCY_KEY_PARAMETER)
        return parameters

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses: dict[str, Any] = super()._get_response_bodies(direction)
        if not self._is_contract_operation():
            return responses
        statuses = (
            UNSAFE_PROBLEM_STATUSES if self.method in UNSAFE_METHODS else SAFE_PROBLEM_STATUSES
        )
        for status in statuses:
            if str(status) not in responses:
                responses[str(status)] = self._get_response_for_code(
                    ProblemSerializer, str(status), [PROBLEM_CONTENT_TYPE], direction
                )
        return responses
