"""Maintenance mode: refuses booking writes on every instance while staff have it on.

Reads (safe methods), the admin and the probes keep working. The switch is read through
the shared cache (see `settings_app.selectors`), so it reaches every instance within a
second; the booking services check it again inside their transaction.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from datetime import datetime

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _

from reservo.error_pages import error_page
from reservo.errors import Maintenance, ReservoError, database_error_to_domain, problem_response
from settings_app.selectors import SettingsSnapshot, system_settings

logger = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
EXEMPT_PREFIXES = ("/admin/", "/staff/", "/healthz", "/readyz", "/metrics")
API_PREFIX = "/api/"
RETRY_AFTER_MAX_SECONDS = 3600
CHECKOUT_PATH = re.compile(r"/checkout/[A-Z0-9-]+/")


def is_booking_write(request: HttpRequest) -> bool:
    return request.method not in SAFE_METHODS and not request.path_info.startswith(EXEMPT_PREFIXES)


def retry_after_seconds(until: datetime | None) -> int:
    """A hint for clients: the planned end if staff gave one, else the default."""
    default = Maintenance.retry_after or 60
    if until is None:
        return default
    remaining = (until - timezone.now()).total_seconds()
    if remaining <= 0:
        return default
    return min(math.ceil(remaining), RETRY_AFTER_MAX_SECONDS)


def error_response(request: HttpRequest, error: ReservoError) -> HttpResponse:
    if request.path_info.startswith(API_PREFIX):
        return problem_response(error)
    return error_page(request, error)


def maintenance_response(request: HttpRequest, current: SettingsSnapshot) -> HttpResponse:
    message = current.maintenance_message or _(
        "Bookings are paused for maintenance. Please come back shortly."
    )
    response: HttpResponse
    if request.path_info.startswith(API_PREFIX):
        extras = {}
        if current.maintenance_until is not None:
            extras["maintenance_until"] = current.maintenance_until.isoformat()
        response = problem_response(Maintenance(message), **extras)
    else:
        # A customer confirming a hold is sent back to the checkout: the hold waits.
        checkout = request.path if CHECKOUT_PATH.fullmatch(request.path_info) else None
        response = render(
            request,
            "maintenance.html",
            {"message": message, "until": current.maintenance_until, "checkout_url": checkout},
            status=Maintenance.http_status,
        )
    response["Retry-After"] = str(retry_after_seconds(current.maintenance_until))
    # Expected while staff work: told at INFO, not as a server error.
    logger.info("maintenance: refused %s %s", request.method, request.path)
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response


class MaintenanceMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if is_booking_write(request):
            try:
                current = system_settings()
            except DatabaseError as exc:
                # Redis missed and PostgreSQL did not answer: the switch is unknown, and the
                # write could not be made anyway. A 503 with Retry-After, never a guess.
                error = database_error_to_domain(exc)
                if error is None:
                    raise
                logger.warning("maintenance switch unreadable for %s: %s", request.path, exc)
                return error_response(request, error)
            if current.maintenance_mode:
                return maintenance_response(request, current)
        return self.get_response(request)
