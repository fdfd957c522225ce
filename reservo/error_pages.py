"""The one HTML error path: domain errors, 404 and 500 rendered as friendly pages.

Every customer-facing view renders a `ReservoError` through `error_page`, so each error
has one look, the right status and, where it has one, a Retry-After header. Paths under
/api/ get problem+json instead of HTML.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import render
from django.template import loader

from reservo.errors import NotFound, ReservoError, ServerError, database_error_to_domain

logger = logging.getLogger(__name__)

API_PREFIX = "/api/"

View = TypeVar("View", bound=Callable[..., HttpResponseBase])


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
        {
            "error_code": error.code,
            "error_title": error.title,
            "error_detail": error.detail,
            "restart_url": restart_url,
            "back_url": back_url,
            "retry_after": error.retry_after,
        },
        status=status or error.http_status,
    )
    if error.retry_after is not None:
        response["Retry-After"] = str(error.retry_after)
    return response


def renders_domain_errors(view: View) -> View:
    """Render any domain error (or database failure that stands for one) escaping `view`."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        try:
            return view(request, *args, **kwargs)
        except ReservoError as error:
            return error_page(request, error)
        except DatabaseError as exc:
            domain_error = database_error_to_domain(exc)
            if domain_error is None:
                raise
            logger.warning("database unavailable for %s: %s", request.path, exc)
            return error_page(request, domain_error)

    return cast(View, wrapper)


def _api_error(request: HttpRequest, status: int) -> HttpResponse:
    """problem+json for API paths, through the API's own renderer when it has one."""
    try:
        problems: Any = importlib.import_module("reservo.problems")
    except ImportError:
        problems = None
    render_problem = getattr(problems, "api_error_response", None)
    if callable(render_problem):
        return cast(HttpResponse, render_problem(request, status))
    from reservo.errors import problem_response

    return problem_response(NotFound() if status == 404 else ServerError())


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith(API_PREFIX):
        return _api_error(request, 404)
    return render(request, "404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    # No request context: whatever broke (the database, a context processor) stays out.
    if request.path.startswith(API_PREFIX):
        return _api_error(request, 500)
    return HttpResponse(loader.get_template("500.html").render(), status=500)
