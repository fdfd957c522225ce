"""Admin login protection.

django-axes locks out a username from one client address after repeated failures
(counted in PostgreSQL; the address is `reservo.addresses.client_address`, so behind a
proxy it is the client's, not the proxy's). On top of that, failures of one username
from any address slow down its next attempts: past `RESERVO_LOGIN_DELAY_AFTER` failures
within the cool-off, each attempt must wait 1 s, then 2, 4, ... up to
`RESERVO_LOGIN_DELAY_MAX_S` after the one before, which bounds guessing spread over many
addresses. That delay is counted in Redis, and not applied (with a log line) when Redis
does not answer.
"""

from __future__ import annotations

import math
from typing import Any

from axes.backends import AxesStandaloneBackend
from axes.exceptions import AxesBackendPermissionDenied
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.translation import ngettext

from reservo import limits
from reservo.error_pages import error_page
from reservo.errors import RateLimited

# Set on a login refused before any password was checked: by the lockout (True), and by
# the per-username delay (the seconds left to wait).
LOGIN_REFUSED_ATTRIBUTE = "reservo_login_refused"
LOGIN_WAIT_ATTRIBUTE = "reservo_login_wait"


def _failures_key(username: str) -> str:
    return limits.key("login-failures", limits.digest(username))


def _gate_key(username: str) -> str:
    return limits.key("login-gate", limits.digest(username))


def login_delay_seconds(failures: int) -> float:
    """How long a username with `failures` recent failures waits between attempts."""
    free = settings.RESERVO_LOGIN_DELAY_AFTER
    if failures < free:
        return 0.0
    return float(min(2 ** min(failures - free, 32), settings.RESERVO_LOGIN_DELAY_MAX_S))


def login_attempt_wait(username: str) -> int | None:
    """None if an attempt for `username` may go ahead now, else the seconds to wait.

    An attempt that goes ahead while a delay applies takes the username's slot for that
    delay (`SET NX`), so attempts sent together cannot all pass before the first one's
    failure is counted.
    """
    try:
        redis = limits.redis()
        failures = int(redis.get(_failures_key(username)) or 0)
        delay = login_delay_seconds(failures)
        if delay <= 0 or redis.set(_gate_key(username), 1, px=int(delay * 1000), nx=True):
            return None
        left_ms = int(redis.pttl(_gate_key(username)))
    except Exception:  # Redis is down or refused the command: fail open
        limits.not_applied("login delay")
        return None
    return max(1, math.ceil(left_ms / 1000)) if left_ms > 0 else None


def login_failure_record(username: str) -> None:
    """Count a failure of `username`; from the delay's threshold on, the next attempt
    waits for the new delay."""
    window = max(1, int(float(settings.AXES_COOLOFF_TIME) * 3600))
    try:
        pipeline = limits.redis().pipeline(transaction=False)
        pipeline.incr(_failures_key(username))
        pipeline.expire(_failures_key(username), window)
        failures, _expiry_set = pipeline.execute()
        delay = login_delay_seconds(int(failures))
        if delay > 0:
            limits.redis().set(_gate_key(username), 1, px=int(delay * 1000))
    except Exception:  # Redis is down or refused the command: fail open
        limits.not_applied("login delay")


def login_failures_clear(username: str) -> None:
    try:
        limits.redis().delete(_failures_key(username), _gate_key(username))
    except Exception:  # Redis is down or refused the command: fail open
        limits.not_applied("login delay")


class LoginLockoutBackend(AxesStandaloneBackend):
    """Axes' lockout check, then the per-username delay, for every login made over HTTP.

    A credential check without a request (a management command, a shell, the test
    client's `login`) cannot be a brute-force attempt from the network, so it is let
    through to the next backend instead of being refused.
    """

    def authenticate(  # type: ignore[override]
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> None:
        if request is None:
            return None
        try:
            super().authenticate(request, username, password, **kwargs)
        except AxesBackendPermissionDenied:
            setattr(request, LOGIN_REFUSED_ATTRIBUTE, True)
            raise
        wait = login_attempt_wait(username) if username else None
        if wait is not None:
            setattr(request, LOGIN_REFUSED_ATTRIBUTE, True)
            setattr(request, LOGIN_WAIT_ATTRIBUTE, wait)
            # Axes' middleware answers a request so flagged with `lockout_response`.
            request.axes_locked_out = True  # type: ignore[attr-defined]
            raise AxesBackendPermissionDenied("the username's login delay has not passed")
        return None


class LoginFailureHandler(AxesDatabaseHandler):
    """Axes' database handler, which also counts each checked failure per username (for
    the delay) and clears the count on a successful login."""

    def user_login_failed(
        self, sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any
    ) -> None:
        if getattr(request, LOGIN_WAIT_ATTRIBUTE, None) is not None:
            return  # delayed before any password was checked: nothing to record
        super().user_login_failed(sender, credentials, request, **kwargs)
        if request is None or getattr(request, LOGIN_REFUSED_ATTRIBUTE, False):
            return
        username = get_client_username(request, credentials)
        if username:
            login_failure_record(str(username))

    def user_logged_in(self, sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
        super().user_logged_in(sender, request, user, **kwargs)
        login_failures_clear(user.get_username())


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None, credentials: Any = None
) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: the friendly 429 page, for the delay and the lockout."""
    wait = getattr(request, LOGIN_WAIT_ATTRIBUTE, None)
    if wait is not None:
        detail = ngettext(
            "Too many failed sign-ins for this username. Please wait %(seconds)d second "
            "before trying again.",
            "Too many failed sign-ins for this username. Please wait %(seconds)d seconds "
            "before trying again.",
            wait,
        ) % {"seconds": wait}
        retry_after = int(wait)
    else:
        retry_after = max(1, int(float(settings.AXES_COOLOFF_TIME) * 3600))
        minutes = math.ceil(retry_after / 60)
        detail = ngettext(
            "Too many failed sign-ins for this username from your address. Please try again "
            "in %(minutes)d minute.",
            "Too many failed sign-ins for this username from your address. Please try again "
            "in %(minutes)d minutes.",
            minutes,
        ) % {"minutes": minutes}
    response = error_page(request, RateLimited(detail))
    response["Retry-After"] = str(retry_after)
    return response
