"""The Content-Security-Policy header (settings RESERVO_CSP and RESERVO_CSP_BY_PATH)."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase

HEADER = "Content-Security-Policy"


def policy_for(path: str) -> str:
    """The policy of a path: the longest prefix of RESERVO_CSP_BY_PATH, else RESERVO_CSP."""
    prefixes = [prefix for prefix in settings.RESERVO_CSP_BY_PATH if path.startswith(prefix)]
    if prefixes:
        return str(settings.RESERVO_CSP_BY_PATH[max(prefixes, key=len)])
    return str(settings.RESERVO_CSP)


class ContentSecurityPolicyMiddleware:
    """Sets the policy on every response that has none of its own.

    Django's own debug pages (DEBUG only) are styled inline: they are left without one.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if HEADER in response:
            return response
        if settings.DEBUG and response.status_code in (404, 500):
            return response
        response[HEADER] = policy_for(request.path_info)
        return response
