"""The one HTML error path: domain errors, 404 and 500 rendered as friendly pages.

Every customer-facing view renders a `ReservoError` through `error_page`, so each error
has one look, the right status and, where it has one, a Retry-After header. A database
failure is a 503 wherever it is raised (a view, the admin, a middleware saving the
session): `database_failure_page` renders it, and the 500 handler checks for one before
calling anything a bug. Paths under /api/ get problem+json instead of HTML.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import render
from django.template import loader
from django.views import defaults

from reservo.errors import (
    ReservoError,
    database_error_to_domain,
    is_database_failure,
    sqlstate_of,
)

logger = logging.getLogger(__name__)

API_PREFIX = "/api/"

View = TypeVar("View", bound=Callable[..., HttpResponseBase])


def _error_context(
    error: ReservoError, *, restart_url: str | None = None, back_url: str | None = None
) -> dict[str, Any]:
    return {
        "error_code": error.code,
        "error_title": error.title,
        "error_detail": error.detail,
        "restart_url": restart_url,
        "back_url": back_url,
        "retry_after": error.retry_after,
    }


def _with_retry_after(response: HttpResponse, error: ReservoError) -> HttpResponse:
    if error.retry_after is not None:
        response["Retry-After"] = str(error.retry_after)
    return response


def error_page(
    request: HttpRequest,
    error: ReservoError,
    *,
    restart_url: str | None = None,
    back_url: str | None = None,
    status: int | None = None,
) -> HttpResponse:
    """A page explaining `error` in plain words, with a way forward when there is one."""
    response = render(
        request,
        "error.html",
        _error_context(error, restart_url=restart_url, back_url=back_url),
        status=status or error.http_status,
    )
    return _with_retry_after(response, error)


def database_failure_page(request: HttpRequest, exc: BaseException) -> HttpResponse | None:
    """The friendly 503 page a database failure stands for; None if `exc` is not one.

    Rendered without the request's context processors: they may read the session, which
    lives in the database that just failed.
    """
    error = database_error_to_domain(exc) if is_database_failure(exc) else None
    if error is None:
        return None
    logger.warning("%s (SQLSTATE %s) on %s", error.code, sqlstate_of(exc) or "none", request.path)
    response = HttpResponse(
        loader.render_to_string("error.html", _error_context(error)), status=error.http_status
    )
    return _with_retry_after(response, error)


def renders_domain_errors(view: View) -> View:
    """Render any domain error (or database failure that stands for one) escaping `view`."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        try:
            return view(request, *args, **kwargs)
        except ReservoError as error:
            return error_page(request, error)
        except Exception as exc:
            response = database_failure_page(request, exc)
            if response is None:
                raise
            return response

    return cast(View, wrapper)


def _database_failure_under(exc: BaseException | None) -> BaseException | None:
    """The database failure that `exc` was raised from or while handling, if any."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if is_database_failure(exc) and database_error_to_domain(exc) is not None:
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler400. Django answers 400 when it could not save the session, whatever the
    reason (SessionInterrupted): when the reason is a database failure, the answer is the
    503 it stands for."""
    failure = _database_failure_under(exception)
    if failure is not None:
        if request.path.startswith(API_PREFIX):
            from reservo import problems  # the API's renderer; it imports this module

            return problems.api_error_response(request, failure)
        response = database_failure_page(request, failure)
        if response is not None:
            return response
    return defaults.bad_request(request, exception)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith(API_PREFIX):
        from reservo import problems  # the API's renderer; it imports this module

        return problems.api_error_response(request, exception)
    return render(request, "404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: what escaped every view and middleware. Django calls it while handling
    the exception, so a database failure is still told apart from a bug here."""
    exc = sys.exc_info()[1]
    if request.path.startswith(API_PREFIX):
        from reservo import problems  # the API's renderer; it imports this module

        return problems.api_error_response(request, exc)
    if exc is not None:
        response = database_failure_page(request, exc)
        if response is not None:
            return response
    # No request context: whatever broke (the database, a context processor) stays out.
    return HttpResponse(loader.get_template("500.html").render(), status=500)
